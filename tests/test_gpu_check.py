"""bench/gpu_check.py's code path on the CPU (--smoke: tiny shape, fp32): every run trains and is reported beside
the memory plan. GPU figures come only from a GPU machine (bench/README.md)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_smoke_run_reports_plan_and_throughput_for_full_and_lora():
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py"), "--smoke", "--algos", "ppo", "--steps", "1",
         "--prompt-tokens", "8", "--completion-tokens", "16"],
        capture_output=True, text=True, timeout=600, cwd=REPO, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith("tiny ")]
    assert [(r[1], r[2], r[3]) for r in rows] == [("ppo", "none", "zero2"), ("ppo", "lora", "single")], out.stdout
    for row in rows:
        assert "failed:" not in " ".join(row) and "skipped:" not in " ".join(row)
        trained_m, plan_gb, step_s, gen_tok_s = float(row[4]), float(row[5]), float(row[9]), float(row[10])
        assert plan_gb > 1.0 and step_s > 0 and gen_tok_s > 0  # the plan includes its 1 GiB context allowance
        assert row[6] == "n/a"  # no CUDA memory to measure on a CPU
    assert float(rows[1][4]) < 0.5 * float(rows[0][4])  # LoRA trains a fraction of the parameters
