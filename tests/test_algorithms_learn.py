"""Each algorithm learns `task=sanity` with default settings, a sign flip makes it unlearn, and the token-level
algorithms' extra parts (PPO's critic and KL, PRIME's PRM) do what they are for.

`python launch.py algo=<a> task=sanity` (tiny random-init model, CPU, nothing else overridden): the mean of
`train/reward` over the last 5 logged rollouts exceeds the mean over the first 5 by at least 0.2. With the reward
negated (`task.rewards.digit_share_reward=-1.0`) `train/reward` is minus the digit share, so what must not rise
is the digit share itself (`train/rewards/digit_share_reward/mean`, the unweighted function output).

Two more runs check the wiring that a rising reward cannot show (each mutation named is caught here):
- `ppo-kl`: PPO with kl_coef 0.1 ends closer to the reference (`critic/kl`) than the default run (kl_coef
  0.001): the KL term pulls toward the reference (a flipped KL sign pushes away, and the KL grows instead).
- `prime-labelled`: PRIME on a sanity variant whose PRM label (`tests.helpers.some_digits_reward`, digit share
  >= 7%) holds for about half the completions from the start, and whose outcome reward is 0 everywhere, with 2
  PRM steps per rollout. Its labels are the label reward's outputs (flipped labels are not), its PRM learns to
  predict them (`prime/prm_accuracy` rises; a PRM never updated does not), and its process rewards alone teach the
  policy to earn the label (a flipped process sign or flipped labels teach the opposite).
The runs go two at a time, one thread each (a 2-core CPU budget).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import launch

pytestmark = pytest.mark.slow

ALGORITHMS = ("grpo", "ppo", "prime", "rloo", "reinforce_pp")
MIN_RISE = 0.2
NEGATED = "task.rewards.digit_share_reward=-1.0"
LABEL = "tests.helpers.some_digits_reward"
LABEL_NAME = LABEL.rpartition(".")[2]
# Sanity with no outcome reward, plus the PRM label reward (weight 0, logged); a dotted reward name is a YAML key.
LABELLED_TASK = f"defaults:\n  - sanity\n  - _self_\nrewards:\n  digit_share_reward: 0.0\n  {LABEL}: 0.0\n"


def metric(run_dir: Path, key: str) -> list[float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r[key] for r in records if key in r and "eval/accuracy" not in r]


def first_and_last_five(run_dir: Path, key: str) -> tuple[float, float]:
    values = metric(run_dir, key)
    assert len(values) >= 10, f"{run_dir}: only {len(values)} logged values of {key}"
    return sum(values[:5]) / 5, sum(values[-5:]) / 5


def jobs(root: Path) -> dict[str, list[str]]:
    """Every run's overrides, by name."""
    named = {name: [f"algo={algo}", "task=sanity", *([NEGATED] if negated else [])]
             for algo in ALGORITHMS for negated, name in ((False, algo), (True, f"{algo}-negated"))}
    named["ppo-kl"] = ["algo=ppo", "task=sanity", "algo.kl_coef=0.1"]
    named["prime-labelled"] = ["--config-dir", str(root / "conf"), "algo=prime", "task=prm_labelled",
                               f"algo.prm_label_reward={LABEL}", "algo.mini_batches=2"]
    return named


# The runs each test reads (by test function, from its parameters), so that selecting one test runs only those.
RUNS_READ = {
    "test_reward_rises": lambda algo: [algo],
    "test_negated_reward_does_not_raise_the_digit_share": lambda algo: [f"{algo}-negated"],
    "test_critic_value_loss_falls_with_the_configured_steps": lambda: ["ppo"],
    "test_ppo_kl_term_pulls_toward_the_reference": lambda: ["ppo", "ppo-kl"],
    "test_prm_learns_its_labels_with_the_configured_steps": lambda: ["prime-labelled", "prime"],
    "test_prime_process_rewards_alone_teach_the_policy": lambda: ["prime-labelled"],
}


def runs_read(item: pytest.Item) -> list[str]:
    params = item.callspec.params if hasattr(item, "callspec") else {}
    return RUNS_READ[item.originalname](**params)


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("learn")
    (root / "conf" / "task").mkdir(parents=True)
    (root / "conf" / "task" / "prm_labelled.yaml").write_text(LABELLED_TASK)
    overrides = jobs(root)
    needed = sorted({name for item in request.session.items if item.module is request.module
                     for name in runs_read(item)})

    def run(name):
        run_dir = root / name
        out = launch(*overrides[name], f"hydra.run.dir={run_dir}", "logger=none", timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        return name, run_dir

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        with ThreadPoolExecutor(max_workers=2) as pool:
            return dict(pool.map(run, needed))


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_reward_rises(runs, algo):
    first, last = first_and_last_five(runs[algo], "train/reward")
    assert last - first >= MIN_RISE, f"{algo}: train/reward first 5 {first:.3f}, last 5 {last:.3f}"


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_negated_reward_does_not_raise_the_digit_share(runs, algo):
    first, last = first_and_last_five(runs[f"{algo}-negated"], "train/rewards/digit_share_reward/mean")
    assert last <= first, f"{algo}, reward negated: digit share first 5 {first:.3f}, last 5 {last:.3f}"


def test_critic_value_loss_falls_with_the_configured_steps(runs):
    first, last = first_and_last_five(runs["ppo"], "train/critic/value_loss")
    assert last < first, f"critic/value_loss first 5 {first:.4f}, last 5 {last:.4f}"
    assert set(metric(runs["ppo"], "train/critic/optimizer_steps")) == {2.0}  # algo.mini_batches=2, 1 epoch


def test_ppo_kl_term_pulls_toward_the_reference(runs):
    _, default = first_and_last_five(runs["ppo"], "train/critic/kl")
    _, pulled = first_and_last_five(runs["ppo-kl"], "train/critic/kl")
    assert pulled < default / 2, f"critic/kl, last 5: kl_coef 0.1 {pulled:.3f}, kl_coef 0.001 {default:.3f}"


def test_prm_learns_its_labels_with_the_configured_steps(runs):
    first, last = first_and_last_five(runs["prime-labelled"], "train/prime/prm_accuracy")
    assert last >= first + 0.1 and last >= 0.7, f"prime/prm_accuracy first 5 {first:.3f}, last 5 {last:.3f}"
    # The labels are the label reward's 0/1 outputs, as logged by TRL for the same completions.
    labelled = runs["prime-labelled"]
    label_means = metric(labelled, "train/prime/label_mean")
    assert label_means == pytest.approx(metric(labelled, f"train/rewards/{LABEL_NAME}/mean"))
    assert set(metric(labelled, "train/prime/prm_optimizer_steps")) == {2.0}
    assert set(metric(runs["prime"], "train/prime/prm_optimizer_steps")) == {1.0}
    assert len(metric(runs["prime"], "train/prime/prm_accuracy")) == len(metric(runs["prime"], "train/reward"))


def test_prime_process_rewards_alone_teach_the_policy(runs):
    assert set(metric(runs["prime-labelled"], "train/reward")) == {0.0}  # no outcome signal at all
    first, last = first_and_last_five(runs["prime-labelled"], f"train/rewards/{LABEL_NAME}/mean")
    assert last >= first + MIN_RISE, f"label rate first 5 {first:.3f}, last 5 {last:.3f}"
