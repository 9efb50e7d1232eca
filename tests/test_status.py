"""`r1lab status`: job states from run files (and SLURM's states), steps, latest numbers; on a real local sweep
see test_compare.py, on the local SLURM cluster test_slurm_launcher.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from r1lab import status
from r1lab.cli import main
from tests.fake_runs import write_run


def freeze_jobs(sweep: Path, count: int, max_steps: int = 6) -> None:
    """The frozen job configs the preflight writes (only what status reads of them)."""
    (sweep / ".r1lab").mkdir(parents=True, exist_ok=True)
    for num in range(count):
        OmegaConf.save({"train": {"max_steps": max_steps},
                        "hydra": {"job": {"num": num}, "sweep": {"dir": str(sweep), "subdir": str(num)}}},
                       sweep / ".r1lab" / f"job_{num}.yaml")


@pytest.fixture
def local_sweep(tmp_path) -> Path:
    sweep = tmp_path / "sweep"
    freeze_jobs(sweep, 6)
    write_run(sweep / "0", lr=1e-3, seed=0, accuracy={3: 0.25, 6: 0.5}, status="finished")
    write_run(sweep / "1", lr=1e-3, seed=1, accuracy={3: 0.125}, status=None, steps=4)
    write_run(sweep / "2", lr=1e-3, seed=2, accuracy={}, status="crashed", steps=2)
    write_run(sweep / "3", lr=1e-3, seed=3, accuracy={3: 0.0}, status="preempted", steps=3)
    write_run(sweep / "5", lr=1e-3, seed=5, accuracy={3: 0.0}, status="terminated", steps=3)
    return sweep  # job 4 has not started: no dir at all


def test_states_steps_and_latest_numbers_from_run_files(local_sweep):
    table = status.status_table(local_sweep)
    assert table[["job", "state", "step"]].values.tolist() == [
        [0, "finished", "6/6"], [1, "running", "4/6"], [2, "failed", "2/6"], [3, "preempted", "3/6"],
        [4, "queued", "-/6"], [5, "stopped", "3/6"]]
    assert table.reward.tolist()[:2] == [pytest.approx(0.6), pytest.approx(0.4)]
    assert table.accuracy.tolist()[:2] == [0.5, 0.125]
    assert table.accuracy.isna().tolist()[2:] == [True, False, True, False]
    assert table.output_dir.tolist() == [str(local_sweep / str(n)) for n in range(6)]


@pytest.mark.parametrize(("files", "slurm", "expected"), [
    ("queued", None, "queued"),               # a local job: run files only
    ("queued", "PENDING", "queued"),
    ("queued", "RUNNING", "running"),          # started, nothing written yet
    ("preempted", "PENDING", "queued"),        # requeued after a preemption
    ("preempted", "RUNNING", "running"),       # ... and resumed
    ("running", "OUT_OF_MEMORY", "failed"),    # killed outside Python: no summary.json
    ("running", "CANCELLED", "failed"),
    ("running", "PREEMPTED", "preempted"),
    ("finished", "COMPLETED", "finished"),
    ("failed", "COMPLETED", "failed"),         # the run crashed, the job script exited normally
    ("finished", "COMPLETING", "finished"),    # the summary is written; the process is exiting
    ("finished", "RUNNING", "finished"),
])
def test_slurm_state_and_run_files_combine(files, slurm, expected):
    assert status.job_state(files, slurm) == expected


def test_cli_prints_one_row_per_job(local_sweep, capsys):
    assert main(["status", str(local_sweep)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"r1lab status {local_sweep}: 6 jobs (1 queued, 1 running, 1 finished, 1 failed, "
                             "1 preempted, 1 stopped)")
    assert out[1].split() == ["job", "state", "step", "reward", "accuracy", "slurm", "output_dir"]
    assert out[2].split() == ["0", "finished", "6/6", "0.600", "0.500", "-", str(local_sweep / "0")]
    assert len(out) == 8


def test_watch_stops_when_every_job_has_ended(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    freeze_jobs(sweep, 1)
    write_run(sweep / "0", lr=1e-3, seed=0, accuracy={}, status="finished")
    assert main(["status", str(sweep), "--watch", "0.01"]) == 0
    assert capsys.readouterr().out.count("r1lab status") == 1


def test_a_sweep_without_frozen_configs_lists_its_run_dirs(tmp_path):
    write_run(tmp_path / "a", lr=1e-3, seed=0, accuracy={}, status="finished")
    assert status.status_table(tmp_path)[["state", "step"]].values.tolist() == [["finished", "6/?"]]
    assert main(["status", str(tmp_path / "missing")]) == 2
