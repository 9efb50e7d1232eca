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


# The default experiment (laptop_aha) runs on a base that takes many minutes to build. Tests of the machinery
# run the plain groups instead (experiment=none: the random-init `tiny` model) unless they name an experiment
# or a sweep; tests/test_default_run.py runs the default itself, on a base that builds in seconds.
PLAIN = "experiment=none"


# A base that builds in seconds: the laptop corpus, a 0.06M model, 30 steps (in the session's shared cache).
TEST_BASE = ("model=tiny-0.3m", "model.tiny.hidden_size=32", "model.tiny.intermediate_size=64",
             "model.tiny.num_hidden_layers=2", "model.pretrain.max_steps=30", "model.pretrain.batch_size=4",
             "model.pretrain.block_size=128", "model.pretrain.check_first_steps=6")


def plain(args) -> list[str]:
    """`args` and experiment=none, unless they choose an experiment (or a sweep that does)."""
    args = list(args)
    if any(a.startswith(("experiment=", "+sweeps=", "~experiment")) for a in args):
        return args
    # Beside the other overrides: Hydra's argparse takes them as one run of positionals between its flags.
    first = next((i for i, a in enumerate(args) if "=" in a and not a.startswith("-")), len(args))
    return [*args[:first], PLAIN, *args[first:]]


def compose(*overrides: str):
    """The config `python launch.py <overrides>` would run (on the plain groups: see PLAIN), by Hydra's API."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=plain(overrides), return_hydra_config=False)


def launch(*args: str, timeout: float = 600, cwd: Path = REPO, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python launch.py <args>` in a subprocess, as a user would (on the plain groups: see PLAIN)."""
    return subprocess.run(
        [sys.executable, str(REPO / "launch.py"), *plain(args)],
        cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"},
    )


def group_options(group: str) -> list[str]:
    """Every option of a config group, as a user would name it on the command line."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))
