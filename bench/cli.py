"""How long the CLI makes a user wait before anything trains: `--cfg job`, and the dry run of a 96-job sweep.

Run from the repo root: python bench/cli.py [--repeats 5]  (about a minute on 2 CPU cores).

Each figure is the wall time of a fresh `python launch.py ...` process (interpreter start, imports, Hydra
composition, validation, printing), the median of `--repeats` runs, the two commands alternated so that load
from other processes hits both alike. Goals: `--cfg job` under 3 s; validating and dry-running the 96-job sweep
(4 sizes x 2 variants x 3 learning rates x 4 seeds: every job composed, validated, sized and frozen, the job
table printed, nothing run) under 10 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from machine_info import machine

REPO = Path(__file__).resolve().parent.parent
CFG_JOB = ["--cfg", "job"]
SWEEP_96 = ["-m", "experiment=none", "model=qwen2.5-0.5b,qwen2.5-1.5b,qwen2.5-3b,qwen2.5-7b",
            "variant=base,instruct", "algo.lr=1e-6,5e-7,3e-7", "seed=0,1,2,3", "rollout=hf", "dry_run=true"]
GOALS = {"cfg_job": 3.0, "sweep_96": 10.0}


def timed(args: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, str(REPO / "launch.py"), *args], cwd=REPO, capture_output=True, text=True,
                         timeout=600, env={**os.environ, "WANDB_MODE": "disabled"})
    elapsed = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"launch.py {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return elapsed, out.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    opts = parser.parse_args()
    print(machine())
    times: dict[str, list[float]] = {"cfg_job": [], "sweep_96": []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(opts.repeats):
            times["cfg_job"].append(timed(CFG_JOB)[0])
            elapsed, stdout = timed([*SWEEP_96, f"hydra.sweep.dir={tmp}/sweep-{repeat}"])
            if "96 jobs, about" not in stdout or "dry run: nothing launched" not in stdout:
                raise RuntimeError(f"the dry run did not plan 96 jobs:\n{stdout[-2000:]}")
            times["sweep_96"].append(elapsed)
    labels = {"cfg_job": "python launch.py --cfg job", "sweep_96": "96-job sweep, validate + dry run"}
    print(f"median of {opts.repeats} fresh processes (load avg now %.1f)" % os.getloadavg()[0])
    for key, label in labels.items():
        median = statistics.median(times[key])
        runs = " ".join(f"{t:.2f}" for t in times[key])
        verdict = "meets" if median < GOALS[key] else "MISSES"
        print(f"{label:34} {median:6.2f} s  ({verdict} the {GOALS[key]:g} s goal; runs: {runs})")


if __name__ == "__main__":
    main()
