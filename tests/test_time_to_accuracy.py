"""bench/time_to_accuracy.py: the threshold crossing and the ratio on hand-written metrics, and (--smoke) both arms
launched through launch.py with Mini-R1's overrides reaching the second arm's run. Figures come only from the full
run (bench/README.md)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import yaml

from r1lab.tracking import read_metrics
from tests.conftest import REPO, compose

SCRIPT = REPO / "bench" / "time_to_accuracy.py"
_spec = importlib.util.spec_from_file_location("time_to_accuracy", SCRIPT)
tta = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tta)

FIELDS = {"run_dir", "overrides", "step0_accuracy", "final_accuracy", "final_step", "threshold_step",
          "train_s_to_threshold", "train_s_total"}


def evaluated(step: int, accuracy: float) -> dict:
    return {"eval/accuracy": accuracy, "eval/format_rate": 1.0, "train/epoch": step / 100, "train/global_step": step}


def trained(step: int, seconds: float) -> dict:
    return {"train/reward": 0.1, "train/step_time": seconds, "train/epoch": step / 100, "train/global_step": step}


def write_metrics(run_dir, records) -> list[dict]:
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return read_metrics(run_dir)


def test_first_evaluation_at_the_threshold_and_the_training_seconds_up_to_it(tmp_path):
    # The final evaluation repeats the last step's number, as r1lab writes it.
    records = write_metrics(tmp_path / "run", [
        evaluated(0, 0.05), trained(1, 2.0), trained(2, 3.0), evaluated(2, 0.20), trained(3, 1.0), trained(4, 4.0),
        evaluated(4, 0.30), trained(5, 1.0), trained(6, 1.0), evaluated(6, 0.25), evaluated(6, 0.25)])
    result = tta.time_to_threshold(records, 0.30)
    assert result == {"step0_accuracy": 0.05, "final_accuracy": 0.25, "final_step": 6, "threshold_step": 4,
                      "train_s_to_threshold": 10.0, "train_s_total": 12.0}
    assert tta.time_to_threshold(records, 0.20)["train_s_to_threshold"] == 5.0
    assert tta.time_to_threshold(records, 0.05)["threshold_step"] == 0  # the base itself reaches it: 0 s
    missed = tta.time_to_threshold(records, 0.31)
    assert (missed["threshold_step"], missed["train_s_to_threshold"], missed["train_s_total"]) == (None, None, 12.0)


def test_a_record_logged_every_few_steps_counts_for_each_of_them():
    # With logging_steps=2 TRL logs the mean step time of the two steps since the previous record.
    records = [evaluated(0, 0.0), trained(2, 1.5), trained(4, 2.5), evaluated(4, 0.5)]
    assert tta.train_seconds(records, 4) == 8.0 and tta.train_seconds(records, 2) == 3.0


def test_ratio_is_mini_r1_over_laptop_and_a_bound_when_one_arm_never_gets_there():
    def arm(to_threshold, total):
        return {"train_s_to_threshold": to_threshold, "train_s_total": total}

    assert tta.ratio(arm(40.0, 100.0), arm(60.0, 90.0)) == ("=", 1.5)
    assert tta.ratio(arm(40.0, 100.0), arm(None, 90.0)) == (">", 90.0 / 40.0)  # mini-r1 needs more than all of it
    assert tta.ratio(arm(None, 100.0), arm(30.0, 90.0)) == ("<", 30.0 / 100.0)
    assert tta.ratio(arm(None, 100.0), arm(None, 90.0)) == (None, None)
    assert tta.ratio(arm(0.0, 100.0), arm(0.0, 90.0)) == (None, None)  # both at step 0: nothing to compare
    table = tta.format_table({"laptop": {**arm(40.0, 100.0), "step0_accuracy": 0.0, "final_accuracy": 0.4,
                                         "final_step": 120, "threshold_step": 40},
                              "mini-r1": {**arm(None, 90.0), "step0_accuracy": 0.0, "final_accuracy": 0.1,
                                          "final_step": 120, "threshold_step": None}}, ">", 2.25)
    lines = table.splitlines()
    assert "not reached" in lines[2] and lines[-1].endswith("> 2.25 (a bound: one arm never reached it)")


def test_mini_r1_arm_keeps_prompts_per_step_and_halves_the_lr():
    cfg = compose("experiment=laptop_aha")
    overrides = dict(o.split("=", 1) for o in tta.mini_r1_overrides(cfg))
    generations, batch = int(cfg.algo.num_generations), int(cfg.train.per_device_batch_size)
    assert int(overrides["train.per_device_batch_size"]) / 8 == batch / generations
    assert float(overrides["algo.lr"]) == pytest.approx(float(cfg.algo.lr) / 2)
    assert (overrides["algo.num_generations"], overrides["algo.beta"]) == ("8", "0.001")
    with pytest.raises(SystemExit, match="whole number of groups"):
        tta.mini_r1_overrides(compose("experiment=laptop_aha", "train.per_device_batch_size=24"))


@pytest.mark.slow
def test_smoke_runs_both_arms_and_mini_r1_choices_reach_its_run(tmp_path):
    out = tmp_path / "tta"
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "best target-blind baseline" in done.stdout and "mini-r1 / laptop" in done.stdout
    table = json.loads((out / "time_to_accuracy.json").read_text())
    assert list(table["arms"]) == ["laptop", "mini-r1"]
    for arm in table["arms"].values():
        assert FIELDS <= set(arm) and arm["final_step"] == tta.SMOKE_STEPS and arm["train_s_total"] > 0
        assert arm["step0_accuracy"] is not None
    assert table["threshold"] > 0.10 and table["ratio_relation"] in (None, "=", "<", ">")

    laptop, mini = (yaml.safe_load((out / arm / ".r1lab" / "config.yaml").read_text()) for arm in ("laptop", "mini-r1"))
    configured = compose("experiment=laptop_aha", *tta.SMOKE_OVERRIDES)
    assert laptop["algo"]["beta"] == configured.algo.beta and laptop["algo"]["lr"] == configured.algo.lr
    assert laptop["task"]["rewards"] == dict(configured.task.rewards)
    assert mini["algo"]["beta"] == 0.001 != laptop["algo"]["beta"]
    assert mini["algo"]["num_generations"] == 8 != laptop["algo"]["num_generations"]
    assert mini["task"]["rewards"] == {"format_reward": 1.0, "equation_reward": 1.0} != laptop["task"]["rewards"]
    assert mini["algo"]["lr"] == pytest.approx(laptop["algo"]["lr"] / 2)
    prompts = [c["train"]["per_device_batch_size"] / c["algo"]["num_generations"] for c in (laptop, mini)]
    assert prompts[0] == prompts[1]
    # The same base (the model section is its cache key), held-out puzzles and schedule for both.
    assert laptop["model"] == mini["model"]
    for group, key in (("task", "test_path"), ("train", "max_steps"), ("eval", "every_steps")):
        assert laptop[group][key] == mini[group][key]
    held_out = (out / "laptop" / "data" / "test.jsonl").read_text()
    assert held_out == (out / "mini-r1" / "data" / "test.jsonl").read_text() and len(held_out.splitlines()) == 4
