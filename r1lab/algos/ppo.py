"""PPO with a learned critic and GAE (Schulman et al. 2017), as TinyZero runs it on veRL (Pan et al. 2025).

Each rollout batch (`num_generations` completions per prompt; TinyZero samples 1):
1. Token rewards (Ouyang et al. 2022, eq. 2; veRL `apply_kl_penalty`): the outcome reward on the last
   completion token, minus `kl_coef * (log pi_old - log pi_ref)` on every token.
2. Values V_t from the critic, a copy of the policy backbone with a scalar head per token
   (`AutoModelForTokenClassification`, num_labels=1, as veRL builds it), read at the positions that
   predict each completion token.
3. GAE (Schulman et al. 2016, eq. 16): delta_t = r_t + gamma V_{t+1} - V_t, A_t = delta_t + gamma lam A_{t+1};
   returns R_t = A_t + V_t; advantages whitened over the batch.
4. Critic: `num_iterations` epochs of `mini_batches` AdamW steps (its own lr, `critic_learning_rate`) on the
   clipped value loss 0.5 max((V - R)^2, (clip(V, V_old +- cliprange_value) - R)^2).
5. Policy: the same epochs and mini-batches through TRL's loop on the clipped surrogate
   -min(rho A_t, clip(rho, 1 +- epsilon) A_t) with the token-level A_t, minus `entropy_coef` times the mean
   token entropy (TRL's entropy bonus).

Defaults (conf/algo/ppo.yaml) are TinyZero's `train_tiny_zero.sh` on veRL's PPO defaults: actor lr 1e-6,
critic lr 1e-5, kl_coef 0.001, clip 0.2, value clip 0.5, entropy 0.001, gamma = lam = 1, one epoch of two
mini-batches per rollout batch, 1 rollout per prompt.

What this adds to TRL (which has no PPO since 1.13): the critic and its update, the reference-KL reward
shaping, GAE, the (B, T) advantages fed to GRPOTrainer's clipped loss, the `num_generations=1` escape
from GRPOConfig's check, and the critic in checkpoints (`checkpoint-N/critic/`) and in `final/critic/`.
Logged: `critic/value_loss`, `critic/vf_clipfrac`, `critic/values_mean`, `critic/returns_mean`,
`critic/grad_norm`, `critic/kl`; `train/reward` stays the mean outcome reward.
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
    TrainedCompanion,
    build_reference,
    clipped_value_loss,
    load_companion,
    masked_mean,
    ppo_advantages,
    with_companion_adapter,
)


@dataclass
class Config(TokenLevelConfig):
    """GRPOConfig plus PPO's critic, GAE and reward-shaping fields (`mini_batches`, one rollout: TokenLevelConfig)."""

    critic_learning_rate: float = field(default=1e-5, metadata={"help": "Critic AdamW learning rate (constant)."})
    gamma: float = field(default=1.0, metadata={"help": "GAE discount."})
    lam: float = field(default=1.0, metadata={"help": "GAE lambda."})
    kl_coef: float = field(default=0.001, metadata={"help": "Weight of log(pi_old/pi_ref) subtracted from token rewards."})
    cliprange_value: float = field(default=0.5, metadata={"help": "Value clip around the rollout-time values."})
    mini_batches: int = field(default=2, metadata={"help": "Optimizer steps per epoch over one rollout batch."})


class Trainer(TokenLevelTrainer):
    """GRPOTrainer whose advantages come from a critic and GAE instead of the group mean."""

    companion_name = "critic"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from transformers import AutoModelForTokenClassification
        from trl.trainer.utils import disable_dropout_in_model

        self.reference = build_reference(self)
        critic = load_companion(self, architecture=AutoModelForTokenClassification, num_labels=1)
        disable_dropout_in_model(critic)
        critic = with_companion_adapter(self, critic, "TOKEN_CLS")
        self.companion = TrainedCompanion(
            self, critic, learning_rate=self.args.critic_learning_rate, max_grad_norm=self.args.max_grad_norm,
            accumulation_steps=self.args.gradient_accumulation_steps,
        )

    def critic_values(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, num_completion: int) -> torch.Tensor:
        """V_t for each completion token: the critic's output at the position that predicts that token."""
        with self.accelerator.autocast():
            outputs = self.companion.module(input_ids=input_ids, attention_mask=attention_mask)
        return outputs.logits[:, -num_completion - 1 : -1, 0].float()

    def _generate_and_score_completions(self, inputs):
        batch = super()._generate_and_score_completions(inputs)
        if not self.model.training:
            return batch
        args = self.args
        mask = batch["completion_mask"].float()
        input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
        attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
        num_completion = batch["completion_ids"].size(1)

        old_logps = batch.get("old_per_token_logps")
        if old_logps is None:
            old_logps = self.per_token_logps(self.model, batch)
        ref_logps = self.per_token_logps(self.reference, batch)
        with torch.no_grad():
            values = torch.cat([
                self.critic_values(input_ids[i : i + args.per_device_train_batch_size],
                                   attention_mask[i : i + args.per_device_train_batch_size], num_completion)
                for i in range(0, input_ids.size(0), args.per_device_train_batch_size)
            ]) * mask

        scores = self.local_rows(self.outcome_scores(), input_ids.size(0)).to(mask.device)
        batch["advantages"], returns = ppo_advantages(scores, old_logps, ref_logps, values, mask, args.kl_coef,
                                                      args.gamma, args.lam, self.ranks)
        batch["old_per_token_logps"] = old_logps

        self.update_critic(input_ids, attention_mask, mask, values, returns)
        self.record_rank_mean("critic/kl", masked_mean(old_logps - ref_logps, mask).item())
        self.record_rank_mean("critic/values_mean", masked_mean(values, mask).item())
        self.record_rank_mean("critic/returns_mean", masked_mean(returns, mask).item())
        return batch

    def update_critic(self, input_ids, attention_mask, mask, old_values, returns) -> None:
        """`num_iterations` epochs over the rollout batch in shuffled per-device chunks, a step every GA chunks.

        That is `mini_batches` critic steps per epoch, as veRL's critic takes on the actor's mini-batch size
        (`critic/optimizer_steps` logs the count). Losses are averaged over ranks.
        """
        chunk = self.args.per_device_train_batch_size
        steps_before = self.companion.steps
        num_completion = mask.size(1)
        losses, clipfracs, norms = [], [], []
        for _ in range(self.num_iterations):
            order = torch.randperm(input_ids.size(0), device=input_ids.device)
            for start in range(0, input_ids.size(0), chunk):
                rows = order[start : start + chunk]
                values = self.critic_values(input_ids[rows], attention_mask[rows], num_completion)
                loss, clipfrac = clipped_value_loss(
                    values, old_values[rows], returns[rows], mask[rows], self.args.cliprange_value
                )
                norm = self.companion.backward(loss)
                losses.append(loss.item())
                clipfracs.append(clipfrac.item())
                if norm is not None:
                    norms.append(norm)
        self.record_rank_mean("critic/value_loss", sum(losses) / len(losses))
        self.record_rank_mean("critic/vf_clipfrac", sum(clipfracs) / len(clipfracs))
        self.record_metric("critic/optimizer_steps", self.companion.steps - steps_before)
        if norms:
            self.record_metric("critic/grad_norm", sum(norms) / len(norms))


def config_fields(algo: Mapping) -> dict[str, Any]:
    return {
        **clipped_update_fields(algo),
        "mini_batches": int(algo["mini_batches"]),
        "entropy_coef": float(algo["entropy_coef"]),
        # The reference KL lives in the rewards (kl_coef); TRL's KL loss term stays off.
        "beta": 0.0,
        "kl_coef": float(algo["kl_coef"]),
        "gamma": float(algo["gamma"]),
        "lam": float(algo["lam"]),
        "critic_learning_rate": float(algo["critic_lr"]),
        "cliprange_value": float(algo["cliprange_value"]),
    }
