"""The local SLURM cluster from scripts/local-slurm, driven through submitit as r1lab does.

Needs the `slurm_cluster` fixture (tests/slurm_cluster.py, registered from tests/conftest.py).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import cloudpickle
import pytest

submitit = pytest.importorskip("submitit")

pytestmark = pytest.mark.slurm

# The job functions below travel by value, so the node need not import this test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED"}


def sacct_state(job_id: str, timeout: float = 30.0) -> str:
    """The job's final state from accounting; records reach slurmdbd a moment after the job ends."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["sacct", "-j", str(job_id), "-X", "-n", "-P", "-o", "State"],
            capture_output=True, text=True, check=True,
        ).stdout.split()
        state = out[0].split()[0] if out else ""
        if state in TERMINAL:
            return state
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} not terminal in sacct after {timeout}s (last: {state!r})")


def make_executor(folder, **params):
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    ex.update_parameters(timeout_min=5, slurm_partition="debug", cpus_per_task=1, **params)
    return ex


def add(a, b):
    return a + b


def task_identity():
    return {k: os.environ.get(k) for k in ("SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_JOB_ID")}


def boom():
    raise ValueError("boom from a SLURM job")


GPU_VARS = ("SLURM_GPUS_ON_NODE", "SLURM_GPUS_PER_NODE", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS",
            "CUDA_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL")


def gpu_env():
    return {k: os.environ.get(k) for k in GPU_VARS}


def test_function_result_and_completed_state(slurm_cluster, tmp_path):
    job = make_executor(tmp_path).submit(add, 2, 3)
    assert job.result() == 5
    assert sacct_state(job.job_id) == "COMPLETED"
    # submitit's own view comes from sacct too (UNKNOWN without accounting)
    assert job.get_info(mode="force").get("State") == "COMPLETED"


def test_two_tasks_see_ntasks_and_distinct_procid(slurm_cluster, tmp_path):
    job = make_executor(tmp_path, tasks_per_node=2).submit(task_identity)
    results = job.results()
    assert len(results) == 2
    assert all(r["SLURM_NTASKS"] == "2" for r in results)
    assert sorted(r["SLURM_PROCID"] for r in results) == ["0", "1"]
    assert len({r["SLURM_JOB_ID"] for r in results}) == 1


def test_failing_job_is_failed_and_raises(slurm_cluster, tmp_path):
    job = make_executor(tmp_path).submit(boom)
    with pytest.raises(submitit.core.utils.FailedJobError, match="boom from a SLURM job"):
        job.result()
    assert sacct_state(job.job_id) == "FAILED"


def test_fake_gpus_are_allocated(slurm_cluster, tmp_path):
    job = make_executor(tmp_path, gpus_per_node=2).submit(gpu_env)
    env = job.result()
    assert env["SLURM_GPUS_ON_NODE"] == "2", env
    if (slurm_cluster.state_dir / "dev" / "nvidia1").is_char_device():
        # fake device files (File= in gres.conf) give indexes
        assert env["CUDA_VISIBLE_DEVICES"] == "0,1", env
        assert env["SLURM_JOB_GPUS"] == "0,1", env
    assert sacct_state(job.job_id) == "COMPLETED"


def test_too_many_gpus_rejected_at_submission(slurm_cluster, tmp_path):
    with pytest.raises(Exception, match="Requested node configuration is not available"):
        make_executor(tmp_path, gpus_per_node=3).submit(add, 1, 1)


def test_array_and_two_task_job_run_concurrently(slurm_cluster, tmp_path):
    """Oversubscription: 3 one-CPU array jobs and a 2-task job fit together on a 2-core node."""
    ex = make_executor(tmp_path)
    with ex.batch():
        arr = [ex.submit(add, i, i) for i in range(3)]
    two = make_executor(tmp_path / "two", tasks_per_node=2).submit(task_identity)
    assert [j.result() for j in arr] == [0, 2, 4]
    assert len(two.results()) == 2


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_stop_leaves_nothing_and_start_again(slurm_cluster):
    """Runs last in this file: stop, check every daemon is gone, start again (the session goes on)."""
    pids = slurm_cluster.pids()
    expected = {"munged", "slurmctld", "slurmd"}
    if "mariadbd" in pids or "slurmdbd" in pids:
        expected |= {"mariadbd", "slurmdbd"}
    assert expected <= set(pids), pids

    stop = slurm_cluster.run_script("stop")
    assert stop.returncode == 0, stop.stderr
    assert not [f"{n}={p}" for n, p in pids.items() if _alive(p)]
    assert slurm_cluster.pids() == {}
    assert slurm_cluster.run_script("status").returncode != 0
    assert slurm_cluster.run_script("stop").returncode == 0  # idempotent

    start = slurm_cluster.run_script("start", timeout=300)
    assert start.returncode == 0, start.stderr
    assert start.stdout.strip() == f"export SLURM_CONF={slurm_cluster.slurm_conf}"
    again = slurm_cluster.run_script("start")  # already up: just the env line
    assert again.returncode == 0 and again.stdout.strip() == start.stdout.strip()
    assert set(slurm_cluster.pids()) == set(pids)
    state = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, check=True)
    assert state.stdout.split() == ["idle"]
