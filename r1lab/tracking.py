"""Run identity and records: W&B naming/grouping, `metrics.jsonl` and `summary.json`.

A run is named, grouped and tagged from its config axes (model, variant, algo, task, lr, beta,
seed) so that ablations line up side by side in W&B. Every run also writes, whatever the logger,
`metrics.jsonl` (one object per logged step, keys exactly as sent to W&B) and `summary.json`
(final metrics and identifiers), so runs can be read and compared without W&B.
"""

from __future__ import annotations

import json
import logging
import netrc
import os
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
RUN_ID_FILE = "run_id"
# The exact train/test rows a run used and its held-out baselines (r1lab.data.record_splits).
DATA_DIR = "data"
BASELINES_FILE = "baselines.json"
# The x-axis of every metric: the trainer's optimizer step.
STEP = "train/global_step"
# HF's WandbCallback sends these to the run summary, not the history; r1lab does the same.
SINGLE_VALUE_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss", "total_flos")


def axes(cfg: DictConfig) -> dict[str, Any]:
    """The ablation axes of a run, as W&B config, tags and `r1lab compare` columns see them."""
    return {
        "model": cfg.model.size,
        "variant": cfg.variant.name,
        "algo": cfg.algo.name,
        "task": cfg.task.name,
        "lr": float(cfg.algo.lr),
        # The KL-to-reference coefficient: GRPO's and PRIME's beta, PPO's kl_coef.
        "beta": float(cfg.algo.get("beta", cfg.algo.get("kl_coef", 0.0))),
        "seed": int(cfg.seed),
    }


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass
class RunIdentity:
    name: str
    group: str
    job_type: str
    tags: list[str]
    run_id: str
    axes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_run(cls, cfg: DictConfig, output_dir: Path, sweep_dir: str | None) -> RunIdentity:
        """Name: `run_name` (a sweep sets it to what differs between its jobs), else the axes. Group: the
        sweep (or the axes without seed, so seeds aggregate).

        The W&B run id is stored in the output dir on first start, so a resumed run continues the
        same W&B run instead of starting a new one.
        """
        run_axes = axes(cfg)
        axes_name = "-".join(f"{k}{_short(v)}" if k in ("lr", "beta", "seed") else _short(v) for k, v in run_axes.items())
        name = cfg.get("run_name") or axes_name
        group = cfg.logger.get("group")
        if not group:
            if sweep_dir:
                group = "sweep-" + Path(sweep_dir).resolve().as_posix().strip("/").replace("/", "-")[-100:]
            else:
                group = axes_name.rsplit("-seed", 1)[0]
        id_file = output_dir / RUN_ID_FILE
        if id_file.exists():
            run_id = id_file.read_text().strip()
        else:
            run_id = uuid.uuid4().hex[:12]
            output_dir.mkdir(parents=True, exist_ok=True)
            id_file.write_text(run_id + "\n")
        tags = [f"{k}:{_short(v)}" for k, v in run_axes.items()] + list(cfg.logger.get("tags") or [])
        return cls(name=name, group=group, job_type=cfg.algo.name, tags=tags, run_id=run_id, axes=run_axes)


def git_revision() -> str | None:
    """The r1lab checkout's commit (with `-dirty` for uncommitted changes), or None outside git."""
    repo = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return sha.stdout.strip() + ("-dirty" if dirty else "")


def has_wandb_credentials() -> bool:
    """An API key in the environment or in ~/.netrc for the W&B host, found without prompting."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_mode(requested: str) -> str:
    """`auto` → online with credentials, else offline; an explicit WANDB_MODE in the environment wins."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if requested != "auto":
        return requested
    return "online" if has_wandb_credentials() else "offline"


def start_wandb(cfg: DictConfig, identity: RunIdentity, output_dir: Path, config: dict[str, Any]):
    """Start (or resume) the run's W&B run; TRL's WandbCallback then logs into it."""
    import wandb

    mode = wandb_mode(cfg.logger.mode)
    # Children and TRL's callback must agree with the mode chosen here.
    os.environ["WANDB_MODE"] = mode
    run = wandb.init(
        project=cfg.logger.project,
        entity=cfg.logger.entity,
        group=identity.group,
        job_type=identity.job_type,
        name=identity.name,
        tags=identity.tags,
        id=identity.run_id,
        resume="allow",
        dir=str(output_dir),
        config=config,
        mode=mode,
        # No version banner or history sparklines: the run's closing block says where the run is.
        settings=wandb.Settings(quiet=True),
    )
    # Every metric against the trainer's step, from the first log on (W&B's own `_step` runs ahead of it,
    # TRL's profiling logs being separate calls). HF's WandbCallback repeats this at train begin.
    run.define_metric(STEP)
    run.define_metric("*", step_metric=STEP, step_sync=True)
    return run


def detach_wandb(trainer) -> None:
    """Stop every W&B call of `trainer` (HF's WandbCallback and TRL's direct logging); metrics.jsonl goes on.

    Called from a SIGTERM handler: the same SIGTERM stops W&B's service process, after which each
    `wandb.log` raises, which would crash the step whose checkpoint the job is about to save. TRL reads
    `args.report_to` at every call, so removing "wandb" from that list is enough for it.
    """
    if "wandb" in trainer.args.report_to:
        trainer.args.report_to.remove("wandb")
    for callback in _wandb_callbacks(trainer):
        callback._wandb = None


def _wandb_callbacks(trainer) -> list:
    """HF's WandbCallback instances of `trainer` (matched by name: importing it would import wandb)."""
    return [c for c in trainer.callback_handler.callbacks if type(c).__name__ == "WandbCallback"]


def guard_wandb(trainer) -> None:
    """A failure inside W&B never fails a training step: it is logged once, W&B is detached for the rest of
    the run (`detach_wandb`) and `metrics.jsonl` goes on.

    The case that needs it: SLURM's SIGTERM reaches W&B's service process while the trainer is inside a
    `wandb.log` call; the signal handler detaches W&B, but the call already under way raises
    `ConnectionResetError`, which would crash the step whose checkpoint the stopping job is about to save.
    HF's `CallbackHandler` stops at the first callback that raises (r1lab's `MetricsJsonlCallback` comes
    after W&B's), so W&B's callback is guarded on its own; TRL's direct `wandb.log` calls (completion
    tables) run inside `trainer.log`, which is guarded for errors raised from the wandb package.
    """
    import functools

    def guarded(call, swallow):
        @functools.wraps(call)
        def run(*args, **kwargs):
            try:
                return call(*args, **kwargs)
            except Exception as error:
                if not swallow(error):
                    raise
                log.warning("W&B failed (%s: %s); W&B logging is off for the rest of this run, metrics.jsonl "
                            "goes on", type(error).__name__, error)
                detach_wandb(trainer)
        return run

    for callback in _wandb_callbacks(trainer):
        for name in [n for n in type(callback).__dict__ if n.startswith("on_")]:
            # Anything W&B's own callback raises is W&B's.
            setattr(callback, name, guarded(getattr(callback, name), swallow=lambda error: True))
    trainer.log = guarded(trainer.log, swallow=_raised_in_wandb)


def _raised_in_wandb(error: BaseException) -> bool:
    """Whether `error` was raised from inside the wandb package (any frame of its traceback)."""
    import traceback

    return any(f"{os.sep}wandb{os.sep}" in frame.filename for frame in traceback.extract_tb(error.__traceback__))


def run_config(cfg: DictConfig, identity: RunIdentity) -> dict[str, Any]:
    """The resolved config plus identifiers: what W&B's config and summary.json record.

    The axes also appear as top-level `axis_<name>` keys (the group names themselves hold the groups'
    configs), so W&B's run table and parallel-coordinates panel group and filter by them directly.
    """
    return {
        **OmegaConf.to_container(cfg, resolve=True),
        "axes": identity.axes,
        **{f"axis_{name}": value for name, value in identity.axes.items()},
        "git_sha": git_revision(),
    }


def final_wandb_summary(wandb_run, summary: dict[str, Any]) -> None:
    """Put the final held-out metrics into the W&B run's summary, so the run table shows what the run ended
    with, not its last logged row (the baselines are there already: log_baselines)."""
    keys = [key for key in summary if key.startswith("eval/")] + ["global_step"]
    wandb_run.summary.update({key: summary[key] for key in keys if summary.get(key) is not None})


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The records of a run's metrics.jsonl (a torn last line from a crash is skipped)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def write_summary(output_dir: Path, summary: dict[str, Any]) -> Path:
    path = output_dir / SUMMARY_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
    return path


def read_summary(run_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """A run dir's summary.json: (record, None); (None, None) when there is none; (None, why) when unreadable."""
    path = Path(run_dir) / SUMMARY_FILE
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return None, f"{path} is unreadable ({type(error).__name__}: {error})"
    if not isinstance(summary, dict):
        return None, f"{path} is unreadable (not a JSON object)"
    return summary, None


def finished_summary(output_dir: Path, max_steps: int) -> dict[str, Any] | None:
    """The run's summary if it already finished at least `max_steps` steps (re-running it is then a no-op)."""
    summary, _ = read_summary(output_dir)
    if summary is None:
        return None
    done = summary.get("status") == "finished" and int(summary.get("global_step") or 0) >= max_steps
    return summary if done else None


def final_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The last logged value of every metric key."""
    latest: dict[str, Any] = {}
    for record in records:
        latest.update({k: v for k, v in record.items() if v is not None})
    return latest


def log_baselines(baselines: dict[str, float] | None) -> None:
    """Put the held-out baselines in the W&B run's summary (`baselines/<name>`), if a run is active."""
    import wandb

    if baselines and wandb.run is not None:
        wandb.run.summary.update({f"baselines/{name}": value for name, value in baselines.items()})


def step0_eval(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The held-out metrics logged at `train/global_step` 0 (before the first update), or None."""
    found = {k: v for r in records if r.get("train/global_step") == 0 for k, v in r.items() if k.startswith("eval/")}
    return found or None


def summary_record(identity: RunIdentity, output_dir: Path, status: str, wandb_run, extra: dict[str, Any]) -> dict[str, Any]:
    """summary.json: identity, final metrics, `eval_step0` (the step-0 held-out metrics) and `baselines`."""
    records = read_metrics(output_dir)
    baselines = Path(output_dir) / DATA_DIR / BASELINES_FILE
    return {
        "status": status,
        "run_name": identity.name,
        "run_id": identity.run_id,
        "group": identity.group,
        "axes": identity.axes,
        "output_dir": str(output_dir),
        "git_sha": git_revision(),
        "wandb": None if wandb_run is None else {
            "project": wandb_run.project, "id": wandb_run.id, "mode": os.environ.get("WANDB_MODE"),
            # An offline run has no URL (W&B warns when asked for it); its sync command goes by dir.
            "dir": wandb_run.dir, "url": None if wandb_run.offline else wandb_run.url,
        },
        **final_metrics(records),
        "eval_step0": step0_eval(records),
        "baselines": json.loads(baselines.read_text()) if baselines.exists() else None,
        **extra,
    }
