"""RLOO: REINFORCE with a leave-one-out baseline (Ahmadian et al. 2024, "Back to Basics", arXiv:2402.14740).

Each rollout batch (`num_generations` = k completions per prompt):
1. Sequence rewards (eq. 2, KL in the reward): R_i = r(x, y_i) - `kl_coef` * sum_t log(pi_old(y_t) / pi_ref(y_t)),
   with r the task's weighted reward; `kl_coef=0` (the default) loads no reference model.
2. Advantages (eq. 6): A_i = R_i - 1/(k-1) sum_{j != i} R_j, the same for every token of completion i; not
   whitened (the leave-one-out baseline is the whole variance reduction in the paper).
3. Policy: TRL's clipped loss with those advantages; with `num_iterations=1` the ratio is 1 and the gradient is
   REINFORCE's, sum_i A_i grad log pi(y_i | x) (token-averaged by `loss_type`).

What this adds to TRL's GRPOTrainer: the leave-one-out advantages (and the optional KL-in-reward), on the same
token-level machinery as PPO and PRIME (`TokenLevelTrainer`, so `mini_batches` and the metrics behave alike).
TRL's own `RLOOTrainer` is a sibling copy of GRPOTrainer, without r1lab's evaluation, samples and aha metrics.
Logged: `rloo/kl` (mean sequence log-ratio to the reference, when kl_coef > 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from r1lab.algos.base import clipped_update_fields
from r1lab.algos.token_level import TokenLevelConfig, TokenLevelTrainer, build_reference, leave_one_out_baseline


@dataclass
class Config(TokenLevelConfig):
    """GRPOConfig plus RLOO's KL-in-reward coefficient (`mini_batches`: TokenLevelConfig)."""

    kl_coef: float = field(default=0.0, metadata={"help": "Weight of sum_t log(pi_old/pi_ref) subtracted from R."})


def rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """(N,) leave-one-out advantages R_i - mean_{j != i} R_j over groups of `group_size` contiguous rows."""
    return rewards - leave_one_out_baseline(rewards, group_size)


class Trainer(TokenLevelTrainer):
    """GRPOTrainer whose advantages are leave-one-out outcome advantages."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reference = build_reference(self) if self.args.kl_coef > 0 else None

    def _generate_and_score_completions(self, inputs):
        batch = super()._generate_and_score_completions(inputs)
        if not self.model.training:
            return batch
        ranks = self.ranks
        rewards = self.outcome_scores().to(batch["completion_ids"].device)
        if self.args.kl_coef > 0:  # (under an adapter the reference is None: the policy, adapter disabled)
            mask = batch["completion_mask"].float()
            old_logps = batch.get("old_per_token_logps")
            if old_logps is None:
                old_logps = self.per_token_logps(self.model, batch)
                batch["old_per_token_logps"] = old_logps
            kl = ranks.gather(((old_logps - self.per_token_logps(self.reference, batch)) * mask).sum(dim=1))
            self.record_metric("rloo/kl", kl.mean().item())
            rewards = rewards - self.args.kl_coef * kl
        advantages = self.local_rows(rloo_advantages(rewards, self.num_generations), batch["completion_ids"].size(0))
        batch["advantages"] = advantages.unsqueeze(1) * batch["completion_mask"].float()
        return batch


def config_fields(algo: Mapping) -> dict[str, Any]:
    return {
        **clipped_update_fields(algo),
        "mini_batches": int(algo["mini_batches"]),
        "entropy_coef": float(algo["entropy_coef"]),
        "beta": 0.0,  # RLOO's KL lives in the reward (kl_coef); TRL's KL loss term stays off
        "kl_coef": float(algo["kl_coef"]),
    }
