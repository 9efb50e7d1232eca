"""Run dirs and W&B runs shaped as r1lab leaves them, for the tests of runs, compare and status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import compose

AXES = {"model": "tiny", "variant": "base", "algo": "grpo", "task": "countdown", "beta": 0.001}


def write_run(run_dir: Path, *, lr: float | None, seed: int | None, accuracy: dict[int, float], status: str | None,
              steps: int = 6, hydra_config=None, summary_extra: dict | None = None) -> None:
    """A run dir: metrics.jsonl (with a torn last line, as a crash leaves it), summary.json unless the run is
    still going, and a checkpoint dir holding a metrics.jsonl that must never count as a run."""
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
                   "run_name": f"run-lr{lr}-seed{seed}", "output_dir": str(run_dir),
                   **{k: v for r in records for k, v in r.items()}, **(summary_extra or {})}
        if status == "finished":
            summary["eval/pass@1"], summary["eval/pass@8"] = 0.2, 0.6
        (run_dir / "summary.json").write_text(json.dumps(summary, sort_keys=True))
    if hydra_config is not None:
        (run_dir / ".hydra").mkdir()
        OmegaConf.save(hydra_config, run_dir / ".hydra" / "config.yaml")
    (run_dir / "checkpoint-2").mkdir()
    (run_dir / "checkpoint-2" / "metrics.jsonl").write_text("{}\n")


@pytest.fixture
def sweep(tmp_path) -> Path:
    """Six runs in every state: two finished lrs, a crash, one still running (axes from its saved config), one
    just started (empty metrics), and a finished run of another sweep nested below."""
    root = tmp_path / "sweep"
    write_run(root / "0", lr=1e-3, seed=0, accuracy={2: 0.1, 4: 0.3, 6: 0.6}, status="finished")
    write_run(root / "1", lr=5e-4, seed=0, accuracy={2: 0.0, 4: 0.2, 6: 0.26}, status="finished")
    write_run(root / "2", lr=1e-3, seed=1, accuracy={2: 0.5}, status="crashed", steps=3)
    write_run(root / "3", lr=None, seed=None, accuracy={2: 0.25}, status=None, steps=2,
              hydra_config=compose("algo.lr=5e-4", "seed=1"))
    (root / "4").mkdir()
    (root / "4" / "metrics.jsonl").write_text("")
    write_run(root / "extra" / "0", lr=1e-4, seed=0, accuracy={}, status="finished", steps=1)
    return root


class FakeWandbRun:
    """The parts of `wandb.apis.public.Run` that r1lab reads, with W&B's semantics for scan_history."""

    def __init__(self, name, state, axes, rows, summary):
        self.id, self.name, self.state = name.upper(), name, state
        self.path = ["me", "r1lab", self.id]
        self.config = {"axes": axes, "algo": {"lr": axes["lr"]}, "seed": axes["seed"]}
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


@pytest.fixture
def fake_wandb(monkeypatch):
    """wandb.Api() answering every group query with `wandb_runs()`; yields the (path, filters) calls."""
    import wandb

    calls = []

    class FakeApi:
        def runs(self, path, filters):
            calls.append((path, filters))
            return wandb_runs()

    monkeypatch.setattr(wandb, "Api", FakeApi)
    return calls
