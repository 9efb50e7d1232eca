"""`r1lab.runs.load`: run dirs and W&B groups as the two tidy frames compare and notebooks use."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from r1lab import runs
from tests.conftest import compose
from tests.fake_runs import AXES, fake_wandb, sweep, write_run  # noqa: F401 - fixtures

AXIS_COLUMNS = ["model", "variant", "algo", "task", "lr", "beta", "seed"]


def test_run_dirs_are_found_recursively(sweep):
    assert [p.relative_to(sweep).as_posix() for p in runs.find_run_dirs(sweep)] == ["0", "1", "2", "3", "4", "extra/0"]


def test_load_a_sweep_dir(sweep):
    table, curves = runs.load(sweep)
    assert list(table.columns[:11]) == ["run", *AXIS_COLUMNS, "status", "steps", "source"]
    assert table.attrs["axes"] == AXIS_COLUMNS
    by_run = table.set_index("run")
    assert by_run.status.to_dict() == {"0": "finished", "1": "finished", "2": "crashed", "3": "running",
                                       "4": "running", "extra/0": "finished"}
    # A running run's axes come from the config Hydra saved; a run just started has none.
    assert (by_run.loc["3", "lr"], by_run.loc["3", "seed"]) == (5e-4, 1)
    assert math.isnan(by_run.loc["4", "lr"]) and by_run.loc["4", "steps"] is pd.NA
    # Final values: the summary's, else the last logged one; unknown stays empty.
    assert by_run.loc["0", "eval/accuracy"] == 0.6 and by_run.loc["0", "eval/pass@8"] == 0.6
    assert by_run.loc["3", "eval/accuracy"] == 0.25 and math.isnan(by_run.loc["3", "eval/pass@8"])
    assert by_run.loc["0", "steps"] == 6 and by_run.loc["0", "source"] == str(sweep / "0")

    assert list(curves.columns) == ["run", "step", "metric", "value"]
    run0 = curves[curves.run == "0"]
    # 6 steps x 3 training metrics + 3 evaluations x 2 eval metrics; the torn last line is skipped.
    assert len(run0) == 6 * 3 + 3 * 2
    assert run0[run0.metric == "eval/accuracy"][["step", "value"]].values.tolist() == [[2, 0.1], [4, 0.3], [6, 0.6]]
    assert set(curves.run) == {"0", "1", "2", "3", "extra/0"}


def test_nested_summary_entries_are_flattened(tmp_path):
    extra = {"baselines": {"best_target_blind": 0.185, "sum_of_all": 0.056}, "eval_step0": {"eval/accuracy": 0.05},
             "wandb": {"id": "x", "mode": "offline"}}
    write_run(tmp_path / "0", lr=1e-3, seed=0, accuracy={2: 0.3}, status="finished", summary_extra=extra)
    table, _ = runs.load(tmp_path)
    row = table.iloc[0]
    assert row["baselines/best_target_blind"] == 0.185 and row["eval_step0/eval/accuracy"] == 0.05
    assert not any(c.startswith(("wandb/", "axes/")) for c in table.columns)


def test_a_config_key_varied_beside_the_axes_is_a_column(tmp_path):
    """Seeds are averaged only over runs whose configs differ in nothing else: a swept `algo.epsilon` counts,
    a key that only follows an axis (the learning rate inside algo) does not add a column."""
    for num, (epsilon, lr, seed) in enumerate([(0.1, 1e-3, 0), (0.1, 1e-3, 1), (0.2, 1e-3, 0), (0.2, 5e-4, 1)]):
        write_run(tmp_path / str(num), lr=lr, seed=seed, accuracy={2: 0.1}, status="finished",
                  hydra_config=compose(f"algo.epsilon={epsilon}", f"algo.lr={lr}", f"seed={seed}",
                                       f"run_name=job{num}"))
    table, _ = runs.load(tmp_path)
    assert table.attrs["axes"] == [*AXIS_COLUMNS, "algo.epsilon"]
    assert table["algo.epsilon"].tolist() == [0.1, 0.1, 0.2, 0.2]


def test_load_a_wandb_group(fake_wandb):
    table, curves = runs.load("me/r1lab/sweep-x")
    assert fake_wandb == [("me/r1lab", {"group": "sweep-x"})]
    by_run = table.set_index("run")
    assert by_run.status.to_dict() == {"a": "finished", "b": "crashed", "c": "running", "d": "failed"}
    assert by_run.loc["a", "eval/accuracy"] == 0.5 and by_run.loc["a", "eval/pass@8"] == 0.75
    assert "_step" not in table.columns and by_run.loc["a", "source"] == "me/r1lab/A"
    assert by_run.loc["c", "eval/accuracy"] == 0.26  # no summary yet: the last logged value
    # x is train/global_step, never W&B's own _step.
    assert curves[(curves.run == "a") & (curves.metric == "eval/accuracy")].step.tolist() == [1, 2]
    assert runs.load("sweep-x", project="me/r1lab")[0].run.tolist() == ["a", "b", "c", "d"]


def test_a_source_that_is_neither_dir_nor_group():
    with pytest.raises(ValueError, match="neither a directory nor ENTITY/PROJECT/GROUP"):
        runs.load("not-a-dir")
