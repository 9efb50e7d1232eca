"""`r1lab compare`: the runs of a sweep side by side, as a table (Markdown + CSV) and three plots.

Runs are read either from a directory (every run dir below it: one holding `summary.json` or
`metrics.jsonl`) or from a W&B group through the public API; both become `RunRecord`s and go through
the same table and plot builders. A run is never dropped for being unfinished: a crashed run shows
`crashed`, a run with metrics but no summary yet shows `running`, and their curves are drawn as far
as they got. Curves are plotted against `train/global_step` (TRL's profiling logs move W&B's own
`_step` ahead of it).
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r1lab import tracking

STEP = "train/global_step"
ACCURACY = "eval/accuracy"
FORMAT_RATE = "eval/format_rate"
REWARD = "train/reward"
LENGTH = "train/completions/mean_length"
REFLECTION = "train/aha/reflection_rate"
EQUATIONS = "train/aha/equations_tried"
# The held-out baselines (summary.json "baselines", W&B summary "baselines/<name>"), shown beside accuracy.
BASELINES = ("best_target_blind", "sum_of_all", "random_valid_expression")
# Accuracy milestones: the table gives the first step at which held-out accuracy reached each.
THRESHOLDS = (0.25, 0.5)
# file name -> (metric, y-axis label, y range or None)
PLOTS = {
    "accuracy.png": (ACCURACY, "held-out accuracy (greedy)", (-0.02, 1.02)),
    "reward.png": (REWARD, "training reward", None),
    "completion_length.png": (LENGTH, "mean completion length (tokens)", None),
}
# Columns of the axes in tracking.axes's order (summary.json sorts keys); other axes follow.
AXIS_ORDER = ("model", "variant", "algo", "task", "lr", "beta", "seed")
# Metrics read from W&B histories: the plotted ones and those the table takes a final value of.
HISTORY_KEYS = (ACCURACY, FORMAT_RATE, REWARD, LENGTH, REFLECTION, EQUATIONS)
# Run-dir contents never searched for further runs.
_NOT_RUNS = {"wandb", "final", "completion_samples", "completions", ".hydra"}


@dataclass
class RunRecord:
    """One run as the comparison sees it, whether read from disk or from W&B."""

    name: str
    status: str
    axes: dict[str, Any]
    # Logged records, each a dict of metric -> value with `train/global_step`.
    history: list[dict[str, Any]] = field(default_factory=list)
    # Final values (summary.json or the W&B run summary); the history's last values fill the gaps.
    summary: dict[str, Any] = field(default_factory=dict)

    def curve(self, key: str) -> list[tuple[int, float]]:
        """(step, value) of `key` in step order; the last value logged at a step wins."""
        points: dict[int, float] = {}
        for record in self.history:
            value = record.get(key)
            if record.get(STEP) is not None and _is_number(value):
                points[int(record[STEP])] = float(value)
        return sorted(points.items())

    def baseline(self, name: str) -> float | None:
        value = (self.summary.get("baselines") or {}).get(name, self.summary.get(f"baselines/{name}"))
        return float(value) if _is_number(value) else None

    def final(self, key: str) -> float | None:
        value = self.summary.get(key)
        if _is_number(value):
            return float(value)
        curve = self.curve(key)
        return curve[-1][1] if curve else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _progress(message: str) -> None:
    print(f"r1lab compare: {message}", file=sys.stderr, flush=True)


# --- reading -----------------------------------------------------------------------------------


def find_run_dirs(root: Path) -> list[Path]:
    """Every directory under `root` (itself included) holding summary.json or metrics.jsonl, sorted."""
    found = []
    for directory, subdirs, files in os.walk(root):
        if tracking.SUMMARY_FILE in files or tracking.METRICS_FILE in files:
            found.append(Path(directory))
            subdirs.clear()  # checkpoints, W&B files and samples of a run hold no other runs
            continue
        subdirs[:] = [d for d in subdirs if d not in _NOT_RUNS and not d.startswith("checkpoint-")]
    # Natural order, so job 10 of a sweep comes after job 9.
    return sorted(found, key=lambda p: [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in p.parts])


def _axes_from_hydra(run_dir: Path) -> dict[str, Any]:
    """The axes of a run that has no summary yet, from the config Hydra saved in `.hydra/`."""
    path = run_dir / ".hydra" / "config.yaml"
    if not path.exists():
        return {}
    from omegaconf import OmegaConf

    try:
        return tracking.axes(OmegaConf.load(path))
    except Exception:  # an older or foreign config: show the run without axes rather than fail
        return {}


def read_run_dir(run_dir: Path, root: Path) -> RunRecord:
    """A run dir as a RunRecord; no summary.json means the run has not ended (`running`)."""
    summary_path = run_dir / tracking.SUMMARY_FILE
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    name = run_dir.relative_to(root).as_posix() if run_dir != root else run_dir.name
    return RunRecord(
        name=name,
        status=summary.get("status", "running"),
        axes=summary.get("axes") or _axes_from_hydra(run_dir),
        history=tracking.read_metrics(run_dir),
        summary=summary,
    )


def read_sweep_dir(root: Path) -> list[RunRecord]:
    root = Path(root)
    runs = []
    run_dirs = find_run_dirs(root)
    for i, run_dir in enumerate(run_dirs, 1):
        runs.append(read_run_dir(run_dir, root))
        _progress(f"[{i}/{len(run_dirs)}] {run_dir} ({runs[-1].status}, {len(runs[-1].history)} records)")
    return runs


def wandb_record(run: Any) -> RunRecord:
    """A W&B public-API run as a RunRecord: one history scan per metric, with `train/global_step` as x."""
    history = []
    for key in HISTORY_KEYS:
        history.extend({STEP: row.get(STEP), key: row.get(key)} for row in run.scan_history(keys=[STEP, key]))
    return RunRecord(
        name=run.name,
        status=run.state,
        axes=dict(run.config.get("axes") or {}),
        history=history,
        summary=dict(run.summary_metrics),
    )


def read_wandb_group(project: str, group: str) -> list[RunRecord]:
    """The runs of W&B group `group` in `project` ("entity/project"); needs network and credentials."""
    import wandb

    runs = []
    for i, run in enumerate(wandb.Api().runs(project, filters={"group": group}), 1):
        runs.append(wandb_record(run))
        _progress(f"[{i}] {project}/{run.id} {run.name} ({run.state}, {len(runs[-1].history)} records)")
    return runs


# --- table -------------------------------------------------------------------------------------


def axis_names(runs: Sequence[RunRecord]) -> tuple[list[str], list[str]]:
    """(varying, fixed) axis names, each in AXIS_ORDER, then in the order runs declare them.

    Runs whose axes are unknown (no summary and no saved config) do not make an axis vary.
    """
    known = [run for run in runs if run.axes]
    names = dict.fromkeys(a for a in AXIS_ORDER if any(a in run.axes for run in known))
    for run in known:
        names.update(dict.fromkeys(run.axes))
    varying = [a for a in names if len({json.dumps(run.axes.get(a), sort_keys=True) for run in known}) > 1]
    return varying, [a for a in names if a not in varying]


def _sort_key(value: Any) -> tuple:
    if _is_number(value):
        return (0, float(value), "")
    return (1, 0.0, "") if value is None else (0.5, 0.0, str(value))


def _ordered(runs: Sequence[RunRecord], varying: Sequence[str]) -> list[RunRecord]:
    return sorted(runs, key=lambda r: ([_sort_key(r.axes.get(a)) for a in varying], r.name))


def _pass_ks(runs: Sequence[RunRecord]) -> list[int]:
    """The k of every `eval/pass@k` in any run's summary, ascending."""
    suffixes = {key.removeprefix("eval/pass@") for run in runs for key in run.summary if key.startswith("eval/pass@")}
    return sorted(int(k) for k in suffixes if k.isdigit())


def first_step_reaching(curve: Iterable[tuple[int, float]], threshold: float) -> int | None:
    return next((step for step, value in curve if value >= threshold), None)


def table(runs: Sequence[RunRecord]) -> tuple[list[str], list[dict[str, Any]]]:
    """Column names and one row per run, sorted by the varying axes (then name).

    Columns: run, every axis (varying ones first), status, last step, final and best held-out accuracy, the
    held-out baselines (baseline_*, where any run has them),
    the first step at which it reached each of THRESHOLDS, final format rate and mean completion length,
    then pass@k and the aha metrics where any run has them.
    """
    varying, fixed = axis_names(runs)
    pass_ks = _pass_ks(runs)
    rows = []
    for run in _ordered(runs, varying):
        accuracy = run.curve(ACCURACY)
        steps = [int(r[STEP]) for r in run.history if _is_number(r.get(STEP))]
        row: dict[str, Any] = {"run": run.name, **{a: run.axes.get(a) for a in varying + fixed}}
        row.update({
            "status": run.status,
            "steps": max(steps) if steps else run.summary.get("global_step"),
            "final_accuracy": run.final(ACCURACY),
            "best_accuracy": max((value for _, value in accuracy), default=None),
            **{f"baseline_{name}": run.baseline(name) for name in BASELINES},
            **{f"step_accuracy_{threshold:.0%}": first_step_reaching(accuracy, threshold) for threshold in THRESHOLDS},
            "final_format_rate": run.final(FORMAT_RATE),
            "final_mean_length": run.final(LENGTH),
            **{f"pass@{k}": run.final(f"eval/pass@{k}") for k in pass_ks},
            "final_reflection_rate": run.final(REFLECTION),
            "final_equations_tried": run.final(EQUATIONS),
        })
        rows.append(row)
    columns = list(rows[0]) if rows else []
    # Optional columns no run has (aha metrics of runs from before they existed) are left out.
    optional = {"final_reflection_rate", "final_equations_tried", *(f"baseline_{name}" for name in BASELINES)}
    columns = [c for c in columns if c not in optional or any(row[c] is not None for row in rows)]
    return columns, rows


def _short(value: Any) -> str:
    """An axis value as run names write it (1e-3 -> 0.001); None -> empty."""
    if value is None:
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _cell(column: str, value: Any) -> str:
    if isinstance(value, float) and column.startswith(("final_", "best_", "pass@", "baseline_")):
        return f"{value:.1f}" if column in ("final_mean_length", "final_equations_tried") else f"{value:.3f}"
    return _short(value)


def write_table(columns: list[str], rows: list[dict[str, Any]], varying: Sequence[str], out_dir: Path,
                title: str) -> tuple[Path, Path]:
    """`table.md` (varying axes in bold, formatted) and `table.csv` (raw values) in `out_dir`."""
    csv_path, md_path = out_dir / "table.csv", out_dir / "table.md"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({c: "" if row[c] is None else row[c] for c in columns} for row in rows)
    header = [f"**{c}**" if c in varying else c for c in columns]
    lines = [
        f"# r1lab compare: {title}",
        "",
        f"{len(rows)} runs; varying: {', '.join(varying) or 'nothing'}. "
        f"Accuracy is greedy held-out `{ACCURACY}`; step_accuracy_N is the first step it reached N.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
        *("| " + " | ".join(_cell(c, row[c]) for c in columns) + " |" for row in rows),
    ]
    md_path.write_text("\n".join(lines) + "\n")
    return md_path, csv_path


# --- plots -------------------------------------------------------------------------------------


def _label(run: RunRecord, varying: Sequence[str]) -> str:
    label = ", ".join(f"{a}={_short(run.axes.get(a))}" for a in varying) or run.name
    return label if run.status == "finished" else f"{label} ({run.status})"


def plot(runs: Sequence[RunRecord], key: str, ylabel: str, ylim: tuple[float, float] | None, path: Path,
         varying: Sequence[str]) -> Path:
    """One line per run of `key` against train/global_step.

    Colour follows the varying axes other than the seed (so seeds of one setting share a colour) and the
    line style follows the seed; with only the seed varying, colour follows the seed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    colour_axes = [a for a in varying if a != "seed"] or list(varying)
    style_axis = "seed" if "seed" in varying and colour_axes != ["seed"] else None
    colours: dict[str, int] = {}
    styles: dict[str, int] = {}
    palette = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    drawn = 0
    for run in runs:
        curve = run.curve(key)
        if not curve:
            continue
        colour = colours.setdefault(json.dumps([run.axes.get(a) for a in colour_axes], default=str), len(colours))
        style = styles.setdefault(str(run.axes.get(style_axis)), len(styles)) if style_axis else 0
        steps, values = zip(*curve)
        ax.plot(steps, values, color=palette(colour % 10), linestyle=["-", "--", ":", "-."][style % 4],
                marker="o" if len(curve) <= 20 else None, markersize=3, label=_label(run, varying))
        drawn += 1
    ax.set_xlabel(STEP)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_title(f"{key} by {', '.join(varying) or 'run'}")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize="small", loc="best")
    else:
        ax.text(0.5, 0.5, f"no run logged {key}", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# --- the whole comparison ----------------------------------------------------------------------


def compare(runs: Sequence[RunRecord], out_dir: Path, title: str) -> list[Path]:
    """Write table.md, table.csv and the PNGs of PLOTS for `runs` into `out_dir`; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    varying, _ = axis_names(runs)
    columns, rows = table(runs)
    written = list(write_table(columns, rows, varying, out_dir, title))
    for name, (key, ylabel, ylim) in PLOTS.items():
        written.append(plot(_ordered(runs, varying), key, ylabel, ylim, out_dir / name, varying))
    return written
