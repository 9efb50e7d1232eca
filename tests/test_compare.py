"""`r1lab compare`: reading run dirs and W&B-shaped runs, the table, the plots, the CLI, and a real sweep."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image
from omegaconf import OmegaConf

from r1lab import compare
from r1lab.cli import main
from tests.conftest import REPO, compose, launch

AXES = {"model": "tiny", "variant": "base", "algo": "grpo", "task": "countdown", "beta": 0.001}


def write_run(run_dir: Path, *, lr: float | None, seed: int | None, accuracy: dict[int, float], status: str | None,
              steps: int = 6, hydra_config=None) -> None:
    """A run dir as r1lab leaves it: metrics.jsonl, and summary.json unless the run is still going."""
    run_dir.mkdir(parents=True)
    records = []
    for step in range(1, steps + 1):
        records.append({"train/reward": 0.1 * step, "train/completions/mean_length": 40.0 + step,
                        "train/aha/reflection_rate": 0.01 * step, "train/global_step": step})
        if step in accuracy:
            records.append({"eval/accuracy": accuracy[step], "eval/format_rate": 0.5, "train/global_step": step})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + '{"torn')
    if status is not None:
        summary = {"status": status, "axes": {**AXES, "lr": lr, "seed": seed}, "global_step": steps,
                   "run_name": f"run-lr{lr}-seed{seed}",
                   **{k: v for r in records for k, v in r.items()}}
        if status == "finished":
            summary["eval/pass@1"], summary["eval/pass@8"] = 0.2, 0.6
        (run_dir / "summary.json").write_text(json.dumps(summary, sort_keys=True))
    if hydra_config is not None:
        (run_dir / ".hydra").mkdir()
        OmegaConf.save(hydra_config, run_dir / ".hydra" / "config.yaml")
    # A run's own subdirs never count as runs, whatever they hold.
    (run_dir / "checkpoint-2").mkdir()
    (run_dir / "checkpoint-2" / "metrics.jsonl").write_text("{}\n")


@pytest.fixture
def sweep(tmp_path) -> Path:
    root = tmp_path / "sweep"
    write_run(root / "0", lr=1e-3, seed=0, accuracy={2: 0.1, 4: 0.3, 6: 0.6}, status="finished")
    write_run(root / "1", lr=5e-4, seed=0, accuracy={2: 0.0, 4: 0.2, 6: 0.26}, status="finished")
    write_run(root / "2", lr=1e-3, seed=1, accuracy={2: 0.5}, status="crashed", steps=3)
    # Still running: no summary yet, so its axes come from the config Hydra saved.
    write_run(root / "3", lr=None, seed=None, accuracy={2: 0.25}, status=None, steps=2,
              hydra_config=compose("algo.lr=5e-4", "seed=1"))
    # Just started: an empty metrics.jsonl, no saved config. Listed without axes; it makes no axis vary.
    (root / "4").mkdir()
    (root / "4" / "metrics.jsonl").write_text("")
    # Another sweep below the first: found too, its path naming it.
    write_run(root / "extra" / "0", lr=1e-4, seed=0, accuracy={}, status="finished", steps=1)
    return root


def assert_columns(row: dict, **expected) -> None:
    """`row` has these values; `step_accuracy_25` names column `step_accuracy_25%`, `pass_8` names `pass@8`."""
    names = {key: key.replace("pass_", "pass@") + ("%" if key.startswith("step_accuracy_") else "") for key in expected}
    assert {names[key]: row[names[key]] for key in expected} == {names[key]: value for key, value in expected.items()}


def rows_by_run(runs) -> dict[str, dict]:
    _, rows = compare.table(runs)
    return {row["run"]: row for row in rows}


def test_run_dirs_are_found_recursively_and_read(sweep):
    assert [p.relative_to(sweep).as_posix() for p in compare.find_run_dirs(sweep)] == [
        "0", "1", "2", "3", "4", "extra/0"]
    runs = {run.name: run for run in compare.read_sweep_dir(sweep)}
    assert {name: run.status for name, run in runs.items()} == {
        "0": "finished", "1": "finished", "2": "crashed", "3": "running", "4": "running", "extra/0": "finished"}
    assert runs["4"].axes == {} and runs["4"].history == []
    assert runs["3"].axes == {**AXES, "lr": 5e-4, "seed": 1}
    assert len(runs["0"].history) == 9  # the torn last line of a crash is skipped


def test_table_rows_axes_and_thresholds(sweep):
    runs = compare.read_sweep_dir(sweep)
    columns, rows = compare.table(runs)
    assert columns[:9] == ["run", "lr", "seed", "model", "variant", "algo", "task", "beta", "status"]
    # Sorted by the varying axes: lr, then seed.
    assert [(row["lr"], row["seed"]) for row in rows] == [
        (1e-4, 0), (5e-4, 0), (5e-4, 1), (1e-3, 0), (1e-3, 1), (None, None)]
    assert compare.axis_names(runs) == (["lr", "seed"], ["model", "variant", "algo", "task", "beta"])
    by_run = rows_by_run(runs)
    assert_columns(by_run["0"], final_accuracy=0.6, best_accuracy=0.6, step_accuracy_25=4, step_accuracy_50=6,
                   final_format_rate=0.5, final_mean_length=46.0, steps=6, pass_1=0.2, pass_8=0.6)
    assert (by_run["1"]["step_accuracy_25%"], by_run["1"]["step_accuracy_50%"]) == (6, None)
    assert by_run["2"]["status"] == "crashed" and by_run["2"]["step_accuracy_50%"] == 2
    assert by_run["3"]["status"] == "running" and by_run["3"]["step_accuracy_25%"] == 2
    assert by_run["3"]["final_accuracy"] == 0.25 and by_run["3"]["pass@8"] is None
    assert by_run["extra/0"]["final_accuracy"] is None and by_run["extra/0"]["best_accuracy"] is None


def assert_real_png(path: Path) -> None:
    pixels = image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert len(np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0)) > 2


def test_compare_writes_table_and_plots(sweep, tmp_path):
    out = tmp_path / "out"
    written = compare.compare(compare.read_sweep_dir(sweep), out, "fake sweep")
    assert sorted(p.name for p in written) == sorted(["table.md", "table.csv", *compare.PLOTS])
    with (out / "table.csv").open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == 6 and {row["status"] for row in table} == {"finished", "crashed", "running"}
    assert [row["lr"] for row in table] == ["0.0001", "0.0005", "0.0005", "0.001", "0.001", ""]
    markdown = (out / "table.md").read_text()
    assert "| run | **lr** | **seed** | model |" in markdown and "varying: lr, seed" in markdown
    assert markdown.count("\n| ") == 7 and "| crashed |" in markdown and "| running |" in markdown
    for name in compare.PLOTS:
        assert_real_png(out / name)


class FakeWandbRun:
    """The parts of `wandb.apis.public.Run` that compare reads, with W&B's semantics for scan_history."""

    def __init__(self, name, state, axes, rows, summary):
        self.id, self.name, self.state = name.upper(), name, state
        self.config = {"axes": axes, "algo": {"lr": axes["lr"]}}
        self.summary_metrics = summary
        self._rows = rows

    def scan_history(self, keys=None):
        # Only rows holding every requested key, as W&B returns them (with its own _step).
        return iter([{**row, "_step": 10 * i} for i, row in enumerate(self._rows) if all(k in row for k in keys)])


def wandb_runs() -> list[FakeWandbRun]:
    def rows(accuracies):
        out = []
        for step, accuracy in enumerate(accuracies, 1):
            out.append({"train/global_step": step, "train/reward": step / 10, "train/completions/mean_length": 50.0})
            out.append({"train/global_step": step, "eval/accuracy": accuracy, "eval/format_rate": 0.9})
        return out

    return [
        FakeWandbRun("a", "finished", {**AXES, "lr": 1e-3, "seed": 0}, rows([0.3, 0.5]),
                     {"eval/accuracy": 0.5, "eval/pass@8": 0.75, "_step": 99}),
        FakeWandbRun("b", "crashed", {**AXES, "lr": 1e-3, "seed": 1}, rows([0.1]), {"eval/accuracy": 0.1}),
        FakeWandbRun("c", "running", {**AXES, "lr": 5e-4, "seed": 0}, rows([0.0, 0.26]), {}),
        FakeWandbRun("d", "failed", {**AXES, "lr": 5e-4, "seed": 1}, [], {}),
    ]


def test_table_from_wandb_shaped_runs():
    runs = [compare.wandb_record(run) for run in wandb_runs()]
    assert runs[0].curve("eval/accuracy") == [(1, 0.3), (2, 0.5)]
    by_run = rows_by_run(runs)
    assert [(r["run"], r["status"]) for r in compare.table(runs)[1]] == [
        ("c", "running"), ("d", "failed"), ("a", "finished"), ("b", "crashed")]
    assert_columns(by_run["a"], final_accuracy=0.5, best_accuracy=0.5, step_accuracy_25=1, step_accuracy_50=2,
                   final_format_rate=0.9, final_mean_length=50.0, steps=2, pass_8=0.75)
    assert by_run["c"]["step_accuracy_25%"] == 2 and by_run["c"]["final_accuracy"] == 0.26
    assert by_run["d"]["final_accuracy"] is None and by_run["d"]["steps"] is None


def test_cli_reads_a_wandb_group(monkeypatch, tmp_path, capsys):
    calls = []

    class FakeApi:
        def runs(self, path, filters):
            calls.append((path, filters))
            return wandb_runs()

    import wandb

    monkeypatch.setattr(wandb, "Api", FakeApi)
    assert main(["compare", "me/r1lab/sweep-x", "--out", str(tmp_path / "a")]) == 0
    assert main(["compare", "sweep-x", "--project", "me/r1lab", "--out", str(tmp_path / "b")]) == 0
    assert calls == [("me/r1lab", {"group": "sweep-x"})] * 2
    assert "W&B me/r1lab, group sweep-x" in (tmp_path / "a" / "table.md").read_text()
    assert "[4] me/r1lab/D d (failed" in capsys.readouterr().err


def test_cli_errors(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 1
    assert main(["compare", "not-a-dir-nor-group", "--out", str(tmp_path / "out")]) == 2
    assert "neither a directory nor ENTITY/PROJECT/GROUP" in capsys.readouterr().err


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
    with (out / "table.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [(row["lr"], row["seed"], row["status"]) for row in table] == [
        ("0.0005", "0", "finished"), ("0.0005", "1", "finished"), ("0.001", "0", "finished"),
        ("0.001", "1", "finished")]
    assert all(row["final_accuracy"] != "" and row["steps"] == "4" for row in table)
    assert "| run | **lr** | **seed** |" in (out / "table.md").read_text()
    for name in compare.PLOTS:
        assert_real_png(out / name)


def test_baselines_stand_beside_accuracy(tmp_path):
    baselines = {"best_target_blind": 0.185, "sum_of_all": 0.142, "random_valid_expression": 0.047}
    write_run(tmp_path / "sweep" / "0", lr=1e-3, seed=0, accuracy={6: 0.3}, status="finished")
    summary_path = tmp_path / "sweep" / "0" / "summary.json"
    summary_path.write_text(json.dumps({**json.loads(summary_path.read_text()), "baselines": baselines}))
    write_run(tmp_path / "sweep" / "1", lr=1e-3, seed=1, accuracy={6: 0.1}, status="crashed")  # none recorded
    from_dirs = rows_by_run(compare.read_sweep_dir(tmp_path / "sweep"))
    wandb_run = FakeWandbRun("w", "finished", {**AXES, "lr": 1e-3, "seed": 0}, [],
                             {f"baselines/{name}": value for name, value in baselines.items()})
    for row in (from_dirs["0"], rows_by_run([compare.wandb_record(wandb_run)])["w"]):
        assert {name: row[f"baseline_{name}"] for name in compare.BASELINES} == baselines
    assert from_dirs["1"]["baseline_best_target_blind"] is None
    columns, _ = compare.table(compare.read_sweep_dir(tmp_path / "sweep"))
    assert columns.index("baseline_best_target_blind") == columns.index("best_accuracy") + 1
