"""Shared fixtures: the real composed config, shrunk for CPU; a shared tiny-model cache; offline W&B."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


pytest_plugins = ["tests.slurm_cluster"]

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"

# Tests never need a W&B account; the tiny model is built once per session into one cache.
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("R1LAB_CACHE", str(Path(os.environ.get("TMPDIR", "/tmp")) / "r1lab-test-cache"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def compose(*overrides: str):
    """The config `python launch.py <overrides>` would run, composed by Hydra's own API."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=False)


def launch(*args: str, timeout: float = 600, cwd: Path = REPO, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python launch.py <args>` in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, str(REPO / "launch.py"), *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"},
    )


def group_options(group: str) -> list[str]:
    """Every option of a config group, as a user would name it on the command line."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))
