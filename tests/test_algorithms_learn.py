"""Each algorithm learns `task=sanity` with default settings, and a sign flip makes it unlearn.

`python launch.py algo=<a> task=sanity` (tiny random-init model, CPU, nothing else overridden): the mean of
`train/reward` over the last 5 logged steps exceeds the mean over the first 5 by at least 0.2. With the reward
negated (`task.rewards.digit_share_reward=-1.0`) `train/reward` is minus the digit share, so what must not rise
is the digit share itself (`train/rewards/digit_share_reward/mean`, the unweighted function output).
The six runs go two at a time, one thread each (this is a 2-core CPU budget): about 3 minutes in all.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import launch

pytestmark = pytest.mark.slow

ALGORITHMS = ("grpo", "ppo", "prime")
MIN_RISE = 0.2
NEGATED = "task.rewards.digit_share_reward=-1.0"


def first_and_last_five(run_dir: Path, key: str) -> tuple[float, float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    values = [r[key] for r in records if key in r and "eval/accuracy" not in r]
    assert len(values) >= 10, f"{run_dir}: only {len(values)} logged values of {key}"
    return sum(values[:5]) / 5, sum(values[-5:]) / 5


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[tuple[str, bool], Path]:
    root = tmp_path_factory.mktemp("learn")
    jobs = [(algo, negated) for algo in ALGORITHMS for negated in (False, True)]

    def run(job):
        algo, negated = job
        run_dir = root / f"{algo}{'-negated' if negated else ''}"
        extra = [NEGATED] if negated else []
        out = launch(f"algo={algo}", "task=sanity", f"hydra.run.dir={run_dir}", "logger=none", *extra, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        return job, run_dir

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        with ThreadPoolExecutor(max_workers=2) as pool:
            return dict(pool.map(run, jobs))


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_reward_rises(runs, algo):
    first, last = first_and_last_five(runs[algo, False], "train/reward")
    assert last - first >= MIN_RISE, f"{algo}: train/reward first 5 {first:.3f}, last 5 {last:.3f}"


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_negated_reward_does_not_raise_the_digit_share(runs, algo):
    first, last = first_and_last_five(runs[algo, True], "train/rewards/digit_share_reward/mean")
    assert last <= first, f"{algo}, reward negated: digit share first 5 {first:.3f}, last 5 {last:.3f}"
