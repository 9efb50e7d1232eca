"""PRIME: RLOO baselines, implicit process rewards, the PRM loss and the combined returns by hand; config; resume."""

from __future__ import annotations

import json
import math

import pytest
import torch

from r1lab.algos.token_level import (
    group_ranking_accuracy,
    leave_one_out_baseline,
    masked_rloo,
    prime_process_scores,
    prime_returns,
    prm_cross_entropy,
    prm_label_accuracy,
)
from tests.conftest import compose
from tests.test_ppo import assert_resume_is_exact

MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


def test_leave_one_out_baseline_by_hand():
    values = torch.tensor([1.0, 2.0, 3.0, 6.0, 0.0, 1.0])
    # Groups of 3: (1, 2, 3) and (6, 0, 1); each row's baseline is the mean of the other two.
    expected = torch.tensor([2.5, 2.0, 1.5, 0.5, 3.5, 3.0])
    torch.testing.assert_close(leave_one_out_baseline(values, 3), expected)
    torch.testing.assert_close(leave_one_out_baseline(torch.tensor([1.0, 0.0]), 2), torch.tensor([0.0, 1.0]))


def test_process_scores_by_hand():
    q = torch.tensor([[0.5, -1.0, 0.0], [1.0, 0.0, 7.0]])  # 7.0 sits on padding
    # Suffix sums: row 0 [-0.5, -1.0, 0.0], row 1 [1.0, 0.0]; the largest magnitude is 1.0.
    scores = prime_process_scores(q, MASK, "batch_norm", beta=0.05)
    torch.testing.assert_close(scores, torch.tensor([[0.5, -1.0, 0.0], [1.0, 0.0, 0.0]]) / (1.0 + 1e-6))
    torch.testing.assert_close(prime_process_scores(q, MASK, "none", beta=0.05),
                               torch.tensor([[0.025, -0.05, 0.0], [0.05, 0.0, 0.0]]))


def test_prm_cross_entropy_by_hand():
    log_ratios = torch.tensor([[2.0, 4.0, 4.0], [-10.0, -10.0, 99.0]])  # 99 sits on padding
    labels = torch.tensor([1.0, 0.25])
    beta = 0.1
    # Sequence logits beta * sum: 1.0 and -2.0.
    def bce(z, y):
        p = 1 / (1 + math.exp(-z))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    loss = prm_cross_entropy(log_ratios, MASK, labels, beta)
    assert loss.item() == pytest.approx((bce(1.0, 1.0) + bce(-2.0, 0.25)) / 2, rel=1e-6)
    only_second = prm_cross_entropy(log_ratios, MASK, labels, beta, weights=torch.tensor([0.0, 1.0]))
    assert only_second.item() == pytest.approx(bce(-2.0, 0.25), rel=1e-6)


def test_prm_loss_gradient_reaches_the_log_ratios():
    log_ratios = torch.zeros(2, 3, requires_grad=True)
    prm_cross_entropy(log_ratios, MASK, torch.tensor([1.0, 0.0]), beta=0.05).backward()
    # d/dz BCE = sigmoid(z) - y = 0.5 - y at z = 0, times beta, averaged over 2 rows; zero on padding.
    expected = torch.tensor([[-0.0125, -0.0125, -0.0125], [0.0125, 0.0125, 0.0]])
    torch.testing.assert_close(log_ratios.grad, expected)


def test_masked_rloo_by_hand():
    # One group of 2: row means 0.2 and 0.3 (over 3 and 2 tokens); r * 2 - (0.2 + 0.3) on every real token.
    process = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.2, 9.0]])
    expected = torch.tensor([[-0.3, -0.1, 0.1], [0.3, -0.1, 0.0]])
    torch.testing.assert_close(masked_rloo(process, MASK, 2), expected)


def test_prime_returns_by_hand():
    outcome = torch.tensor([1.0, 0.0])
    process = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.2, 0.0]])
    returns = prime_returns(outcome, process, MASK, group_size=2, rm_coef=2.0)
    # Outcome RLOO on the last tokens: 1 - 0 = 1 and 0 - 1 = -1. Process RLOO (above): [-0.3, -0.1, 0.1] and
    # [0.3, -0.1], weighted 2. Token rewards: row 0 [-0.6, -0.2, 0.2 + 1], row 1 [0.6, -0.2 - 1]; suffix sums.
    expected = torch.tensor([[0.4, 1.0, 1.2], [-0.6, -1.2, 0.0]])
    torch.testing.assert_close(returns, expected)


def test_prm_label_accuracy_counts_ties_as_coin_flips():
    sums = torch.tensor([2.0, -1.0, 0.0, 0.5])
    labels = torch.tensor([1.0, 1.0, 0.0, 0.0])
    assert prm_label_accuracy(sums, labels) == pytest.approx((1 + 0 + 0.5 + 0) / 4)


def test_group_ranking_accuracy_by_hand():
    scores = torch.tensor([3.0, 1.0, 2.0, 0.0, 5.0, 5.0, 5.0, 5.0])
    labels = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    # Group 1: pairs (0,1), (0,2), (0,3) carry the label gaps, all ordered right; group 2: all labels equal -> 0.5.
    assert group_ranking_accuracy(scores, labels, 4) == pytest.approx((1.0 + 0.5) / 2)
    wrong = torch.tensor([0.0, 1.0, 2.0, 3.0])
    assert group_ranking_accuracy(wrong, torch.tensor([1.0, 0.0, 0.0, 0.0]), 4) == pytest.approx(0.0)


def test_config_is_the_prime_reference_run():
    cfg = compose("algo=prime", "model=qwen2.5-3b")
    assert (cfg.algo.lr, cfg.algo.prm_lr, cfg.algo.num_generations, cfg.algo.prm_beta) == (5e-7, 1e-6, 4, 0.05)
    assert (cfg.algo.accuracy_lower_bound, cfg.algo.accuracy_upper_bound) == (0.2, 0.8)
    assert (cfg.algo.prime_norm, cfg.algo.prm_update, cfg.algo.rm_coef) == ("batch_norm", "after", 1.0)
    twin = compose("experiment=tinyzero_countdown_3b_prime")
    assert twin.algo.mini_batches == 4 and twin.algo.filter_accuracy  # PRIME's 4 policy and 4 PRM steps per batch

    from r1lab.algos import prime

    args = prime.Config(output_dir="/tmp/unused", per_device_train_batch_size=8, report_to=[], bf16=False,
                        **prime.config_fields(cfg.algo))
    assert args.num_generations == 4 and args.steps_per_generation == 1
    assert args.prm_learning_rate == 1e-6 and args.beta == 0.0


def test_prime_keys_are_checked_before_any_model():
    from r1lab.validation import ConfigError, validate

    with pytest.raises(ConfigError) as error:
        validate(compose("algo=prime", "algo.prime_norm=max", "algo.prm_update=never",
                         "algo.prm_label_reward=no_such_reward"))
    assert all(text in str(error.value) for text in ("algo.prime_norm", "algo.prm_update", "'no_such_reward'"))


@pytest.mark.slow
def test_resume_restores_the_prm_with_the_filter_on(tmp_path):
    assert_resume_is_exact(tmp_path, "prm", "algo=prime", "algo.filter_accuracy=true", "algo.accuracy_lower_bound=0.05")
    records = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    ratios = [r["train/prime/filtered_ratio"] for r in records if "train/prime/filtered_ratio" in r]
    assert ratios and all(0.0 <= ratio <= 1.0 for ratio in ratios)
