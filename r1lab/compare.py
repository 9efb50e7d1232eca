"""`r1lab compare`: the configurations of a sweep side by side, aggregated over seeds, with plots.

Reads the frames of `r1lab.runs.load` (a sweep dir or a W&B group). Runs that differ only in `seed`
are one configuration: `table.md`/`table.csv` give per configuration the number of finished seeds n,
mean ± std and a 95 % confidence interval (Student's t, scipy) of the final and best held-out accuracy,
mean ± std of the other final metrics, and, when there are several configurations, a verdict: Welch's
t-test (scipy.stats.ttest_ind, unequal variances) of each configuration's final accuracy over seeds
against the best configuration's, "within seed noise" unless p < 0.05 (uncorrected for the number of
comparisons; the p-value is in the table). `runs.md`/`runs.csv` keep one row per run, unfinished runs
with their status. The plots draw each configuration's mean curve over its seeds with a ±1 std band,
against `train/global_step`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

STEP = "train/global_step"
ACCURACY = "eval/accuracy"
# The held-out baselines (summary.json "baselines", W&B summary "baselines/<name>"), shown beside accuracy.
BASELINES = ("best_target_blind", "sum_of_all", "random_valid_expression")
# Accuracy milestones: the per-run table gives the first step at which held-out accuracy reached each.
THRESHOLDS = (0.25, 0.5)
# Per-run columns taken from the runs frame: column -> metric; optional ones only when some run has them.
FINAL_COLUMNS = {
    "final_accuracy": ACCURACY,
    "final_format_rate": "eval/format_rate",
    "final_mean_length": "train/completions/mean_length",
}
OPTIONAL_COLUMNS = {
    "step0_accuracy": ("eval_step0/eval/accuracy", "eval_step0/accuracy"),
    "final_accuracy_sampled": ("eval/accuracy_sampled",),
    "final_think_tokens": ("eval/think_tokens",),
    "final_candidates_tried": ("eval/candidates_tried",),
    "final_reflection_rate": ("train/aha/reflection_rate",),
    "final_equations_tried": ("train/aha/equations_tried",),
}
# Aggregated with a confidence interval (the rest get mean ± std).
WITH_CI = ("final_accuracy", "best_accuracy")
# file name -> (metric, y-axis label, y range or None)
PLOTS = {
    "accuracy.png": (ACCURACY, "held-out accuracy (greedy)", (-0.02, 1.02)),
    "reward.png": ("train/reward", "training reward", None),
    "completion_length.png": ("train/completions/mean_length", "mean completion length (tokens)", None),
}
SIGNIFICANCE = 0.05
# Per-run table columns that hold metrics (aggregated per configuration).
METRIC_PREFIXES = ("final_", "best_", "pass@", "step0_", "baseline_")


# --- one row per run ---------------------------------------------------------------------------


def varying_axes(runs: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(varying, fixed) axis columns; runs whose axes are unknown (all empty) do not make an axis vary."""
    axes = list(runs.attrs.get("axes", []))
    known = runs.dropna(subset=axes, how="all") if axes else runs
    varying = [a for a in axes if known[a].astype(str).nunique() > 1]
    return varying, [a for a in axes if a not in varying]


def _sort_key(column: pd.Series) -> pd.Series:
    """Numbers by value, then text, empty last."""
    numeric = pd.to_numeric(column, errors="coerce")
    return numeric if numeric.notna().sum() == column.notna().sum() else column.astype(str).where(column.notna())


def per_run_table(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """One row per run: axes (varying first), status, steps, final and best held-out accuracy, the first steps
    at which it reached THRESHOLDS, final format rate and completion length, pass@k, optional metrics."""
    varying, fixed = varying_axes(runs)
    accuracy = curves[curves.metric == ACCURACY]
    table = runs[["run", *varying, *fixed, "status", "steps"]].copy()
    table["final_accuracy"] = runs.get(ACCURACY)
    table["best_accuracy"] = table.run.map(accuracy.groupby("run").value.max())
    for name in BASELINES:
        if f"baselines/{name}" in runs and runs[f"baselines/{name}"].notna().any():
            table[f"baseline_{name}"] = runs[f"baselines/{name}"]
    for threshold in THRESHOLDS:
        reached = accuracy[accuracy.value >= threshold].groupby("run").step.min()
        table[f"step_accuracy_{threshold:.0%}"] = table.run.map(reached).astype("Int64")
    for column, metric in FINAL_COLUMNS.items():
        if column != "final_accuracy":
            table[column] = runs.get(metric)
    pass_ks = sorted((c for c in runs.columns if c.startswith("eval/pass@")), key=lambda c: int(c.rsplit("@", 1)[1]))
    for column in pass_ks:
        table[column.removeprefix("eval/")] = runs[column]
    for column, candidates in OPTIONAL_COLUMNS.items():
        if metric := next((m for m in candidates if m in runs and runs[m].notna().any()), None):
            table[column] = runs[metric]
    # Metrics no run has (a task without a format reward) are left out.
    table = table.drop(columns=[c for c in table.columns[table.isna().all()] if c.startswith(METRIC_PREFIXES)
                                and c not in ("final_accuracy", "best_accuracy")])
    table = table.sort_values([*varying, "run"], key=_sort_key, na_position="last", kind="stable")
    return table.reset_index(drop=True)


# --- one row per configuration -----------------------------------------------------------------


def _metric_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c.startswith(METRIC_PREFIXES)]


def _ci95(values: pd.Series) -> tuple[float, float]:
    values = values.dropna()
    if len(values) < 2:
        return (np.nan, np.nan)
    return stats.t.interval(0.95, df=len(values) - 1, loc=values.mean(), scale=stats.sem(values))


def _verdict(reference: pd.Series, values: pd.Series) -> tuple[str, float]:
    """Welch's t-test of `values` against the best configuration's: the verdict and its p-value."""
    reference, values = reference.dropna(), values.dropna()
    if len(reference) < 2 or len(values) < 2:
        return "untested (n < 2)", np.nan
    if reference.std() == 0 and values.std() == 0:
        # scipy's t statistic is undefined without variance: equal means are the same, others differ for sure.
        return ("within seed noise", 1.0) if reference.mean() == values.mean() else ("below best", 0.0)
    p = float(stats.ttest_ind(reference, values, equal_var=False).pvalue)
    return ("below best" if p < SIGNIFICANCE else "within seed noise"), p


def config_table(table: pd.DataFrame, group_by: Sequence[str]) -> pd.DataFrame:
    """One row per configuration (`group_by` values): n finished seeds, `<metric>_mean`, `_std` (and `_ci95_low`,
    `_ci95_high` for WITH_CI), the runs' statuses, and with several configurations a Welch verdict vs the best."""
    metrics = _metric_columns(table)
    finished = table[table.status == "finished"]
    keys = list(group_by) or [lambda _: "all runs"]
    rows = []
    for key, runs in table.groupby(keys, dropna=False, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        done = finished.loc[finished.index.intersection(runs.index)]
        row: dict[str, Any] = dict(zip(group_by, key))
        row["n"] = len(done)
        row["runs"] = ", ".join(f"{count} {status}" for status, count in runs.status.value_counts().items())
        for metric in metrics:
            values = pd.to_numeric(done[metric], errors="coerce")
            row[f"{metric}_mean"], row[f"{metric}_std"] = values.mean(), values.std()
            if metric in WITH_CI:
                row[f"{metric}_ci95_low"], row[f"{metric}_ci95_high"] = _ci95(values)
        row["_values"] = pd.to_numeric(done["final_accuracy"], errors="coerce")
        rows.append(row)
    configs = pd.DataFrame(rows)
    if len(configs) > 1:
        best = configs.final_accuracy_mean.idxmax() if configs.final_accuracy_mean.notna().any() else None
        verdicts = [("best", np.nan) if i == best else
                    _verdict(configs.at[best, "_values"], configs.at[i, "_values"]) if best is not None else
                    ("untested (no finished run)", np.nan) for i in configs.index]
        configs["vs_best"] = [v for v, _ in verdicts]
        configs["welch_p"] = [p for _, p in verdicts]
    configs = configs.drop(columns="_values")
    if group_by:
        configs = configs.sort_values(list(group_by), key=_sort_key, na_position="last", kind="stable")
    return configs.reset_index(drop=True)


# --- writing -----------------------------------------------------------------------------------


def _short(value: Any) -> str:
    """A value as run names write it (1e-3 -> 0.001); missing -> empty."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{value:g}"
    return str(value)


def _decimals(metric: str) -> int:
    return 1 if metric.endswith(("mean_length", "equations_tried", "think_tokens", "candidates_tried")) else 3


def _run_cell(column: str, value: Any) -> str:
    if column.startswith(METRIC_PREFIXES) and isinstance(value, (float, np.floating)):
        return "" if np.isnan(value) else f"{value:.{_decimals(column)}f}"
    return _short(value)


def _config_cells(row: pd.Series, metric: str) -> str:
    mean, std, d = row[f"{metric}_mean"], row[f"{metric}_std"], _decimals(metric)
    if np.isnan(mean):
        return ""
    cell = f"{mean:.{d}f}" + ("" if np.isnan(std) else f" ± {std:.{d}f}")
    if metric in WITH_CI and not np.isnan(row[f"{metric}_ci95_low"]):
        cell += f" [{row[f'{metric}_ci95_low']:.{d}f}, {row[f'{metric}_ci95_high']:.{d}f}]"
    return cell


def _markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(row) + " |" for row in rows)]


def write_tables(table: pd.DataFrame, configs: pd.DataFrame, group_by: Sequence[str], varying: Sequence[str],
                 out_dir: Path, title: str) -> list[Path]:
    """table.md/.csv (one row per configuration) and runs.md/.csv (one row per run) in `out_dir`."""
    paths = [out_dir / "table.md", out_dir / "table.csv", out_dir / "runs.md", out_dir / "runs.csv"]
    configs.to_csv(paths[1], index=False)
    table.to_csv(paths[3], index=False)
    metrics = _metric_columns(table)
    extra = [c for c in ("vs_best",) if c in configs]
    header = [f"**{c}**" for c in group_by] + ["n", "runs", *metrics, *extra]
    rows = [[_short(row[c]) for c in group_by] + [str(row["n"]), row["runs"]]
            + [_config_cells(row, m) for m in metrics]
            + ([f"{row['vs_best']}" + ("" if np.isnan(row["welch_p"]) or row["vs_best"] == "best"
                                       else f" (p={row['welch_p']:.3g})")] if extra else [])
            for _, row in configs.iterrows()]
    n_runs, n_configs = len(table), len(configs)
    paths[0].write_text("\n".join([
        f"# r1lab compare: {title}", "",
        f"{n_runs} runs in {n_configs} configurations; varying: {', '.join(varying) or 'nothing'}. "
        f"Per configuration: n finished seeds, mean ± std, [95 % CI, Student's t] of held-out greedy `{ACCURACY}`. "
        + ("`vs_best`: Welch's t-test of final accuracy over seeds against the best configuration "
           f"(p < {SIGNIFICANCE}, uncorrected). " if extra else "")
        + "One row per run: runs.md.", "",
        *_markdown(header, rows),
    ]) + "\n")
    run_columns = list(table.columns)
    paths[2].write_text("\n".join([
        f"# r1lab compare: {title}, one row per run", "",
        "step_accuracy_N is the first step held-out accuracy reached N.", "",
        *_markdown([f"**{c}**" if c in varying else c for c in run_columns],
                   [[_run_cell(c, row[c]) for c in run_columns] for _, row in table.iterrows()]),
    ]) + "\n")
    return paths


def _config_label(key: tuple, group_by: Sequence[str], runs: pd.DataFrame) -> str:
    label = ", ".join(f"{a}={_short(v)}" for a, v in zip(group_by, key)) or "all runs"
    unfinished = runs[runs.status != "finished"].status.value_counts()
    note = "".join(f", {count} {status}" for status, count in unfinished.items())
    return f"{label} (n={len(runs)}{note})"


def plot(table: pd.DataFrame, curves: pd.DataFrame, group_by: Sequence[str], metric: str, ylabel: str,
         ylim: tuple[float, float] | None, path: Path, baseline: float | None = None) -> Path:
    """Each configuration's mean curve of `metric` over its runs, with a ±1 std band where it has several."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    data = curves[curves.metric == metric].merge(table[["run", *group_by]], on="run")
    palette = plt.get_cmap("tab10")
    drawn = 0
    keys = list(group_by) or [lambda _: ()]
    for i, (key, runs) in enumerate(table.groupby(keys, dropna=False, sort=False)):
        key = key if isinstance(key, tuple) else (key,)
        points = data[data.run.isin(runs.run)].groupby("step").value.agg(["mean", "std", "count"])
        if points.empty:
            continue
        colour = palette(i % 10)
        ax.plot(points.index, points["mean"], color=colour, marker="o" if len(points) <= 20 else None,
                markersize=3, label=_config_label(key if group_by else (), group_by, runs))
        band = points[points["count"] > 1]
        ax.fill_between(band.index, band["mean"] - band["std"], band["mean"] + band["std"], color=colour, alpha=0.2,
                        linewidth=0)
        drawn += 1
    if baseline is not None:
        ax.axhline(baseline, color="grey", linestyle="--", linewidth=1, label="best target-blind baseline")
    ax.set_xlabel(STEP)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_title(f"{metric}: mean over seeds ± 1 std, by {', '.join(group_by) or 'run'}")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize="small", loc="best")
    else:
        ax.text(0.5, 0.5, f"no run logged {metric}", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# --- the whole comparison ----------------------------------------------------------------------


def compare(runs: pd.DataFrame, curves: pd.DataFrame, out_dir: Path, title: str) -> list[Path]:
    """Write table.md/.csv, runs.md/.csv and the PNGs of PLOTS into `out_dir`; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    varying, _ = varying_axes(runs)
    group_by = [a for a in varying if a != "seed"]
    table = per_run_table(runs, curves)
    configs = config_table(table, group_by)
    written = write_tables(table, configs, group_by, varying, out_dir, title)
    baseline = table["baseline_best_target_blind"].mean() if "baseline_best_target_blind" in table else None
    for name, (metric, ylabel, ylim) in PLOTS.items():
        written.append(plot(table, curves, group_by, metric, ylabel, ylim, out_dir / name,
                            baseline if metric == ACCURACY else None))
    return written
