"""Sweeps are planned whole before anything runs: composed, validated, sized, frozen, summarised."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import launch


def frozen_jobs(sweep_dir: Path) -> list[dict]:
    files = sorted((sweep_dir / ".r1lab").glob("job_*.yaml"), key=lambda p: int(p.stem.split("_")[1]))
    return [yaml.safe_load(p.read_text()) for p in files]


def dry_run(tmp_path: Path, *overrides: str) -> list[dict]:
    out = launch("-m", *overrides, "dry_run=true", f"hydra.sweep.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "dry run: nothing launched" in out.stdout
    assert not [p for p in tmp_path.iterdir() if p.name.isdigit()]  # no job ran
    return frozen_jobs(tmp_path)


# Each sweep at full size, and what the seeds ran: (sweep, the axis that varies, its values).
SWEEPS = [
    ("model_size", lambda c: c["model"]["name_or_path"],
     ["Qwen/Qwen2.5-0.5B", "Qwen/Qwen2.5-1.5B", "Qwen/Qwen2.5-3B", "Qwen/Qwen2.5-7B"]),
    ("base_vs_instruct", lambda c: c["model"]["name_or_path"], ["Qwen/Qwen2.5-3B", "Qwen/Qwen2.5-3B-Instruct"]),
    ("algorithms", lambda c: c["algo"]["name"], ["ppo", "grpo", "prime", "rloo", "reinforce_pp"]),
    ("lr_beta", lambda c: (c["algo"]["lr"], c["algo"]["beta"]), [(1e-6, 0.04), (1e-6, 0.001), (5e-7, 0.04), (5e-7, 0.001)]),
    ("tasks", lambda c: c["task"]["name"], ["countdown", "multiplication"]),
    ("seeds", lambda c: c["seed"], [0, 1, 2]),
]


@pytest.mark.parametrize("sweep,axis,expected", SWEEPS, ids=[s[0] for s in SWEEPS])
def test_every_sweep_dry_runs_at_full_size(tmp_path, sweep, axis, expected):
    jobs = dry_run(tmp_path, f"+sweeps={sweep}")
    assert [axis(job) for job in jobs] == expected
    for job in jobs:
        assert job["model"]["size"] != "tiny"
        assert "${" not in yaml.safe_dump({k: v for k, v in job.items() if k != "hydra"})  # frozen: fully resolved
    table = (tmp_path / ".r1lab" / "jobs.md").read_text()
    assert f"{len(expected)} jobs, about" in table


# The miniature ablations (README, "Miniature ablations"): the laptop recipe for 60 steps, two seeds per arm.
LAPTOP_SWEEPS = [
    ("laptop_model_size", lambda c: c["model"]["size"], ["tiny-0.3m", "tiny-1m", "tiny-3m"]),
    ("laptop_base_vs_instruct", lambda c: c["variant"]["name"], ["base", "instruct"]),
    ("laptop_primed_vs_unprimed", lambda c: c["model"]["pretrain"]["corpus"], ["primed", "unprimed"]),
    ("laptop_algorithms", lambda c: c["algo"]["name"], ["grpo", "ppo", "prime"]),
]


@pytest.mark.parametrize("sweep,axis,arms", LAPTOP_SWEEPS, ids=[s[0] for s in LAPTOP_SWEEPS])
def test_every_laptop_sweep_runs_the_laptop_recipe_for_60_steps_on_two_seeds(tmp_path, sweep, axis, arms):
    jobs = dry_run(tmp_path, f"+sweeps={sweep}")
    assert [(axis(job), job["seed"]) for job in jobs] == [(arm, seed) for arm in arms for seed in (0, 1)]
    for job in jobs:
        assert job["model"]["pretrain"] is not None and job["task"]["generator"]["target"] == "uniform_reachable"
        assert (job["train"]["max_steps"], job["eval"]["every_steps"]) == (60, 20)


def test_sweep_shrinks_to_the_tiny_model_with_one_override(tmp_path):
    jobs = dry_run(tmp_path, "+sweeps=lr_beta", "+shrink=tiny")
    assert len(jobs) == 4
    # W&B run names say what differs between the jobs of the sweep.
    assert [job["run_name"] for job in jobs] == [
        "algo.lr=1e-06,algo.beta=0.04", "algo.lr=1e-06,algo.beta=0.001",
        "algo.lr=5e-07,algo.beta=0.04", "algo.lr=5e-07,algo.beta=0.001"]
    assert {job["model"]["size"] for job in jobs} == {"tiny"}
    assert {job["rollout"]["engine"] for job in jobs} == {"hf"} and not any(job["train"]["bf16"] for job in jobs)


def test_mixed_sweep_sizes_each_job_for_its_model(tmp_path):
    jobs = dry_run(tmp_path, "model=qwen2.5-0.5b,qwen2.5-7b", "rollout=hf")
    table = (tmp_path / ".r1lab" / "jobs.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| 0 ") or line.startswith("| 1 ")]
    gpus = [int(row.split("|")[3]) for row in rows]
    assert gpus == [1, 4]
    assert [job["model"]["resources"]["gpus"] for job in jobs] == [1, 4]


def test_vllm_server_gets_its_own_gpu(tmp_path):
    dry_run(tmp_path, "model=qwen2.5-1.5b", "rollout=hf,vllm_server")
    rows = [line for line in (tmp_path / ".r1lab" / "jobs.md").read_text().splitlines() if line[:4] in ("| 0 ", "| 1 ")]
    assert [(int(r.split("|")[3]), int(r.split("|")[4])) for r in rows] == [(1, 1), (2, 1)]  # (GPUs, ranks)


def test_a_bad_job_stops_the_whole_sweep_before_anything_runs(tmp_path):
    out = launch("-m", "task=countdown,no_such_task", "seed=0,1", f"hydra.sweep.dir={tmp_path}", "logger=none")
    assert out.returncode != 0
    assert "Could not find 'task/no_such_task'" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "0").exists()


def test_a_mistyped_key_in_a_sweep_fails_before_anything_runs(tmp_path):
    out = launch("-m", "algo.lrr=1,2", f"hydra.sweep.dir={tmp_path}", "logger=none")
    assert out.returncode != 0
    assert "algo.lrr" in out.stderr
    assert not (tmp_path / "0").exists()


def test_an_invalid_value_is_reported_per_job(tmp_path):
    out = launch("-m", "train.per_device_batch_size=16,6", f"hydra.sweep.dir={tmp_path}")
    assert out.returncode != 0
    assert "1 of 2 jobs cannot run" in out.stderr
    assert "job 1 (experiment=none train.per_device_batch_size=6)" in out.stderr and "num_generations=8" in out.stderr


@pytest.mark.slow
def test_local_sweep_isolates_a_failing_job_and_summarises(tmp_path):
    conf = tmp_path / "conf" / "task"
    conf.mkdir(parents=True)
    (conf / "crashy.yaml").write_text("defaults:\n  - countdown\n  - _self_\nrewards:\n  tests.helpers.failing_reward: 1.0\n")
    sweep = tmp_path / "sweep"
    out = launch("-m", "--config-dir", str(tmp_path / "conf"), "task=countdown,crashy,countdown", "logger=none",
                 "train.max_steps=2", "eval.every_steps=0", "eval.num_prompts=4", "eval.pass_k=0",
                 f"hydra.sweep.dir={sweep}")
    assert out.returncode != 0  # Hydra reports the failed job at the end
    outcomes = json.loads((sweep / "sweep_summary.json").read_text())
    assert [(o["num"], o["state"], o["run_status"]) for o in outcomes] == [
        (0, "COMPLETED", "finished"), (1, "FAILED", "crashed"), (2, "COMPLETED", "finished")]
    assert "deliberate failure" in outcomes[1]["error"]
    assert "2 of 3 jobs finished" in (sweep / "sweep_summary.md").read_text()


def test_vllm_server_runs_on_the_gpus_after_the_training_ranks(tmp_path, monkeypatch):
    from r1lab.launching.vllm_server import server_devices, vllm_server
    from tests.conftest import compose

    assert server_devices(["0", "1", "2", "3"], ranks=2, tensor_parallel=2) == ["2", "3"]
    with pytest.raises(RuntimeError, match="needs 2 GPU\\(s\\) for training ranks and 1 for the server"):
        server_devices(["0", "1"], ranks=2, tensor_parallel=1)

    cfg = compose("model=qwen2.5-3b", "rollout=vllm_server")  # 2 training ranks + 1 server GPU
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6")
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    seen = tmp_path / "devices"
    stand_in = ["sh", "-c", f'echo "$CUDA_VISIBLE_DEVICES" > {seen}; exec sleep 60']
    with vllm_server(cfg, "Qwen/Qwen2.5-3B", tmp_path, command=lambda cfg, model: stand_in) as server:
        deadline = time.time() + 10
        while not seen.exists() and time.time() < deadline:
            time.sleep(0.05)
        assert server.poll() is None
    assert seen.read_text().strip() == "6"
    assert server.poll() is not None  # stopped with the block

    monkeypatch.setenv("LOCAL_RANK", "1")  # other ranks start nothing
    with vllm_server(cfg, "Qwen/Qwen2.5-3B", tmp_path, command=lambda cfg, model: stand_in) as server:
        assert server is None
    with vllm_server(compose("rollout=vllm_server", "rollout.start_server=false"), "m", tmp_path) as server:
        assert server is None
