"""Golden tests: r1lab's PPO and PRIME token maths against the reference implementations' formulas.

Each `reference_*` function below is the reference code's computation written out here (not imported), loops and
all, with the file it comes from: veRL (`verl/trainer/ppo/core_algos.py`, `verl/utils/torch_functional.py`,
`verl/trainer/ppo/ray_trainer.py::apply_kl_penalty`) for PPO, as TinyZero runs it, and PRIME-RL/PRIME
(`training/verl/trainer/ppo/core_algos.py`, `training/verl/workers/actor/dp_prime.py`) for PRIME's reference run
(`run_prime_main.sh`). r1lab's vectorised functions must agree with them to 1e-6 on fixed random right-padded
batches, in float64. The references leave padding unmasked in places, so only real completion tokens are compared.
"""

from __future__ import annotations

import pytest
import torch

from r1lab.algos.token_level import (
    clipped_value_loss,
    group_ranking_accuracy,
    ppo_advantages,
    prime_advantages,
    prm_cross_entropy,
)

GROUP = 4
TOLERANCE = dict(rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def batch() -> dict[str, torch.Tensor]:
    """12 completions (3 groups of 4) of 1 to 9 tokens, right-padded to 9, with random log-probs, values, rewards."""
    generator = torch.Generator().manual_seed(11)
    rows, width = 12, 9
    lengths = torch.randint(1, width + 1, (rows,), generator=generator)
    lengths[0] = width  # one row uses the whole width, one a single token
    lengths[1] = 1
    mask = (torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)).double()

    def random(*shape, scale=1.0):
        return torch.randn(*shape, generator=generator, dtype=torch.float64) * scale

    return {
        "mask": mask,
        "lengths": lengths,
        "logps": -random(rows, width).abs(),
        "ref_logps": -random(rows, width).abs(),
        "prm_logps": -random(rows, width).abs(),
        "values": random(rows, width, scale=0.5),
        "new_values": random(rows, width, scale=0.5),
        "scores": random(rows),
        "acc": (torch.rand(rows, generator=generator) > 0.5).double(),
    }


# --- the references, written out ---------------------------------------------------------------------------


def reference_masked_mean(values, mask, axis=None):  # verl/utils/torch_functional.py
    return (values * mask).sum(axis=axis) / (mask.sum(axis=axis) + 1e-8)


def reference_masked_whiten(values, mask):  # verl/utils/torch_functional.py (unbiased variance)
    mean = reference_masked_mean(values, mask)
    variance = reference_masked_mean((values - mean) ** 2, mask)
    variance = variance * mask.sum() / (mask.sum() - 1)
    return (values - mean) * torch.rsqrt(variance + 1e-8)


def reference_token_level_rewards(scores, logps, ref_logps, mask, kl_coef):
    """ray_trainer.apply_kl_penalty: the score on the last valid token, minus kl_coef * (logp - ref) * mask."""
    token_scores = torch.zeros_like(mask)
    for i, length in enumerate(mask.sum(dim=1).long()):
        token_scores[i, length - 1] = scores[i]
    return token_scores - kl_coef * (logps - ref_logps) * mask


def reference_gae(token_level_rewards, values, mask, gamma, lam):  # core_algos.compute_gae_advantage_return
    next_values, last_gae_lam, reversed_advantages = 0.0, 0.0, []
    for t in reversed(range(token_level_rewards.shape[-1])):
        delta = token_level_rewards[:, t] + gamma * next_values - values[:, t]
        new_gae_lam = delta + gamma * lam * last_gae_lam
        next_values = values[:, t] * mask[:, t] + (1 - mask[:, t]) * next_values
        last_gae_lam = new_gae_lam * mask[:, t] + (1 - mask[:, t]) * last_gae_lam
        reversed_advantages.append(last_gae_lam)
    advantages = torch.stack(reversed_advantages[::-1], dim=1)
    returns = advantages + values
    return reference_masked_whiten(advantages, mask), returns


def reference_value_loss(vpreds, returns, values, mask, cliprange_value):  # core_algos.compute_value_loss
    clipped = torch.clamp(vpreds, values - cliprange_value, values + cliprange_value)
    losses, clipped_losses = (vpreds - returns) ** 2, (clipped - returns) ** 2
    loss = 0.5 * reference_masked_mean(torch.max(losses, clipped_losses), mask)
    return loss, reference_masked_mean(torch.gt(clipped_losses, losses).double(), mask)


def reference_prime_token_scores(prm_logps, ref_logps, mask):
    """dp_prime.compute_implicit_reward (prime_granularity=token) then update_policy's prime_norm=batch_norm."""
    q = prm_logps - ref_logps
    scores = torch.zeros_like(q)
    response_length = q.shape[1]
    for i, max_position in enumerate(mask.sum(dim=1).long()):
        step_ends = list(range(max_position))
        for j in range(len(step_ends)):
            start = min(step_ends[j - 1] + 1, response_length - 1) if j > 0 else 0
            end = min(response_length - 1, step_ends[j])
            scores[i, end] = q[i, start : end + 1].sum()
    reverse_cumsum = torch.cumsum(scores.flip(dims=[1]), dim=-1).flip(dims=[1])
    return scores / (reverse_cumsum.abs().max() + 1e-6)


def reference_rloo_returns(rm_scores, gt_scores, mask, n_samples):
    """core_algos.compute_rloo_returns with reward_model_gamma = verifier_gamma = 1 (run_prime_main.sh)."""
    last_token = torch.zeros_like(mask, dtype=torch.bool)
    last_token[torch.arange(mask.shape[0]), mask.sum(dim=1).long() - 1] = True
    discounted = []
    for reward, reward_mask in ((rm_scores, mask.bool()), (gt_scores, last_token)):
        reward = reward.clone()
        reward[~reward_mask] = 0
        for start in range(0, reward.shape[0], n_samples):
            means = torch.cat([reward[pos : pos + 1][reward_mask[pos : pos + 1]].mean(dim=0, keepdim=True)
                               for pos in range(start, start + n_samples)])
            baseline = means.sum() / (n_samples - 1)
            block, block_mask = reward[start : start + n_samples], reward_mask[start : start + n_samples]
            block[block_mask] = block[block_mask] * (n_samples / (n_samples - 1)) - baseline
        discount = torch.zeros_like(reward)
        for step in reversed(range(reward.shape[1])):
            following = discount[:, step + 1] if step < reward.shape[1] - 1 else 0.0
            discount[:, step] = reward[:, step] + following
        discounted.append(discount)
    returns = sum(discounted)
    return reference_masked_whiten(returns, mask), returns


def reference_ce_loss(q, acc, mask, beta):  # core_algos.compute_ce_dpo_loss_rm
    return torch.nn.functional.binary_cross_entropy(((q * mask).sum(dim=1) * beta).sigmoid(), acc)


def reference_dpo_accuracy(q, acc, mask, n_samples):  # core_algos.compute_dpo_accuracy
    accuracies = []
    for start in range(0, q.shape[0], n_samples):
        scores = (q[start : start + n_samples] * mask[start : start + n_samples]).sum(dim=1)

        def upper_triangle(x):
            differences = x.unsqueeze(1) - x.unsqueeze(0)
            return differences[torch.triu(torch.ones_like(differences).bool(), diagonal=1)]

        acc_diff, score_diff = upper_triangle(acc[start : start + n_samples]), upper_triangle(scores)
        if acc_diff.abs().sum() == 0:
            accuracies.append(torch.tensor(0.5, dtype=q.dtype))
        else:
            agree = ((score_diff > 0) == (acc_diff > 0)).double()
            accuracies.append((agree * acc_diff.abs()).sum() / acc_diff.abs().sum())
    return torch.stack(accuracies).mean()


# --- r1lab against them ---------------------------------------------------------------------------------------


def assert_equal_on_tokens(actual, expected, mask):
    torch.testing.assert_close(actual * mask, expected * mask, **TOLERANCE)


def raised(values: torch.Tensor, row: int, column: int, by: float) -> torch.Tensor:
    """A copy of `values` with one token's log-prob raised."""
    copy = values.clone()
    copy[row, column] += by
    return copy


@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 1.0), (0.9, 0.8)])
def test_ppo_advantages_and_returns_are_verls(batch, gamma, lam):
    b = batch
    advantages, returns = ppo_advantages(b["scores"], b["logps"], b["ref_logps"], b["values"], b["mask"],
                                         kl_coef=0.05, gamma=gamma, lam=lam)
    rewards = reference_token_level_rewards(b["scores"], b["logps"], b["ref_logps"], b["mask"], kl_coef=0.05)
    expected_advantages, expected_returns = reference_gae(rewards, b["values"], b["mask"], gamma, lam)
    assert_equal_on_tokens(advantages, expected_advantages, b["mask"])
    assert_equal_on_tokens(returns, expected_returns, b["mask"])


def test_ppo_kl_penalty_lowers_the_advantage_of_tokens_the_policy_favours_over_the_reference(batch):
    # Sign check independent of the reference: raising log pi_old on one token above log pi_ref must lower its
    # return (the reward pays kl_coef for the excess), so the KL term pulls the policy back toward the reference.
    b = batch
    returns = [ppo_advantages(b["scores"], logps, b["ref_logps"], b["values"], b["mask"], 0.1, 1.0, 1.0)[1]
               for logps in (b["logps"], raised(b["logps"], 0, 0, 1.0))]
    assert returns[1][0, 0].item() == pytest.approx(returns[0][0, 0].item() - 0.1, abs=1e-9)


def test_value_loss_is_verls(batch):
    b = batch
    returns = b["values"] + 0.7 * b["new_values"].flip(dims=[0])
    loss, clipfrac = clipped_value_loss(b["new_values"], b["values"], returns, b["mask"], clip=0.2)
    expected_loss, expected_clipfrac = reference_value_loss(b["new_values"], returns, b["values"], b["mask"], 0.2)
    torch.testing.assert_close(loss, expected_loss, **TOLERANCE)
    torch.testing.assert_close(clipfrac, expected_clipfrac, **TOLERANCE)


@pytest.mark.parametrize("outcome", ["acc", "scores"])
def test_prime_advantages_are_prime_rls(batch, outcome):
    b = batch
    log_ratios = (b["prm_logps"] - b["ref_logps"]) * b["mask"]
    advantages, process = prime_advantages(b[outcome], log_ratios, b["mask"], GROUP, rm_coef=1.0,
                                           norm="batch_norm", beta=0.05)
    rm_scores = reference_prime_token_scores(b["prm_logps"], b["ref_logps"], b["mask"])
    gt_scores = torch.zeros_like(b["mask"])
    gt_scores[torch.arange(12), b["lengths"] - 1] = b[outcome]
    expected_advantages, _ = reference_rloo_returns(rm_scores, gt_scores, b["mask"], GROUP)
    assert_equal_on_tokens(process, rm_scores, b["mask"])
    assert_equal_on_tokens(advantages, expected_advantages, b["mask"])


def test_prime_process_scores_follow_the_prm(batch):
    # A PRM that rates one token higher than the reference gives that token a higher process score.
    b = batch
    scores = [prime_advantages(b["scores"], (prm_logps - b["ref_logps"]) * b["mask"], b["mask"], GROUP, 1.0,
                               "none", 0.05)[1]
              for prm_logps in (b["prm_logps"], raised(b["prm_logps"], 0, 3, 2.0))]
    assert scores[1][0, 3].item() == pytest.approx(scores[0][0, 3].item() + 0.1, abs=1e-9)


def test_prm_loss_and_ranking_accuracy_are_prime_rls(batch):
    b = batch
    q = (b["prm_logps"] - b["ref_logps"]) * b["mask"]
    loss = prm_cross_entropy(q, b["mask"], b["acc"], beta=0.05)
    torch.testing.assert_close(loss, reference_ce_loss(q, b["acc"], b["mask"], 0.05), **TOLERANCE)
    accuracy = group_ranking_accuracy((q * b["mask"]).sum(dim=1), b["acc"], GROUP)
    assert accuracy == pytest.approx(reference_dpo_accuracy(q, b["acc"], b["mask"], GROUP).item(), abs=1e-6)
