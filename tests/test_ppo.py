"""PPO: GAE, KL-shaped rewards, whitening and the value loss by hand; the config; a short run that resumes its critic."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from r1lab.algos.token_level import (
    clipped_value_loss,
    gae,
    kl_shaped_rewards,
    last_token_scores,
    masked_mean,
    masked_whiten,
)
from tests.conftest import compose, launch

MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


def test_outcome_score_lands_on_the_last_completion_token():
    placed = last_token_scores(torch.tensor([2.0, 3.0]), MASK)
    assert placed.tolist() == [[0.0, 0.0, 2.0], [0.0, 3.0, 0.0]]


def test_kl_shaped_rewards():
    logps = torch.tensor([[-1.0, -2.0, -1.0], [-1.0, -1.0, -9.0]])
    ref = torch.tensor([[-1.5, -2.0, -0.5], [-2.0, -1.0, -1.0]])
    rewards = kl_shaped_rewards(torch.tensor([1.0, 0.0]), logps, ref, MASK, kl_coef=0.1)
    # -0.1 * (logp - ref) per token, the score on the last real token, nothing on padding.
    expected = torch.tensor([[-0.05, 0.0, 1.0 + 0.05], [-0.1, 0.0, 0.0]])
    torch.testing.assert_close(rewards, expected)


def test_gae_by_hand():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.5, 1.0, 7.0]])  # 7.0 sits on padding and must be ignored
    values = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 9.0]])
    gamma, lam = 0.9, 0.8
    advantages, returns = gae(rewards, values, MASK, gamma, lam)
    # Row 0: delta_2 = 1 - 0.3 = 0.7; delta_1 = 0 + 0.9*0.3 - 0.2 = 0.07; delta_0 = 0 + 0.9*0.2 - 0.1 = 0.08.
    a2 = 0.7
    a1 = 0.07 + 0.72 * a2
    a0 = 0.08 + 0.72 * a1
    # Row 1 (two tokens): delta_1 = 1 - 0.5 = 0.5; delta_0 = 0.5 + 0.9*0.5 - 0.4 = 0.55.
    b1 = 0.5
    b0 = 0.55 + 0.72 * b1
    torch.testing.assert_close(advantages, torch.tensor([[a0, a1, a2], [b0, b1, 0.0]]))
    torch.testing.assert_close(returns, torch.tensor([[a0 + 0.1, a1 + 0.2, a2 + 0.3], [b0 + 0.4, b1 + 0.5, 0.0]]))


def test_gae_with_gamma_lambda_one_is_outcome_minus_value():
    # TinyZero's setting: A_t = R - V_t when the only reward is the outcome.
    values = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.0]])
    rewards = last_token_scores(torch.tensor([1.0, 0.0]), MASK)
    advantages, returns = gae(rewards, values, MASK, 1.0, 1.0)
    torch.testing.assert_close(advantages, torch.tensor([[0.9, 0.8, 0.7], [-0.4, -0.5, 0.0]]))
    torch.testing.assert_close(returns, torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]))


def test_masked_mean_and_whiten():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 100.0]])
    assert masked_mean(x, MASK).item() == pytest.approx(3.0)
    torch.testing.assert_close(masked_mean(x, MASK, dim=1), torch.tensor([2.0, 4.5]))
    white = masked_whiten(x, MASK)
    std = math.sqrt(sum((v - 3.0) ** 2 for v in [1, 2, 3, 4, 5]) / 4)  # unbiased, over the 5 real tokens
    expected = torch.tensor([[-2.0, -1.0, 0.0], [1.0, 2.0, 0.0]]) / std
    torch.testing.assert_close(white, expected, rtol=1e-5, atol=1e-5)


def test_whiten_uses_the_moments_of_all_ranks():
    # Two "ranks" holding halves of a batch whiten like the whole batch when their sums are all-reduced.
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 0.0]])
    whole = masked_whiten(x, MASK)
    halves = [(x[:1], MASK[:1]), (x[1:], MASK[1:])]

    def total(tensor_from_rank):  # stands in for an all-reduce: sum of both ranks' statistics
        return sum(torch.stack([(v * m).sum(), (v * v * m).sum(), m.sum()]) for v, m in halves)

    torch.testing.assert_close(torch.cat([masked_whiten(v, m, total) for v, m in halves]), whole)


def test_clipped_value_loss_by_hand():
    old = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    new = torch.tensor([[1.0, -0.2, 0.3], [0.1, 2.0, 5.0]])
    returns = torch.tensor([[1.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    loss, clipfrac = clipped_value_loss(new, old, returns, MASK, clip=0.5)
    # Per token: max((v - R)^2, (clip(v, -0.5, 0.5) - R)^2)
    per_token = [max(0.0, 0.25), max(0.04, 0.04), max(1.69, 1.69), max(0.01, 0.01), max(4.0, 0.25)]
    assert loss.item() == pytest.approx(0.5 * sum(per_token) / 5)
    assert clipfrac.item() == pytest.approx(1 / 5)  # only token (0, 0): the clipped error is the larger one


def test_config_is_tinyzero_and_allows_one_rollout():
    cfg = compose("algo=ppo", "model=qwen2.5-3b")
    assert (cfg.algo.lr, cfg.algo.critic_lr, cfg.algo.kl_coef) == (1e-6, 1e-5, 0.001)
    assert (cfg.algo.epsilon, cfg.algo.entropy_coef, cfg.algo.num_generations) == (0.2, 0.001, 1)
    assert (cfg.algo.gamma, cfg.algo.lam) == (1.0, 1.0)
    assert compose("algo=ppo").algo.critic_lr == pytest.approx(1e-3)  # the tiny model's own rate

    from r1lab.algos import ppo

    args = ppo.Config(output_dir="/tmp/unused", per_device_train_batch_size=4, gradient_accumulation_steps=2,
                      report_to=[], bf16=False, **ppo.config_fields(cfg.algo))
    assert args.num_generations == 1
    assert args.steps_per_generation == 4 and args.generation_batch_size == 16  # GA 2 x 2 mini-batches x 4
    assert args.beta == 0.0 and args.critic_learning_rate == 1e-5


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_resume_is_exact(tmp_path, companion: str, *overrides: str, weights: str = "model.safetensors") -> None:
    """Stopping at step 2 and resuming to 4 ends with the same companion (and policy) as 4 uninterrupted steps.
    `weights` is the saved weights' file name (`adapter_model.safetensors` under an adapter).

    The companion's weights and optimizer must both be restored for this to hold bit for bit: a fresh critic or
    PRM, or fresh AdamW moments, at step 3 would change every later weight.
    """
    from safetensors.torch import load_file

    common = ["task=sanity", "train.save_steps=2", "eval.every_steps=0", "eval.num_prompts=4", "logger=none",
              *overrides]
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"
    for run_dir, max_steps in ((resumed, 2), (resumed, 4), (straight, 4)):
        out = launch(*common, f"hydra.run.dir={run_dir}", f"train.max_steps={max_steps}")
        assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((resumed / "summary.json").read_text())["resumed_from"].endswith("checkpoint-2")
    assert (resumed / "checkpoint-2" / companion / "optimizer.pt").exists()
    for name in (f"{companion}/{weights}", weights):
        after_resume = load_file(str(resumed / "checkpoint-4" / name))
        uninterrupted = load_file(str(straight / "checkpoint-4" / name))
        assert after_resume.keys() == uninterrupted.keys()
        assert all(torch.equal(after_resume[k], uninterrupted[k]) for k in after_resume), name
    assert (straight / "final" / companion / weights).exists()


@pytest.mark.slow
def test_resume_restores_the_critic(tmp_path):
    assert_resume_is_exact(tmp_path, "critic", "algo=ppo")


@pytest.mark.slow
def test_ppo_under_deepspeed_zero2_trains_and_resumes(tmp_path, monkeypatch):
    # One process standing in for a launcher's rank 0 (DeepSpeed needs the env; two CPU ranks do not form a world).
    for name, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                        "MASTER_PORT": "29531"}.items():
        monkeypatch.setenv(name, value)
    run_dir = tmp_path / "run"
    common = [f"hydra.run.dir={run_dir}", "algo=ppo", "task=sanity", "dist=zero2", "train.save_steps=2",
              "eval.every_steps=0", "eval.num_prompts=4", "logger=none"]
    first = launch(*common, "train.max_steps=2")
    assert first.returncode == 0, first.stderr[-3000:]
    assert (run_dir / "checkpoint-2" / "critic" / "deepspeed").is_dir()
    second = launch(*common, "train.max_steps=3")
    assert second.returncode == 0, second.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["resumed_from"].endswith("checkpoint-2")
    steps = [r["train/global_step"] for r in _read(run_dir / "metrics.jsonl") if "train/critic/value_loss" in r]
    assert steps and steps[-1] == 3
