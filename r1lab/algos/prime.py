"""PRIME: Process Reinforcement through IMplicit rEwards (Cui et al. 2025, arXiv:2502.01456).

Each rollout batch (`num_generations` completions per prompt, 4 in the paper):
1. Optional accuracy filter: prompts whose mean outcome over their completions lies outside
   [`accuracy_lower_bound`, `accuracy_upper_bound`] (PRIME: [0.2, 0.8]) are dropped from both updates
   (their completion masks are zeroed; rows stay so batch shapes and groups hold).
2. Implicit process rewards (eq. 3): r_t = `prm_beta` * log(pi_prm(y_t) / pi_ref(y_t)), where the PRM is a
   causal LM initialised from the policy and pi_ref a frozen copy of the initial policy.
3. PRM update (eq. 4): cross-entropy between sigmoid(`prm_beta` * sum_t log(pi_prm/pi_ref)) and the outcome
   label (the outcome reward clipped to [0, 1]), one AdamW step per rollout batch (lr `prm_learning_rate`),
   after the rewards of step 2 were read (PRIME's `update=after`).
4. Advantages (eq. 5, gamma = 1): leave-one-out (RLOO) baselines computed separately for the outcome reward and
   for the process rewards, combined as outcome + `rm_coef` * process, summed from each token to the end and
   whitened over the batch.
5. Policy: PPO-clipped surrogate in TRL's loop with those (B, T) advantages (`beta` adds TRL's k3 KL term to
   the same reference, 0 in PRIME).

Defaults (conf/algo/prime.yaml) are PRIME's reference run (`run_prime_main.sh`): policy lr 5e-7, PRM lr 1e-6,
4 samples per prompt, prm_beta 0.05, PRM grad clip 10, no entropy bonus, no KL, one epoch of one mini-batch per
rollout batch. One exception: `rm_coef` defaults to 0.1, not PRIME's equal weighting (1.0, set by the
tinyzero_countdown_3b_prime experiment), because on rewards of small spread the sum of an untrained PRM's
implicit rewards swamped the outcome term (see conf/algo/prime.yaml).

What this adds to TRL (no PRIME in any version): the reference and the online PRM, the implicit process
rewards, the two RLOO baselines and their combination into (B, T) advantages, the accuracy filter, and the PRM
with its optimizer in checkpoints (`checkpoint-N/prm/`) and in `final/prm/`. Logged: `prime/prm_loss`,
`prime/prm_accuracy` (pairwise ranking accuracy within groups, PRIME's dpo_acc), `prime/process_reward_mean`,
`prime/filtered_ratio`, `prime/prm_grad_norm`; `train/reward` stays the mean outcome reward.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from accelerate.utils import gather
from trl import GRPOConfig

from r1lab.algos.base import clipped_update_fields
from r1lab.algos.token_level import (
    TokenLevelTrainer,
    TrainedCompanion,
    build_reference,
    group_ranking_accuracy,
    implicit_process_rewards,
    leave_one_out_baseline,
    masked_mean,
    masked_whiten,
    model_init_kwargs,
    policy_model_id,
    prime_returns,
    prm_cross_entropy,
)


@dataclass
class Config(GRPOConfig):
    """GRPOConfig plus PRIME's PRM, reward-combination and filter fields (`mini_batches` as in PPO's Config)."""

    prm_learning_rate: float = field(default=1e-6, metadata={"help": "PRM AdamW learning rate (constant)."})
    prm_beta: float = field(default=0.05, metadata={"help": "Implicit reward scale beta (eq. 3 and 4)."})
    prm_max_grad_norm: float = field(default=10.0, metadata={"help": "PRM gradient clipping."})
    rm_coef: float = field(default=0.1, metadata={"help": "Weight of process-reward advantages vs outcome ones."})
    filter_accuracy: bool = field(default=False, metadata={"help": "Drop prompts outside the accuracy bounds."})
    accuracy_lower_bound: float = field(default=0.2, metadata={"help": "Lowest kept mean outcome of a prompt."})
    accuracy_upper_bound: float = field(default=0.8, metadata={"help": "Highest kept mean outcome of a prompt."})
    mini_batches: int = field(default=1, metadata={"help": "Optimizer steps per epoch over one rollout batch."})

    def __post_init__(self):
        self.steps_per_generation = self.gradient_accumulation_steps * self.mini_batches
        super().__post_init__()


class Trainer(TokenLevelTrainer):
    """GRPOTrainer whose advantages come from outcome and implicit process rewards with RLOO baselines."""

    companion_name = "prm"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from trl.trainer.utils import add_fused_lm_head, create_model_from_path, disable_dropout_in_model

        self.reference = build_reference(self)
        prm = create_model_from_path(policy_model_id(self), **model_init_kwargs(self))
        disable_dropout_in_model(prm)
        add_fused_lm_head(prm, temperature=self.temperature, cast_lm_head_to_fp32=self.args.cast_lm_head_to_fp32)
        # One PRM step per rollout batch: accumulate over all its per-device chunks.
        self.companion = TrainedCompanion(
            self, prm, learning_rate=self.args.prm_learning_rate, max_grad_norm=self.args.prm_max_grad_norm,
            accumulation_steps=self.args.steps_per_generation,
        )

    def _generate_and_score_completions(self, inputs):
        batch = super()._generate_and_score_completions(inputs)
        if not self.model.training:
            return batch
        args, group = self.args, self.num_generations
        local_size = batch["completion_ids"].size(0)
        device = batch["completion_ids"].device

        # Outcomes and the filter are per prompt group, so they are computed on the whole (gathered) batch.
        outcome = self.outcome_scores().to(device)
        labels = outcome.clamp(0.0, 1.0)
        keep = torch.ones_like(outcome)
        if args.filter_accuracy:
            group_accuracy = labels.view(-1, group).mean(dim=1)
            kept_groups = (group_accuracy >= args.accuracy_lower_bound) & (group_accuracy <= args.accuracy_upper_bound)
            keep = kept_groups.float().repeat_interleave(group)
        self.record_metric("prime/filtered_ratio", 1.0 - keep.mean().item())
        local_keep = self.local_rows(keep, local_size)
        batch["completion_mask"] = batch["completion_mask"] * local_keep.unsqueeze(1).to(batch["completion_mask"].dtype)
        mask = batch["completion_mask"].float()

        ref_logps = batch.get("ref_per_token_logps")
        if ref_logps is None:
            ref_logps = self.per_token_logps(self.reference, batch)
        prm_logps = self.update_prm(batch, ref_logps, self.local_rows(labels, local_size), local_keep,
                                    total_kept=keep.sum())
        process = implicit_process_rewards(prm_logps, ref_logps, mask, args.prm_beta)
        log_ratios = (prm_logps - ref_logps) * mask

        # RLOO baselines need each group's other members: gather per-completion means (lengths differ per rank).
        process_means = gather(masked_mean(process, mask, dim=1))
        sequence_scores = gather((log_ratios * mask).sum(dim=1))
        self.record_metric("prime/prm_accuracy", group_ranking_accuracy(
            sequence_scores[keep.bool()], labels[keep.bool()], group) if keep.any() else 0.5)
        self.record_metric("prime/process_reward_mean", (process_means * keep).sum().item() / max(keep.sum().item(), 1))
        returns = prime_returns(
            self.local_rows(outcome, local_size),
            self.local_rows(leave_one_out_baseline(outcome, group), local_size),
            process,
            self.local_rows(leave_one_out_baseline(process_means, group), local_size),
            mask,
            args.rm_coef,
        )
        batch["advantages"] = masked_whiten(returns, mask, self.all_reduce_sum)
        return batch

    def update_prm(self, batch, ref_logps, labels, keep, total_kept) -> torch.Tensor:
        """One PRM step on the kept rows (eq. 4); returns the PRM's per-token log-probs from before the step."""
        chunk = self.args.per_device_train_batch_size
        input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
        attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
        num_completion = batch["completion_ids"].size(1)
        mask = batch["completion_mask"].float()
        # Each chunk's loss is a sum over its kept rows, scaled so that the accumulated step averages over the
        # kept rows of all ranks (the companion divides by its accumulation steps, DDP averages over ranks).
        # `total_kept` is global, so every rank skips the step together when the filter kept nothing.
        train = bool(total_kept > 0)
        scale = self.companion.accumulation_steps * self.accelerator.num_processes / total_kept.clamp(min=1)
        all_logps, loss_sum, norm = [], 0.0, None
        for start in range(0, input_ids.size(0), chunk):
            rows = slice(start, start + chunk)
            with torch.set_grad_enabled(train):
                prm_logps, _, _ = self._get_per_token_logps_and_entropies(
                    self.companion.module, input_ids[rows], attention_mask[rows], num_completion
                )
            all_logps.append(prm_logps.detach())
            if not train:
                continue
            ratios = (prm_logps - ref_logps[rows]) * mask[rows]
            kept = keep[rows].sum()
            loss = prm_cross_entropy(ratios, mask[rows], labels[rows], self.args.prm_beta, weights=keep[rows]) * kept
            loss_sum += loss.item()
            step_norm = self.companion.backward(loss * scale)
            norm = step_norm if step_norm is not None else norm
        if train:
            self.record_metric("prime/prm_loss", loss_sum / max(keep.sum().item(), 1))
        if norm is not None:
            self.record_metric("prime/prm_grad_norm", norm)
        return torch.cat(all_logps)


def config_fields(algo: Mapping) -> dict[str, Any]:
    return {
        **clipped_update_fields(algo),
        "mini_batches": int(algo["mini_batches"]),
        "entropy_coef": float(algo["entropy_coef"]),
        "beta": float(algo["beta"]),
        "prm_learning_rate": float(algo["prm_lr"]),
        "prm_beta": float(algo["prm_beta"]),
        "prm_max_grad_norm": float(algo["prm_max_grad_norm"]),
        "rm_coef": float(algo["rm_coef"]),
        "filter_accuracy": bool(algo["filter_accuracy"]),
        "accuracy_lower_bound": float(algo["accuracy_lower_bound"]),
        "accuracy_upper_bound": float(algo["accuracy_upper_bound"]),
    }
