"""Sweeps on a real single-node SLURM cluster (scripts/local-slurm): arrays, per-job resources,
two-rank jobs, preemption with resume, failure isolation, refusal before queueing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, launch

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

TINY = ["experiment=none", "launcher=slurm", "model=tiny", "eval.every_steps=0", "eval.num_prompts=4", "eval.pass_k=0"]


def read_json(path: Path):
    return json.loads(path.read_text())


def train_steps(run_dir: Path) -> list[int]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r["train/global_step"] for r in map(json.loads, lines) if "train/reward" in r]


def test_three_job_sweep_runs_as_one_array(slurm_cluster, tmp_path):
    out = launch("-m", *TINY, "seed=0,1,2", "train.max_steps=5", f"hydra.sweep.dir={tmp_path}", timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    outcomes = read_json(tmp_path / "sweep_summary.json")
    assert [(o["state"], o["run_status"]) for o in outcomes] == [("COMPLETED", "finished")] * 3
    assert len({o["scheduler_id"].split("_")[0] for o in outcomes}) == 1  # one job array
    for num in range(3):
        summary = read_json(tmp_path / str(num) / "summary.json")
        assert summary["global_step"] == 5 and summary["axes"]["seed"] == num
        assert summary["wandb"]["mode"] == "offline"


def test_two_rank_job_trains_as_one_world(slurm_cluster, tmp_path):
    out = launch("-m", *TINY, "model.resources.ranks=2", "model.resources.cpus=2", "train.max_steps=4",
                 "logger=none", f"hydra.sweep.dir={tmp_path}", timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    summary = read_json(tmp_path / "0" / "summary.json")
    assert summary["status"] == "finished" and summary["world_size"] == 2 and summary["global_step"] == 4
    assert train_steps(tmp_path / "0") == [1, 2, 3, 4]  # one step count, logged once (rank 0)
    (job_dir,) = [p for p in (tmp_path / ".submitit").iterdir() if p.is_dir()]
    assert sorted(p.name.split("_")[-2] for p in job_dir.glob("*_log.out")) == ["0", "1"]  # two SLURM tasks


def interrupt_mid_run(sweep: Path, interrupt: list[str]) -> tuple[int, str]:
    """Run a 20-step tiny job, send `interrupt + [job id]` after step 5, wait for the sweep to end."""
    cmd = [sys.executable, str(REPO / "launch.py"), "-m", *TINY, "train.max_steps=20", "train.save_steps=1000",
           f"hydra.sweep.dir={sweep}"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        metrics = sweep / "0" / "metrics.jsonl"
        deadline = time.time() + 300
        while not (metrics.exists() and len(train_steps(sweep / "0")) >= 5):
            assert proc.poll() is None and time.time() < deadline, "job did not start training"
            time.sleep(0.5)
        (job_dir,) = [p for p in (sweep / ".submitit").iterdir() if p.is_dir()]
        subprocess.run([*interrupt, job_dir.name], check=True, env=os.environ)
        output, _ = proc.communicate(timeout=600)
    finally:
        proc.kill()
    return proc.returncode, output


def assert_resumed_to_the_end(sweep: Path, returncode: int, output: str) -> dict:
    """The interrupted run finished all 20 steps, resumed from the checkpoint its stop made, no step twice."""
    assert returncode == 0, output[-4000:]
    summary = read_json(sweep / "0" / "summary.json")
    assert summary["status"] == "finished" and summary["global_step"] == 20
    assert 5 <= int(summary["resumed_from"].rsplit("-", 1)[1]) < 20  # saved at the stop, not a scheduled save
    assert train_steps(sweep / "0") == list(range(1, 21))  # continuous, nothing logged twice
    return summary


def test_warning_signal_saves_requeues_and_resumes(slurm_cluster, tmp_path):
    sweep = tmp_path / "sweep"
    # SLURM's time-limit warning; the requeued job waits cred_expire (10 s on the local cluster).
    summary = assert_resumed_to_the_end(sweep, *interrupt_mid_run(sweep, ["scancel", "--signal=USR2"]))
    assert summary["wandb"]["id"] == (sweep / "0" / "run_id").read_text().strip()
    assert len(list((sweep / "0" / "wandb").glob("offline-run-*"))) == 2  # the same W&B run, resumed


def test_requeue_by_slurm_saves_at_sigterm_and_resumes(slurm_cluster, tmp_path):
    # What a preemption with PreemptMode=REQUEUE does: SIGTERM, KillWait (5 s here), requeue by SLURM itself.
    sweep = tmp_path / "sweep"
    assert_resumed_to_the_end(sweep, *interrupt_mid_run(sweep, ["scontrol", "requeue"]))


def test_failing_job_does_not_stop_the_others(slurm_cluster, tmp_path):
    conf = tmp_path / "conf" / "task"
    conf.mkdir(parents=True)
    (conf / "crashy.yaml").write_text("defaults:\n  - countdown\n  - _self_\nrewards:\n  tests.helpers.failing_reward: 1.0\n")
    sweep = tmp_path / "sweep"
    out = launch("-m", "--config-dir", str(tmp_path / "conf"), *TINY, "task=countdown,crashy,countdown",
                 "train.max_steps=3", "logger=none", f"hydra.sweep.dir={sweep}", timeout=900)
    assert out.returncode != 0
    outcomes = read_json(sweep / "sweep_summary.json")
    assert [(o["state"], o["run_status"]) for o in outcomes] == [
        ("COMPLETED", "finished"), ("FAILED", "crashed"), ("COMPLETED", "finished")]
    assert "sweep summary:" in out.stdout


def test_request_no_partition_can_meet_is_refused_before_queueing(slurm_cluster, tmp_path):
    out = launch("-m", "launcher=slurm", "model=tiny,qwen2.5-7b", "rollout=hf", "dist=single",
                 f"hydra.sweep.dir={tmp_path}")
    assert out.returncode != 0
    assert "1 of 2 jobs cannot run; nothing was submitted" in out.stderr
    assert "4 GPUs > 2 per node" in out.stderr and "no partition of this cluster can run it" in out.stderr
    assert not (tmp_path / ".submitit").exists()


def test_status_follows_a_sweep_on_slurm(slurm_cluster, tmp_path):
    """`r1lab status` while a two-job array runs one job at a time (array_parallelism=1): the second is queued
    in SLURM while the first trains, then both finish; the SLURM ids come from the launcher's record."""
    from r1lab import status

    cmd = [sys.executable, str(REPO / "launch.py"), "-m", *TINY, "seed=0,1", "train.max_steps=6", "logger=none",
           "hydra.launcher.array_parallelism=1", f"hydra.sweep.dir={tmp_path}"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = set()
    try:
        deadline = time.time() + 600
        while proc.poll() is None:
            assert time.time() < deadline, "sweep did not end"
            table = status.status_table(tmp_path)
            seen.update(zip(table.job, table.state, table.step, table.slurm.str.split().str[-1]))
            time.sleep(0.5)
        output, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, output[-4000:]
    # While job 0 trained (SLURM RUNNING, a step of 6 logged), job 1 waited in SLURM's queue.
    assert any(job == 0 and state == "running" and step[0].isdigit() and slurm == "RUNNING"
               for job, state, step, slurm in seen), seen
    assert (1, "queued", "-/6", "PENDING") in seen, seen
    cli = subprocess.run([sys.executable, "-m", "r1lab.cli", "status", str(tmp_path)], cwd=REPO,
                         capture_output=True, text=True, timeout=120, env=os.environ)
    assert cli.returncode == 0, cli.stderr
    lines = cli.stdout.splitlines()
    assert "2 jobs (2 finished)" in lines[0]
    ids = read_json(tmp_path / ".r1lab" / "scheduler_ids.json")
    for num, line in enumerate(lines[2:]):
        assert line.split()[:3] == [str(num), "finished", "6/6"] and ids[str(num)] in line
