"""`python launch.py` end to end in a subprocess: real TRL, real tiny model, real W&B offline files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from r1lab.tasks import countdown
from tests.conftest import TEST_BASE, compose, launch

pytestmark = pytest.mark.slow


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def wandb_records(run_dir: Path) -> list[dict]:
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    out = subprocess.run(["wandb", "leet", "inspect", "--json", str(offline)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def test_the_default_is_the_laptop_recipe():
    from r1lab.config_tree import compose as as_launched  # without conftest's experiment=none: `python launch.py`

    cfg = as_launched([])
    assert cfg.model.size == "tiny-1m" and cfg.model.pretrain.corpus == "primed" and cfg.task.prompt == "short"
    assert OmegaConf.to_container(cfg.train, resolve=True)["max_steps"] == 20 and cfg.eval.every_steps == 10


def test_default_run_end_to_end(tmp_path):
    # The default experiment as `python launch.py` runs it, on a base that builds in seconds (a 0.06M model
    # learns nothing in 30 steps: this is the machinery; the README has the real base's figures).
    run_dir = tmp_path / "run"
    # 20 of the 100 held-out puzzles per evaluation: the same machinery, fewer generations.
    quick = (*TEST_BASE, "eval.num_prompts=20")
    out = launch("experiment=laptop_aha", *quick, f"hydra.run.dir={run_dir}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == f"r1lab: run finished; outputs in {run_dir}"
    # A terminal you can read: no per-step dicts, completion tables or deprecation warnings; a closing block.
    printed = out.stdout + out.stderr
    assert printed.count("\n") <= 60, printed[-3000:]
    assert "FutureWarning" not in printed and "Run history" not in printed and "┏" not in printed
    assert "step 10/20  held-out accuracy" in printed and "reward " in printed and "s/step" in printed
    assert "  wall time " in out.stdout and f"wandb sync {run_dir}/wandb/offline-run-" in out.stdout

    records = read_jsonl(run_dir / "metrics.jsonl")
    train_steps = [r["train/global_step"] for r in records if "train/reward" in r]
    assert train_steps == list(range(1, 21))
    eval_steps = [r["train/global_step"] for r in records if "eval/accuracy" in r]
    assert eval_steps == [0, 10, 20, 20]  # before the first update, scheduled at 10 and 20, plus the final one
    assert all(0.0 <= r["eval/accuracy"] <= 1.0 for r in records if "eval/accuracy" in r)
    search = {"eval/accuracy_sampled", "eval/think_tokens", "eval/candidates_tried", "eval/think_has_solution_rate",
              "eval/answer_is_sum_rate", "eval/mean_length"}
    assert all(search <= set(r) for r in records if "eval/accuracy" in r)

    cfg = compose("experiment=laptop_aha", *quick)
    lr, beta = cfg.algo.lr, cfg.algo.beta
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["global_step"] == 20
    assert "eval/accuracy" in summary and "eval/format_rate" in summary
    step0 = next(r for r in records if "eval/accuracy" in r)
    assert summary["eval_step0"] == {k: v for k, v in step0.items() if k.startswith("eval/")}
    # The closing lines say what the run showed: accuracy at step 0 and at the end, beside the baseline.
    assert (f"held-out accuracy {step0['eval/accuracy']:.3f} at step 0 → {summary['eval/accuracy']:.3f} (greedy)"
            in out.stdout)
    assert f"best target-blind baseline {summary['baselines']['best_target_blind']:.3f}" in out.stdout
    # The exact data it used, and the baselines of the held-out prompts it scored.
    test_rows = read_jsonl(run_dir / "data" / "test.jsonl")
    assert len(read_jsonl(run_dir / "data" / "train.jsonl")) == 400 and len(test_rows) == 100
    assert summary["baselines"] == countdown.baselines(cfg.task, test_rows[: cfg.eval.num_prompts])
    assert summary["axes"] == {"model": "tiny-0.3m", "variant": "base", "algo": "grpo", "task": "countdown",
                               "lr": lr, "beta": beta, "seed": 0}
    assert summary["wandb"]["mode"] == "offline" and summary["wandb"]["id"] == summary["run_id"]
    assert (run_dir / "checkpoint-20").is_dir() and (run_dir / "final" / "config.json").exists()

    wandb = wandb_records(run_dir)
    (run,) = [r["run"] for r in wandb if r.get("type") == "run"]
    config = run["config"]["update"]
    assert config["axes"]["model"] == "tiny-0.3m" and config["axes"]["algo"] == "grpo"
    assert config["model"]["size"] == "tiny-0.3m" and config["algo"]["lr"] == lr
    assert "git_sha" in config
    assert "algo:grpo" in run["tags"] and "model:tiny-0.3m" in run["tags"]
    assert run["job_type"] == "grpo" and run["run_group"] == f"tiny-0.3m-base-grpo-countdown-lr{lr:g}-beta{beta:g}"
    assert (config["axis_model"], config["axis_lr"], config["axis_seed"]) == ("tiny-0.3m", lr, 0)
    # Every metric against train/global_step, defined before anything is logged.
    first_history = min(r["num"] for r in wandb if r.get("type") == "history")
    metrics = [r["metric"] for r in wandb if r.get("type") == "metric" and r["num"] < first_history]
    assert {"glob_name": "*", "options": {"defined": True, "step_sync": True},
            "step_metric": "train/global_step"} in metrics
    # The run summary ends with the final held-out metrics.
    final = [r["summary"]["update"] for r in wandb if r.get("type") == "summary"
             and "global_step" in r["summary"].get("update", {})][-1]
    assert final["global_step"] == 20 and final["eval/accuracy"] == summary["eval/accuracy"]


def test_rerun_in_same_dir_resumes_without_duplicate_steps(tmp_path):
    run_dir = tmp_path / "run"
    common = [f"hydra.run.dir={run_dir}", "train.save_steps=3", "eval.every_steps=0", "eval.num_prompts=8",
              "logger=none"]
    first = launch(*common, "train.max_steps=4")
    assert first.returncode == 0, first.stderr[-3000:]
    run_id = (run_dir / "run_id").read_text()

    second = launch(*common, "train.max_steps=7")
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["resumed_from"].endswith("checkpoint-4")
    assert summary["global_step"] == 7 and summary["run_id"] == run_id.strip()
    steps = [r["train/global_step"] for r in read_jsonl(run_dir / "metrics.jsonl") if "train/reward" in r]
    assert steps == list(range(1, 8))

    third = launch(*common, "train.max_steps=7")  # the run is complete: a no-op, not an 8th step
    assert third.returncode == 0, third.stderr[-3000:]
    assert "run already finished at step 7" in third.stdout
    assert json.loads((run_dir / "summary.json").read_text()) == summary


def test_crashing_run_records_status(tmp_path):
    # A user task config (in an extra config dir) whose dotted-path reward raises mid-training.
    (tmp_path / "conf" / "task").mkdir(parents=True)
    (tmp_path / "conf" / "task" / "crashy.yaml").write_text(
        "defaults:\n  - countdown\n  - _self_\nrewards:\n  tests.helpers.failing_reward: 1.0\n"
    )
    run_dir = tmp_path / "run"
    out = launch("--config-dir", str(tmp_path / "conf"), "task=crashy", f"hydra.run.dir={run_dir}",
                 "logger=none", "train.max_steps=2")
    assert out.returncode != 0
    assert "deliberate failure" in out.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "crashed"
