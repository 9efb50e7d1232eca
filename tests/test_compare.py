"""`r1lab compare`: the per-run table, seed aggregation with a Welch verdict, the plots, the CLI, a real sweep."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib import image
from scipy import stats

from r1lab import compare, runs
from r1lab.cli import main
from tests.conftest import REPO, launch
from tests.fake_runs import AXES, FakeWandbRun, fake_wandb, sweep, write_run  # noqa: F401 - fixtures


def rows_by_run(source) -> dict[str, dict]:
    table = compare.per_run_table(*runs.load(source))
    return {row["run"]: row for row in table.to_dict("records")}


def test_per_run_table(sweep):
    table = compare.per_run_table(*runs.load(sweep))
    assert list(table.columns[:9]) == ["run", "lr", "seed", "model", "variant", "algo", "task", "beta", "status"]
    # Sorted by the varying axes (lr, then seed); the run without axes last.
    assert table.run.tolist() == ["extra/0", "1", "3", "0", "2", "4"]
    by_run = rows_by_run(sweep)
    assert {k: by_run["0"][k] for k in ("final_accuracy", "best_accuracy", "step_accuracy_25%", "step_accuracy_50%",
                                        "final_format_rate", "final_mean_length", "steps", "pass@1", "pass@8")} == {
        "final_accuracy": 0.6, "best_accuracy": 0.6, "step_accuracy_25%": 4, "step_accuracy_50%": 6,
        "final_format_rate": 0.5, "final_mean_length": 46.0, "steps": 6, "pass@1": 0.2, "pass@8": 0.6}
    assert by_run["1"]["step_accuracy_25%"] == 6 and pd.isna(by_run["1"]["step_accuracy_50%"])
    assert by_run["2"]["status"] == "crashed" and by_run["2"]["step_accuracy_50%"] == 2
    assert by_run["3"]["final_accuracy"] == 0.25 and np.isnan(by_run["3"]["pass@8"])


def seed_sweep(root: Path, finals: dict[float, list[float]], extra: dict | None = None) -> Path:
    """Finished runs, one per (lr, seed), whose final held-out accuracies are `finals[lr]`."""
    num = 0
    for lr, accuracies in finals.items():
        for seed, accuracy in enumerate(accuracies):
            write_run(root / str(num), lr=lr, seed=seed, accuracy={3: accuracy / 2, 6: accuracy}, status="finished",
                      summary_extra=extra)
            num += 1
    return root


def test_seeds_aggregate_into_one_row_per_configuration(tmp_path):
    finals = {1e-2: [0.80, 0.84, 0.76], 1e-3: [0.20, 0.26, 0.17], 1e-4: [0.78, 0.70, 0.86]}
    table = compare.per_run_table(*runs.load(seed_sweep(tmp_path, finals)))
    configs = compare.config_table(table, ["lr"]).set_index("lr")
    assert configs.n.to_dict() == {1e-4: 3, 1e-3: 3, 1e-2: 3} and set(configs.runs) == {"3 finished"}
    for lr, values in finals.items():
        row = configs.loc[lr]
        assert row.final_accuracy_mean == pytest.approx(np.mean(values))
        assert row.final_accuracy_std == pytest.approx(np.std(values, ddof=1))
        half_width = stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / np.sqrt(3)
        assert (row.final_accuracy_ci95_low, row.final_accuracy_ci95_high) == pytest.approx(
            (np.mean(values) - half_width, np.mean(values) + half_width))
    # Best: lr 1e-2. lr 1e-3 is far below it; 1e-4 is within the seeds' spread.
    assert configs.vs_best.to_dict() == {1e-4: "within seed noise", 1e-3: "below best", 1e-2: "best"}
    assert configs.loc[1e-3, "welch_p"] < 0.05 < configs.loc[1e-4, "welch_p"]
    assert configs.loc[1e-3, "welch_p"] == pytest.approx(
        stats.ttest_ind(finals[1e-2], finals[1e-3], equal_var=False).pvalue)


def test_unfinished_runs_are_listed_but_not_averaged(sweep):
    table = compare.per_run_table(*runs.load(sweep))
    configs = compare.config_table(table, ["lr"]).set_index("lr")
    assert configs.loc[1e-3, "n"] == 1 and configs.loc[1e-3, "runs"] == "1 finished, 1 crashed"
    assert configs.loc[1e-3, "final_accuracy_mean"] == 0.6  # the crashed seed's 0.5 is not a final
    assert configs.loc[1e-3, "vs_best"] == "best" and configs.loc[5e-4, "vs_best"] == "untested (n < 2)"


def assert_real_png(path: Path) -> None:
    pixels = image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert len(np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0)) > 2


def test_compare_writes_tables_and_plots(tmp_path):
    finals = {1e-2: [0.8, 0.84, 0.76], 1e-3: [0.2, 0.26, 0.17]}
    source = seed_sweep(tmp_path / "sweep", finals, extra={"baselines": {"best_target_blind": 0.185}})
    out = tmp_path / "out"
    written = compare.compare(*runs.load(source), out, "fake sweep")
    assert sorted(p.name for p in written) == sorted(["table.md", "table.csv", "runs.md", "runs.csv", *compare.PLOTS])
    with (out / "table.csv").open() as f:
        configs = list(csv.DictReader(f))
    assert [(row["lr"], row["n"], row["vs_best"]) for row in configs] == [("0.001", "3", "below best"),
                                                                          ("0.01", "3", "best")]
    markdown = (out / "table.md").read_text()
    assert "| **lr** | n | runs | final_accuracy | best_accuracy |" in markdown
    assert "| 0.01 | 3 | 3 finished | 0.800 ± 0.040 [0.701, 0.899] |" in markdown
    assert "below best (p=" in markdown and "| 0.185 ± 0.000 |" in markdown
    with (out / "runs.csv").open() as f:
        assert [(row["lr"], row["seed"]) for row in csv.DictReader(f)] == [
            ("0.001", "0"), ("0.001", "1"), ("0.001", "2"), ("0.01", "0"), ("0.01", "1"), ("0.01", "2")]
    for name in compare.PLOTS:
        assert_real_png(out / name)


def test_plot_draws_a_band_over_seeds(tmp_path):
    """One mean line and one filled band per configuration with several seeds."""
    import matplotlib.pyplot as plt

    source = seed_sweep(tmp_path / "sweep", {1e-2: [0.8, 0.6], 1e-3: [0.2]})
    table, curves = runs.load(source)
    per_run = compare.per_run_table(table, curves)
    drawn = {}
    original = plt.Figure.savefig

    def keep(figure, path, *args, **kwargs):
        (axes,) = figure.axes
        drawn["lines"] = [(line.get_label(), list(line.get_ydata())) for line in axes.get_lines()]
        drawn["bands"] = len(axes.collections)
        return original(figure, path, *args, **kwargs)

    plt.Figure.savefig = keep
    try:
        compare.plot(per_run, curves, ["lr"], "eval/accuracy", "acc", None, tmp_path / "a.png")
    finally:
        plt.Figure.savefig = original
    assert drawn["lines"] == [("lr=0.001 (n=1)", [0.1, 0.2]), ("lr=0.01 (n=2)", [pytest.approx(0.35), 0.7])]
    assert drawn["bands"] == 2  # fill_between adds a (here empty) collection for lr=0.001 too


def test_cli_reads_a_wandb_group(fake_wandb, tmp_path, capsys):
    assert main(["compare", "me/r1lab/sweep-x", "--out", str(tmp_path / "a")]) == 0
    assert main(["compare", "sweep-x", "--project", "me/r1lab", "--out", str(tmp_path / "b")]) == 0
    assert fake_wandb == [("me/r1lab", {"group": "sweep-x"})] * 2
    assert "W&B me/r1lab, group sweep-x" in (tmp_path / "a" / "table.md").read_text()
    assert "[4] me/r1lab/D d (failed" in capsys.readouterr().err


def test_cli_errors(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 1
    assert main(["compare", "not-a-dir-nor-group", "--out", str(tmp_path / "out")]) == 2
    assert "neither a directory nor ENTITY/PROJECT/GROUP" in capsys.readouterr().err


def test_baselines_stand_beside_accuracy(tmp_path):
    baselines = {"best_target_blind": 0.185, "sum_of_all": 0.142, "random_valid_expression": 0.047}
    write_run(tmp_path / "sweep" / "0", lr=1e-3, seed=0, accuracy={6: 0.3}, status="finished",
              summary_extra={"baselines": baselines})
    write_run(tmp_path / "sweep" / "1", lr=1e-3, seed=1, accuracy={6: 0.1}, status="crashed")  # none recorded
    from_dirs = rows_by_run(tmp_path / "sweep")
    wandb_run = FakeWandbRun("w", "finished", {**AXES, "lr": 1e-3, "seed": 0}, [],
                             {f"baselines/{name}": value for name, value in baselines.items()})
    from_wandb = compare.per_run_table(*runs.frames([runs.wandb_record(wandb_run)])).iloc[0]
    for row in (from_dirs["0"], from_wandb):
        assert {name: row[f"baseline_{name}"] for name in compare.BASELINES} == baselines
    assert np.isnan(from_dirs["1"]["baseline_best_target_blind"])
    columns = list(compare.per_run_table(*runs.load(tmp_path / "sweep")).columns)
    assert columns.index("baseline_best_target_blind") == columns.index("best_accuracy") + 1


@pytest.mark.slow
def test_real_sweep_then_compare(tmp_path):
    sweep_dir, out = tmp_path / "sweep", tmp_path / "compare"
    run = launch("-m", "model=tiny", "algo.lr=1e-3,5e-4", "seed=0,1", "train.max_steps=4", "eval.every_steps=2",
                 "eval.num_prompts=8", "logger=none", f"hydra.sweep.dir={sweep_dir}")
    assert run.returncode == 0, run.stderr[-3000:]
    # What the comparison reads besides the table's columns: aha metrics every step, samples, pass@k.
    records = [json.loads(line) for line in (sweep_dir / "0" / "metrics.jsonl").read_text().splitlines()]
    assert [r["train/global_step"] for r in records if "train/aha/reflection_rate" in r] == [1, 2, 3, 4]
    assert all({"train/aha/equations_tried", "train/aha/accuracy", "train/aha/format_rate"} <= r.keys()
               for r in records if "train/aha/reflection_rate" in r)
    assert "=== step 4 |" in (sweep_dir / "0" / "completion_samples" / "completion_samples.txt").read_text()
    assert "eval/pass@8" in json.loads((sweep_dir / "0" / "summary.json").read_text())

    cli = subprocess.run([sys.executable, "-m", "r1lab.cli", "compare", str(sweep_dir), "--out", str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    with (out / "runs.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [(row["lr"], row["seed"], row["status"]) for row in table] == [
        ("0.0005", "0", "finished"), ("0.0005", "1", "finished"), ("0.001", "0", "finished"),
        ("0.001", "1", "finished")]
    assert all(row["final_accuracy"] != "" and row["steps"] == "4" for row in table)
    with (out / "table.csv").open() as f:
        assert [(row["lr"], row["n"]) for row in csv.DictReader(f)] == [("0.0005", "2"), ("0.001", "2")]
    assert "| **lr** | n | runs |" in (out / "table.md").read_text()
    for name in compare.PLOTS:
        assert_real_png(out / name)

    status = subprocess.run([sys.executable, "-m", "r1lab.cli", "status", str(sweep_dir)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    assert "4 jobs (4 finished)" in status.stdout and status.stdout.count(" 4/4 ") == 4
