"""What a run prints: the progress bar's postfix, evaluation lines, the closing block, quieted warnings."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest

from r1lab import terminal

SUMMARY = {"run_name": "tiny-seed0", "status": "finished", "global_step": 40, "eval/accuracy": 0.3125,
           "eval/pass@1": 0.25, "eval/pass@8": 0.5, "wall_time_s": 61.4, "output_dir": "out/run",
           "wandb": {"mode": "offline", "dir": "out/run/wandb/offline-run-1-abc/files", "url": None}}


def test_closing_block_of_a_plain_run():
    lines = terminal.closing_block(SUMMARY, 40).splitlines()
    assert lines == [
        "r1lab: tiny-seed0: finished at step 40 of 40",
        "  held-out accuracy 0.312 (greedy)",
        "  pass@1 0.250  pass@8 0.500",
        "  wall time 61 s",
        "  outputs  out/run (summary.json, metrics.jsonl, completion_samples/)",
        "  W&B      offline; upload with: wandb sync out/run/wandb/offline-run-1-abc",
    ]


@pytest.mark.parametrize("best", [0.185, {"accuracy": 0.185, "policy": "a + b"}])
def test_closing_block_with_step0_and_baseline(best):
    summary = {**SUMMARY, "eval_step0": {"eval/accuracy": 0.0625}, "baselines": {"best_target_blind": best},
               "wandb": {"mode": "online", "url": "https://wandb.ai/me/r1lab/runs/abc"}}
    lines = terminal.closing_block(summary, 40).splitlines()
    assert "  held-out accuracy 0.062 at step 0 → 0.312 (greedy)" in lines
    assert "  best target-blind baseline 0.185" in lines
    assert lines[-1] == "  W&B      https://wandb.ai/me/r1lab/runs/abc"


def test_closing_block_of_a_crash_without_tracker():
    lines = terminal.closing_block({"run_name": "x", "status": "crashed", "global_step": 3, "wandb": None,
                                    "output_dir": "out/x"}, 40).splitlines()
    assert lines[0] == "r1lab: x: crashed at step 3 of 40" and lines[-1] == "  W&B      off (logger=none)"
    assert not any("accuracy" in line for line in lines)


def test_eval_line_shows_what_the_run_measured():
    assert terminal.eval_line(20, 40, {"eval_accuracy": 0.125, "eval_format_rate": 0.5, "eval_mean_length": 31.25,
                                       "epoch": 0.1}) == "step 20/40  held-out accuracy 0.125  format 0.500  length 31.2"
    line = terminal.eval_line(0, 40, {"eval_accuracy": 0.0, "eval_accuracy_sampled": 0.03125, "eval_think_tokens": 12.0,
                                      "eval_candidates_tried": 2.25, "eval_pass@8": 0.5})
    assert line == ("step 0/40  held-out accuracy 0.000  sampled 0.031  think tokens 12.0  candidates tried 2.2"
                    "  pass@8 0.500")


def test_progress_bar_postfix_and_evaluation_lines(capsys):
    progress = terminal.RunProgress()
    state = SimpleNamespace(is_world_process_zero=True, max_steps=4, global_step=0)
    progress.on_train_begin(None, state, None)
    state.global_step = 1
    progress.on_step_end(None, state, None)
    progress.on_log(None, state, None, logs={"reward": 0.25, "aha/accuracy": 0.125, "aha/format_rate": 0.5,
                                             "completions/mean_length": 41.6, "step_time": 0.31, "loss": 0.0})
    assert progress.bar.n == 1
    assert progress.bar.postfix == "reward 0.250  acc 0.125  format 0.50  len 42  s/step 0.31"
    progress.on_log(None, state, None, logs={"eval_accuracy": 0.5, "eval_mean_length": 20.0})
    progress.on_train_end(None, state, None)
    assert "step 1/4  held-out accuracy 0.500  length 20.0\n" in capsys.readouterr().err


def test_library_warnings_are_filtered_by_exact_message_only():
    terminal.quiet_libraries()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        terminal.quiet_libraries()  # re-installs the exact-message filters ahead of "default"
        for category, message in terminal.LIBRARY_WARNINGS:
            warnings.warn(message, category)
        warnings.warn("`some_other_api` is deprecated and will be removed in v6.", FutureWarning)
    assert [str(w.message) for w in caught] == ["`some_other_api` is deprecated and will be removed in v6."]


def test_deepspeed_cpu_notice_is_dropped_by_exact_message():
    import logging

    terminal.quiet_libraries()
    logger = logging.getLogger("DeepSpeed")

    def passes(message: str) -> bool:
        return bool(logger.filter(logger.makeRecord("DeepSpeed", logging.WARNING, __file__, 1, message, None, None)))

    assert not passes(terminal.DEEPSPEED_CPU_NOTICE)
    assert passes("Setting accelerator to CPU.")
