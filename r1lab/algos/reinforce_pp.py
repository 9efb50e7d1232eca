"""REINFORCE++: critic-free PPO with global advantage normalisation (Hu 2025, arXiv:2501.03262).

Each rollout batch (TinyZero-like: 1 completion per prompt by default):
1. Token rewards (sec. 3, KL in the reward as in PPO): r_t = 1[t = T] r(x, y) - `kl_coef` * log(pi_old(y_t) /
   pi_ref(y_t)), with r the task's weighted reward on the last completion token.
2. Returns (gamma = 1 by default): G_t = sum_{s >= t} gamma^(s - t) r_s; no critic, no group baseline.
3. Advantages (sec. 3, "global batch normalisation"): A_t = (G_t - mean(G)) / std(G) over every completion token
   of the rollout batch on all ranks.
4. Policy: PPO's clipped surrogate in TRL's loop with those (B, T) advantages, `mini_batches` steps per batch.

It is r1lab's PPO without the critic: the same reward shaping (`kl_shaped_rewards`) and returns (`gae` with V = 0
and lambda = 1) and the same whitening (`masked_whiten`), so the two differ only in the baseline.
Logged: `reinforce_pp/kl` (mean token log-ratio to the reference), `reinforce_pp/returns_mean`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from r1lab.algos.base import clipped_update_fields
from r1lab.algos.token_level import (
    TokenLevelConfig,
    TokenLevelTrainer,
    build_reference,
    gae,
    kl_shaped_rewards,
    masked_mean,
    masked_whiten,
)


@dataclass
class Config(TokenLevelConfig):
    """GRPOConfig plus REINFORCE++'s reward-shaping fields (`mini_batches`, one rollout: TokenLevelConfig)."""

    kl_coef: float = field(default=0.001, metadata={"help": "Weight of log(pi_old/pi_ref) subtracted per token."})
    gamma: float = field(default=1.0, metadata={"help": "Discount of the token returns."})


def reinforce_pp_advantages(scores, logps, ref_logps, mask, kl_coef: float, gamma: float, all_reduce_sum=None):
    """(advantages, returns): KL-shaped token rewards, discounted returns, whitened over the (global) batch."""
    rewards = kl_shaped_rewards(scores, logps, ref_logps, mask, kl_coef)
    returns, _ = gae(rewards, torch.zeros_like(rewards), mask, gamma, 1.0)
    return masked_whiten(returns, mask, all_reduce_sum), returns


class Trainer(TokenLevelTrainer):
    """GRPOTrainer whose advantages are REINFORCE++'s globally normalised KL-shaped returns."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reference = build_reference(self)

    def _generate_and_score_completions(self, inputs):
        batch = super()._generate_and_score_completions(inputs)
        if not self.model.training:
            return batch
        mask = batch["completion_mask"].float()
        old_logps = batch.get("old_per_token_logps")
        if old_logps is None:
            old_logps = self.per_token_logps(self.model, batch)
        ref_logps = self.per_token_logps(self.reference, batch)
        scores = self.local_rows(self.outcome_scores(), mask.size(0)).to(mask.device)
        advantages, returns = reinforce_pp_advantages(scores, old_logps, ref_logps, mask, self.args.kl_coef,
                                                      self.args.gamma, self.all_reduce_sum)
        batch["advantages"] = advantages
        batch["old_per_token_logps"] = old_logps
        self.record_rank_mean("reinforce_pp/kl", masked_mean(old_logps - ref_logps, mask).item())
        self.record_rank_mean("reinforce_pp/returns_mean", masked_mean(returns, mask).item())
        return batch


def config_fields(algo: Mapping) -> dict[str, Any]:
    return {
        **clipped_update_fields(algo),
        "mini_batches": int(algo["mini_batches"]),
        "entropy_coef": float(algo["entropy_coef"]),
        "beta": 0.0,  # the KL lives in the token rewards (kl_coef); TRL's KL loss term stays off
        "kl_coef": float(algo["kl_coef"]),
        "gamma": float(algo["gamma"]),
    }
