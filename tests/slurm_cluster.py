"""Session-scoped pytest fixture for the local single-node SLURM cluster (scripts/local-slurm).

Register it from tests/conftest.py with ``pytest_plugins = ["tests.slurm_cluster"]`` (or ad hoc:
``pytest -p tests.slurm_cluster``) and mark tests that use it with ``@pytest.mark.slurm``.

The fixture runs ``scripts/local-slurm start`` (which installs slurm-wlm/munge/slurmdbd/mariadb
with apt-get when missing and it is root), exports ``SLURM_CONF`` into ``os.environ`` for the
session, and runs ``scripts/local-slurm stop`` at the end only if it was the one that started the
cluster. When the cluster cannot be started the tests are skipped with the reason -- unless the
``CI`` environment variable is set, where a silent skip would hide a broken cluster: then it fails.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "local-slurm"
START_TIMEOUT_S = 900  # includes a first-time apt-get install


@dataclasses.dataclass(frozen=True)
class SlurmCluster:
    state_dir: Path
    slurm_conf: Path
    env: dict  # environment additions for SLURM clients: {"SLURM_CONF": ...}
    started_here: bool  # False when the cluster was already up before the session
    script: Path = SCRIPT

    def run_script(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Runs ``scripts/local-slurm <args>`` with this cluster's state dir; captures output."""
        return _run(list(args), timeout=timeout)

    def pids(self) -> dict:
        """{daemon name: pid} of the daemons it started and that are alive (from the PID files)."""
        out = self.run_script("pids").stdout
        return {name: int(pid) for name, pid in (line.split() for line in out.splitlines() if line.strip())}


def _state_dir() -> Path:
    return Path(os.environ.get("R1LAB_SLURM_DIR", "/tmp/r1lab-slurm"))


def _run(args: list, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SCRIPT), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
    )


def _cannot_start(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"local SLURM cluster could not be started (CI is set, so not skipping): {reason}")
    pytest.skip(f"local SLURM cluster not available: {reason}")


@pytest.fixture(scope="session")
def slurm_cluster():
    if not SCRIPT.exists():
        _cannot_start(f"{SCRIPT} not found")
    if not Path("/proc").is_dir():
        _cannot_start("scripts/local-slurm needs Linux")
    try:
        already_up = _run(["status"], timeout=60).returncode == 0
        proc = None if already_up else _run(["start"], timeout=START_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        _cannot_start(f"scripts/local-slurm failed to run: {e!r}")
    if proc is not None and proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-60:])
        _cannot_start(f"`scripts/local-slurm start` exited {proc.returncode}:\n{tail}")

    state_dir = _state_dir()
    slurm_conf = state_dir / "etc" / "slurm.conf"
    env = {"SLURM_CONF": str(slurm_conf)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield SlurmCluster(state_dir=state_dir, slurm_conf=slurm_conf, env=env, started_here=not already_up)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if not already_up:
            stop = _run(["stop"], timeout=300)
            if stop.returncode != 0:
                print(f"scripts/local-slurm stop exited {stop.returncode}:\n{stop.stdout}{stop.stderr}")
