"""Runs as tidy pandas DataFrames, from a sweep directory or a W&B group: what `r1lab compare` reads.

    from r1lab import runs
    table, curves = runs.load("multirun/lr")                  # or "ENTITY/PROJECT/GROUP" on W&B
    curves.merge(table, on="run").query("metric == 'eval/accuracy'").groupby(["lr", "step"]).value.mean()

`table` has one row per run: `run`, its axes (`table.attrs["axes"]`: model, variant, algo, task, lr,
beta, seed, plus any other config key that tells runs with the same axes apart, e.g. `algo.epsilon`),
`status` (finished, crashed, preempted, running, ...), `steps`, `source` (run dir or W&B path) and the
final value of every metric (the summary's, else the last logged one; nested summary entries such as
`baselines.best_target_blind` flattened to `baselines/best_target_blind`). `curves` is long-form:
run, step (`train/global_step`), metric, value. A run dir is one holding `summary.json` or `metrics.jsonl`;
a run with metrics but no summary is `running`, and no run is dropped for being unfinished.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from r1lab import tracking

STEP = tracking.STEP
# Axis columns in tracking.axes's order (summary.json sorts keys); other axes follow.
AXIS_ORDER = ("model", "variant", "algo", "task", "lr", "beta", "seed")
# Metrics read from W&B histories (one scan per key): what compare plots and takes final values of.
HISTORY_KEYS = ("eval/accuracy", "eval/format_rate", "eval/accuracy_sampled", "eval/think_tokens",
                "eval/candidates_tried", "train/reward", "train/completions/mean_length",
                "train/aha/accuracy", "train/aha/reflection_rate", "train/aha/equations_tried")
# Config keys that never make two runs different configurations: the seed, names, paths, the tracker, the
# identifiers r1lab adds to W&B's config (prefix match on dotted keys).
NOT_CONFIGURATION = ("seed", "run_name", "cache_dir", "dry_run", "logger.", "train.resume", "axes.", "axis_",
                     "git_sha", "hydra.", "_wandb")
# Summary entries that identify a run rather than measure it.
NOT_METRICS = ("status", "run_name", "run_id", "group", "output_dir", "git_sha", "resumed_from", "global_step",
               "world_size", "axes/", "wandb/")
# Run-dir contents never searched for further runs.
_NOT_RUNS = {"wandb", "final", "completion_samples", "completions", ".hydra"}


@dataclass
class RunRecord:
    """One run as read, from disk or W&B, before it becomes rows of the two frames."""

    name: str
    status: str
    axes: dict[str, Any]
    source: str
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    # The run's whole config, flattened to dotted keys ({} when unknown).
    config: dict[str, Any] = field(default_factory=dict)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _progress(message: str) -> None:
    print(f"r1lab: {message}", file=sys.stderr, flush=True)


def flatten(nested: dict[str, Any], sep: str = ".") -> dict[str, Any]:
    """Nested dicts as one level of `sep`-joined keys (pandas' json_normalize)."""
    if not nested:
        return {}
    return pd.json_normalize(nested, sep=sep).iloc[0].to_dict()


# --- reading -----------------------------------------------------------------------------------


def find_run_dirs(root: Path) -> list[Path]:
    """Every directory under `root` (itself included) holding summary.json or metrics.jsonl, sorted."""
    found = []
    for directory, subdirs, files in os.walk(root):
        if tracking.SUMMARY_FILE in files or tracking.METRICS_FILE in files:
            found.append(Path(directory))
            subdirs.clear()  # checkpoints, W&B files and samples of a run hold no other runs
            continue
        subdirs[:] = [d for d in subdirs if d not in _NOT_RUNS and not d.startswith(("checkpoint-", "."))]
    # Natural order, so job 10 of a sweep comes after job 9.
    return sorted(found, key=lambda p: [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in p.parts])


def saved_config(run_dir: Path) -> dict[str, Any]:
    """The config Hydra saved in `.hydra/config.yaml` (interpolations left as written), or {}."""
    path = Path(run_dir) / ".hydra" / "config.yaml"
    if not path.exists():
        return {}
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)


def _axes_from_config(config: dict[str, Any]) -> dict[str, Any]:
    """The axes of a run that has no summary yet, from its saved config."""
    from omegaconf import OmegaConf

    try:
        return tracking.axes(OmegaConf.create(config))
    except Exception:  # noqa: BLE001 - an older or foreign config: show the run without axes rather than fail
        return {}


def read_run_dir(run_dir: Path, root: Path) -> RunRecord:
    """A run dir as a RunRecord; no summary.json means the run has not ended (`running`). An unreadable
    summary.json or metrics.jsonl is named on stderr and the run listed as `unreadable`."""
    summary, problem = tracking.read_summary(run_dir)
    try:
        history = tracking.read_metrics(run_dir)
    except (OSError, UnicodeDecodeError) as error:
        history, problem = [], problem or f"{run_dir / tracking.METRICS_FILE} is unreadable ({error})"
    if problem:
        _progress(problem)
    summary = summary or {}
    config = saved_config(run_dir)
    return RunRecord(
        name=run_dir.relative_to(root).as_posix() if run_dir != root else run_dir.name,
        status="unreadable" if problem else summary.get("status", "running"),
        axes=summary.get("axes") or (_axes_from_config(config) if config else {}),
        source=str(run_dir),
        history=history,
        summary=summary,
        config=flatten(config),
    )


def read_sweep_dir(root: Path) -> list[RunRecord]:
    root = Path(root)
    run_dirs = find_run_dirs(root)
    runs = []
    for i, run_dir in enumerate(run_dirs, 1):
        runs.append(read_run_dir(run_dir, root))
        _progress(f"[{i}/{len(run_dirs)}] {run_dir} ({runs[-1].status}, {len(runs[-1].history)} records)")
    return runs


def wandb_record(run: Any) -> RunRecord:
    """A W&B public-API run as a RunRecord: one history scan per metric, with `train/global_step` as x."""
    history = []
    for key in HISTORY_KEYS:
        history.extend({STEP: row.get(STEP), key: row.get(key)} for row in run.scan_history(keys=[STEP, key]))
    config = dict(run.config)
    return RunRecord(
        name=run.name,
        status=run.state,
        axes=dict(config.get("axes") or {}),
        source="/".join(run.path),  # entity/project/run id
        history=history,
        summary=dict(run.summary_metrics),
        config=flatten(config),
    )


def read_wandb_group(project: str, group: str) -> list[RunRecord]:
    """The runs of W&B group `group` in `project` ("entity/project"); needs network and credentials."""
    import wandb

    runs = []
    for i, run in enumerate(wandb.Api().runs(project, filters={"group": group}), 1):
        runs.append(wandb_record(run))
        _progress(f"[{i}] {project}/{run.id} {run.name} ({run.state}, {len(runs[-1].history)} records)")
    return runs


# --- frames ------------------------------------------------------------------------------------


def curves_frame(records: list[RunRecord]) -> pd.DataFrame:
    """Long form: run, step, metric, value; the last value logged at a step wins."""
    rows = [(run.name, int(record[STEP]), key, float(value))
            for run in records for record in run.history if _is_number(record.get(STEP))
            for key, value in record.items() if key != STEP and _is_number(value)]
    curves = pd.DataFrame(rows, columns=["run", "step", "metric", "value"])
    return curves.drop_duplicates(["run", "metric", "step"], keep="last").sort_values(
        ["run", "metric", "step"], kind="stable").reset_index(drop=True)


def _axis_names(records: list[RunRecord]) -> list[str]:
    names = dict.fromkeys(a for a in AXIS_ORDER if any(a in run.axes for run in records))
    for run in records:
        names.update(dict.fromkeys(run.axes))
    return list(names)


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, (list, dict)) else value


def configuration_keys(records: list[RunRecord], axes: list[str]) -> list[str]:
    """Config keys (dotted) that tell apart runs whose axes other than the seed are equal.

    A key that only varies along with an axis (the Hub id with the model size) adds nothing; a key a sweep
    varies beside the axes (`algo.epsilon=0.1,0.2`) must, or its runs would be averaged as seeds.
    """
    configs = pd.DataFrame([{k: _hashable(v) for k, v in run.config.items()
                             if not k.startswith(NOT_CONFIGURATION) and k not in NOT_CONFIGURATION}
                            for run in records])
    if configs.empty:
        return []
    group_by = [a for a in axes if a != "seed"]
    keys = pd.DataFrame([{a: _hashable(run.axes.get(a)) for a in group_by} for run in records]).astype(str)
    varying = [c for c in configs if configs[c].astype(str).nunique() > 1]
    return [c for c in varying
            if configs[c].astype(str).groupby([keys[a] for a in group_by] or [0] * len(keys)).nunique().max() > 1]


def _final_metrics(run: RunRecord, curves: pd.DataFrame) -> dict[str, float]:
    """The summary's numeric entries (flattened with '/'), then the last logged value of every other metric."""
    finals = {k: float(v) for k, v in flatten(run.summary, sep="/").items()
              if _is_number(v) and not k.startswith("_") and not k.startswith(NOT_METRICS) and k not in NOT_METRICS}
    last = curves[curves.run == run.name].groupby("metric").value.last()
    return {**last.to_dict(), **finals}


def runs_frame(records: list[RunRecord], curves: pd.DataFrame) -> pd.DataFrame:
    """One row per run: run, axes and configuration keys, status, steps, source, final metrics."""
    axes = _axis_names(records)
    config_keys = configuration_keys(records, axes)
    rows = []
    for run in records:
        steps = curves.loc[curves.run == run.name, "step"]
        rows.append({
            "run": run.name,
            **{a: run.axes.get(a) for a in axes},
            **{k: run.config.get(k) for k in config_keys},
            "status": run.status,
            "steps": int(steps.max()) if len(steps) else run.summary.get("global_step"),
            "source": run.source,
            **_final_metrics(run, curves),
        })
    identity = ["run", *axes, *config_keys, "status", "steps", "source"]
    table = pd.DataFrame(rows, columns=None if rows else identity)
    table = table[identity + sorted(c for c in table.columns if c not in identity)]
    table["steps"] = table["steps"].astype("Int64")
    table.attrs["axes"] = axes + config_keys
    return table


def frames(records: list[RunRecord]) -> tuple[pd.DataFrame, pd.DataFrame]:
    curves = curves_frame(records)
    return runs_frame(records, curves), curves


def load(source: str | Path, project: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, curves) of a sweep dir (searched recursively), or of a W&B group given as ENTITY/PROJECT/GROUP
    (or as GROUP with `project="ENTITY/PROJECT"`)."""
    if project is None and Path(source).is_dir():
        return frames(read_sweep_dir(Path(source)))
    if project is None and (problem := missing_local_path(str(source))):
        raise ValueError(problem)
    project, group = wandb_group(str(source), project)
    try:
        return frames(read_wandb_group(project, group))
    except Exception as error:  # noqa: BLE001 - wandb's errors (no API key, no such project, network)
        raise ValueError(f"{source} is not a directory here, and reading it as W&B group {group!r} of {project!r} "
                         f"failed: {type(error).__name__}: {error}") from error


def missing_local_path(source: str) -> str | None:
    """Why `source` (not a directory here) is a mistyped local path rather than a W&B group, or None."""
    if Path(source).exists():
        return f"{source} is not a directory"
    if source.startswith((".", "/", "~")) or len(Path(source).parts) > 1 and Path(Path(source).parts[0]).is_dir():
        return f"no such directory: {source}"  # an explicit path, or one below a local directory
    return None


def wandb_group(source: str, project: str | None) -> tuple[str, str]:
    """("entity/project", group) from ENTITY/PROJECT/GROUP, or from GROUP and `project`; ValueError otherwise."""
    if project is not None:
        return project, source
    parts = source.split("/", 2)
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"{source!r} is neither a directory nor ENTITY/PROJECT/GROUP "
                         "(or give the project with --project ENTITY/PROJECT)")
    return "/".join(parts[:2]), parts[2]
