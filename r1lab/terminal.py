"""What a run prints: one progress bar, one line per held-out evaluation, and a closing block.

HF's Trainer prints every log dict as a line, TRL redraws its rich completion table at every step
(with `log_completions`), and the libraries draw progress bars for loading, mapping and saving. A run
that reads at a glance replaces HF's progress/printer callback with `RunProgress` (a tqdm bar whose
postfix holds the numbers that say whether RL is working), prints held-out evaluations as single
lines, and ends with `closing_block`. Everything still reaches W&B, metrics.jsonl and
completion_samples/; TRL's table reaches the terminal only with `logger.print_completions=N`.
"""

from __future__ import annotations

import logging
import re
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm
from transformers import TrainerCallback

# Warnings r1lab's own settings do not cause (a library calling a deprecated API of another), by exact
# message. Those r1lab's settings caused are fixed where they arise (e.g. trl_args: activation_checkpointing).
LIBRARY_WARNINGS = (
    # TRL 1.16's unwrap_model_for_generation reads the deprecated property at every generation.
    (FutureWarning, "`is_gradient_checkpointing` is deprecated and will be removed in v6. "
                    "Use `is_activation_checkpointing` instead."),
)
# DeepSpeed's accelerator detection on a machine without a GPU, logged whenever anything imports DeepSpeed;
# r1lab has already chosen the CPU (use_cpu) and says so itself when a config asks for a GPU.
DEEPSPEED_CPU_NOTICE = "Setting accelerator to CPU. If you have GPU or other accelerator, we were unable to detect it."

# The progress bar's postfix: TRL's log key -> (label, format).
POSTFIX = {
    "reward": ("reward", "{:.3f}"),
    "aha/accuracy": ("acc", "{:.3f}"),
    "aha/format_rate": ("format", "{:.2f}"),
    "completions/mean_length": ("len", "{:.0f}"),
    "step_time": ("s/step", "{:.2f}"),
}
# One evaluation line: metric (without the eval_ prefix) -> label, in this order; missing ones are left out.
EVAL_LINE = {
    "accuracy": "held-out accuracy",
    "accuracy_sampled": "sampled",
    "format_rate": "format",
    "mean_length": "length",
    "think_tokens": "think tokens",
    "candidates_tried": "candidates tried",
}


class _ExactMessage(logging.Filter):
    def __init__(self, message: str):
        super().__init__()
        self.message = message

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self.message


def quiet_libraries() -> None:
    """No loading/mapping/saving bars, and the known library warnings above filtered by exact message."""
    import datasets
    import transformers

    for category, message in LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=re.escape(message), category=category)
    logging.getLogger("DeepSpeed").addFilter(_ExactMessage(DEEPSPEED_CPU_NOTICE))
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def eval_line(step: int, max_steps: int, metrics: Mapping[str, Any], prefix: str = "eval_") -> str:
    """`step 20/40  held-out accuracy 0.125  format 0.50  length 31.2  pass@8 0.375` from eval metrics."""
    parts = [f"step {step}/{max_steps}"]
    for key, label in EVAL_LINE.items():
        value = _number(metrics.get(prefix + key))
        if value is not None:
            parts.append(f"{label} {value:.1f}" if key in ("mean_length", "think_tokens", "candidates_tried")
                         else f"{label} {value:.3f}")
    parts += [f"{key.removeprefix(prefix)} {value:.3f}" for key, value in metrics.items()
              if key.startswith(prefix + "pass@") and _number(value) is not None]
    return "  ".join(parts)


class RunProgress(TrainerCallback):
    """One tqdm bar (step/total, ETA) with the latest training numbers; one line per held-out evaluation.

    Replaces HF's ProgressCallback/PrinterCallback (`use_run_progress`). World rank 0 only. Away from a
    terminal (a SLURM log) the bar is redrawn at most every 30 s, so the log stays small.
    """

    def __init__(self, desc: str = "train", postfix: Mapping[str, tuple[str, str]] = POSTFIX):
        self.bar: tqdm | None = None
        self.desc, self.postfix = desc, postfix

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc=self.desc, unit="step",
                            dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 30.0)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if "eval_accuracy" in logs:
            tqdm.write(eval_line(state.global_step, state.max_steps, logs), file=sys.stderr)
        elif self.bar is not None:
            postfix = [f"{label} {fmt.format(logs[key])}" for key, (label, fmt) in self.postfix.items()
                       if _number(logs.get(key)) is not None]
            if postfix:
                self.bar.set_postfix_str("  ".join(postfix), refresh=False)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def use_run_progress(trainer, desc: str = "train", postfix: Mapping[str, tuple[str, str]] = POSTFIX) -> None:
    """Swap HF's progress bar / log printer for RunProgress (its bar named `desc`, showing the `postfix` logs)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(RunProgress(desc, postfix))


def _step0_accuracy(summary: Mapping[str, Any]) -> float | None:
    """Held-out accuracy before training, when the run evaluated at step 0 (summary `eval_step0`)."""
    step0 = summary.get("eval_step0") or {}
    return next((_number(step0[k]) for k in ("eval/accuracy", "eval_accuracy", "accuracy") if k in step0), None)


def _baseline(summary: Mapping[str, Any]) -> float | None:
    """The best target-blind policy's held-out accuracy (summary `baselines.best_target_blind`)."""
    best = (summary.get("baselines") or {}).get("best_target_blind")
    return _number(best.get("accuracy")) if isinstance(best, Mapping) else _number(best)


def wandb_line(summary: Mapping[str, Any]) -> str:
    """Where the run is in W&B: its URL, the `wandb sync` command of an offline run, or that there is none."""
    run = summary.get("wandb")
    if not run:
        return "W&B      off (logger=none)"
    if run.get("url"):
        return f"W&B      {run['url']}"
    if run.get("mode") == "offline" and run.get("dir"):
        return f"W&B      offline; upload with: wandb sync {Path(run['dir']).parent}"
    return f"W&B      {run.get('mode')} ({run.get('project')}/{run.get('id')})"


def closing_block(summary: Mapping[str, Any], max_steps: int) -> str:
    """The run's result in a few lines: held-out accuracy (from step 0 when known), baseline, pass@k, time, where."""
    lines = [f"r1lab: {summary.get('run_name')}: {summary.get('status')} at step {summary.get('global_step')}"
             f" of {max_steps}"]
    final = _number(summary.get("eval/accuracy"))
    if final is not None:
        step0 = _step0_accuracy(summary)
        change = f"{step0:.3f} at step 0 → {final:.3f}" if step0 is not None else f"{final:.3f}"
        lines.append(f"held-out accuracy {change} (greedy)")
    if (baseline := _baseline(summary)) is not None:
        lines.append(f"best target-blind baseline {baseline:.3f}")
    pass_k = [f"{key.removeprefix('eval/')} {summary[key]:.3f}" for key in sorted(summary)
              if key.startswith("eval/pass@") and _number(summary[key]) is not None]
    if pass_k:
        lines.append("  ".join(pass_k))
    if (wall := _number(summary.get("wall_time_s"))) is not None:
        lines.append(f"wall time {wall:.0f} s")
    lines.append(f"outputs  {summary.get('output_dir')} (summary.json, metrics.jsonl, completion_samples/)")
    lines.append(wandb_line(summary))
    return "\n".join(lines[:1] + ["  " + line for line in lines[1:]])
