"""PRIME: Process Reinforcement through IMplicit rEwards (Cui et al. 2025, arXiv:2502.01456).

Reference: PRIME-RL/PRIME's `training/examples/run_prime_main.sh` on its veRL fork (`core_algos.py`,
`workers/actor/dp_prime.py`, `trainer/main_ppo.py`), and veRL's PRIME recipe (`recipe/prime/`). Each rollout
batch (`num_generations` completions per prompt, 4 in the paper):

1. Labels: the task's 0/1 correctness reward (the one that defines `eval/accuracy`; `prm_label_reward` names
   another), as PRIME labels with its verifier's `acc`. Optional accuracy filter: prompts whose mean label lies
   outside [`accuracy_lower_bound`, `accuracy_upper_bound`] (PRIME: [0.2, 0.8]) are dropped from both updates
   (their completion masks are zeroed; rows stay, so batch shapes and groups hold, where PRIME refills the batch
   by oversampling).
2. PRM update (eq. 4): `mini_batches` AdamW steps (lr `prm_learning_rate`, clip `prm_max_grad_norm`) on the
   cross-entropy between sigmoid(`prm_beta` * sum_t q_t) and the label, q_t = log pi_prm(y_t) - log pi_ref(y_t),
   with pi_prm a causal LM initialised from the policy and pi_ref a frozen copy of it. The reference's mini-batch
   is the actor's, so it takes as many PRM steps as policy steps per batch. `prm_update=after` (PRIME-RL's run):
   each mini-batch's q is read just before that mini-batch's step; `before` (veRL's recipe): after all steps.
3. Process scores (eq. 3): the q_t of step 2, divided by the largest |sum_{s>=t} q_s| in the batch
   (`prime_norm=batch_norm`; `none` uses `prm_beta` * q_t).
4. Returns (eq. 5, gamma = 1): PRIME's RLOO on the outcome (last token) and on the process scores (every token)
   separately, summed 1:1 (`rm_coef` weighs the process part, 1.0 in the reference), suffix-summed; the advantage
   is the return whitened over the batch.
5. Policy: PPO-clipped surrogate in TRL's loop with those (B, T) advantages, `mini_batches` steps per batch.

The outcome is the task's weighted reward (`train/reward`); in PRIME it is the verifier's 0/1, the same thing
for a task whose only reward is its correctness; a task with a dense, narrow outcome (task=sanity) sets a smaller
`rm_coef` through `task.prime_rm_coef` (the reason and the measurement are in conf/task/sanity.yaml). Defaults (conf/algo/prime.yaml) are the reference run's:
policy lr 5e-7, PRM lr 1e-6, prm_beta 0.05, PRM grad clip 10, rm_coef 1, no entropy bonus, no KL; its cadence
(4 policy and 4 PRM steps per batch) is the TinyZero twin's (conf/experiment/tinyzero_countdown_3b_prime.yaml).

What this adds to TRL (no PRIME in any version): the reference and the online PRM, the process scores, the
RLOO'd returns, the filter, and the PRM with its optimizer in checkpoints (`checkpoint-N/prm/`) and in
`final/prm/`. Logged every step: `prime/prm_accuracy` (share of kept completions whose label
sigmoid(beta * sum q) > 1/2 predicts, before the PRM trained on them), `prime/prm_ranking_accuracy` (PRIME's
dpo_acc), `prime/prm_loss`, `prime/prm_optimizer_steps`, `prime/process_reward_mean`, `prime/filtered_ratio`,
`prime/prm_grad_norm`, `prime/label_mean`; `train/reward` stays the mean outcome reward.
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
    group_ranking_accuracy,
    load_companion,
    prime_advantages,
    prm_cross_entropy,
    prm_label_accuracy,
    with_companion_adapter,
)


@dataclass
class Config(TokenLevelConfig):
    """GRPOConfig plus PRIME's PRM, reward-combination and filter fields (`mini_batches`: TokenLevelConfig)."""

    prm_learning_rate: float = field(default=1e-6, metadata={"help": "PRM AdamW learning rate (constant)."})
    prm_beta: float = field(default=0.05, metadata={"help": "beta of the PRM's sigmoid(beta * sum q) (eq. 4)."})
    prm_max_grad_norm: float = field(default=10.0, metadata={"help": "PRM gradient clipping."})
    prime_norm: str = field(default="batch_norm", metadata={"help": "Process-score scale: batch_norm | none."})
    prm_update: str = field(default="after", metadata={"help": "Read q before each PRM step (after) or after all."})
    prm_label_reward: str | None = field(default=None, metadata={"help": "0/1 reward labelling the PRM."})
    rm_coef: float = field(default=1.0, metadata={"help": "Weight of the process RLOO returns vs the outcome ones."})
    filter_accuracy: bool = field(default=False, metadata={"help": "Drop prompts outside the accuracy bounds."})
    accuracy_lower_bound: float = field(default=0.2, metadata={"help": "Lowest kept mean label of a prompt."})
    accuracy_upper_bound: float = field(default=0.8, metadata={"help": "Highest kept mean label of a prompt."})

    def __post_init__(self):
        super().__post_init__()
        if self.prime_norm not in ("batch_norm", "none"):
            raise ValueError(f"prime_norm must be batch_norm or none, not {self.prime_norm!r}")
        if self.prm_update not in ("after", "before"):
            raise ValueError(f"prm_update must be after or before, not {self.prm_update!r}")


class Trainer(TokenLevelTrainer):
    """GRPOTrainer whose advantages come from outcome and implicit process rewards with RLOO baselines."""

    companion_name = "prm"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from trl.trainer.utils import add_fused_lm_head, disable_dropout_in_model

        self.reference = build_reference(self)
        prm = load_companion(self)
        disable_dropout_in_model(prm)
        add_fused_lm_head(prm, temperature=self.temperature, cast_lm_head_to_fp32=self.args.cast_lm_head_to_fp32)
        prm = with_companion_adapter(self, prm, "CAUSAL_LM")  # after the fused head, as TRL patches the policy
        # One PRM step per mini-batch: accumulate over its per-device chunks (GA of them per rank).
        self.companion = TrainedCompanion(
            self, prm, learning_rate=self.args.prm_learning_rate, max_grad_norm=self.args.prm_max_grad_norm,
            accumulation_steps=self.args.gradient_accumulation_steps,
        )

    def label_reward_name(self) -> str:
        if self.args.prm_label_reward is not None:
            return self.args.prm_label_reward
        held_out = getattr(self, "held_out", None)
        if held_out is None:
            raise ValueError("PRIME needs the task's correctness reward for its PRM labels: set prm_label_reward")
        return held_out.task.CORRECTNESS

    def _generate_and_score_completions(self, inputs):
        batch = super()._generate_and_score_completions(inputs)
        if not self.model.training:
            return batch
        args, group, ranks = self.args, self.num_generations, self.ranks
        local_size = batch["completion_ids"].size(0)
        device = batch["completion_ids"].device

        # Labels and the filter are per prompt group, so they are computed on the whole (gathered) batch.
        outcome = self.outcome_scores().to(device)
        labels = self.reward_column(self.label_reward_name().rpartition(".")[2]).to(device).clamp(0.0, 1.0)
        self.record_metric("prime/label_mean", labels.mean().item())
        keep = torch.ones_like(labels)
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
        prm_logps = self.update_prm(batch, ref_logps, self.local_rows(labels, local_size), local_keep, keep)
        if args.prm_update == "before":
            prm_logps = self.per_token_logps(self.companion.module, batch)
        log_ratios = (prm_logps - ref_logps) * mask

        kept = keep.bool()
        sequence_scores = ranks.gather(log_ratios.sum(dim=1))
        if kept.any():
            self.record_metric("prime/prm_accuracy", prm_label_accuracy(sequence_scores[kept], labels[kept]))
            self.record_metric("prime/prm_ranking_accuracy",
                               group_ranking_accuracy(sequence_scores[kept], labels[kept], group))
        batch["advantages"], process = prime_advantages(
            self.local_rows(outcome, local_size), log_ratios, mask, group, args.rm_coef, args.prime_norm,
            args.prm_beta, ranks,
        )
        self.record_metric("prime/process_reward_mean",
                           (ranks.sum(process.sum()) / ranks.sum(mask.sum()).clamp(min=1)).item())
        return batch

    def update_prm(self, batch, ref_logps, labels, keep, global_keep) -> torch.Tensor:
        """`mini_batches` PRM steps on the kept rows (eq. 4), in order; returns each row's PRM log-probs as read
        just before the step of its mini-batch (PRIME-RL's `update=after`).

        Rank r's k-th slice of rows is its part of global mini-batch k. Each chunk's loss is a sum over its kept rows,
        scaled so that the step averages the BCE over the mini-batch's kept rows on all ranks (the companion divides
        by its accumulation steps, DDP averages over ranks). A mini-batch the filter emptied on every rank is skipped
        by all ranks together.
        """
        chunk = self.args.per_device_train_batch_size
        input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
        attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
        num_completion = batch["completion_ids"].size(1)
        mask = batch["completion_mask"].float()
        local_size, mini_batches = input_ids.size(0), self.args.mini_batches
        local_mini = local_size // mini_batches
        global_kept = global_keep.view(self.accelerator.num_processes, mini_batches, local_mini).sum(dim=(0, 2))
        steps_before = self.companion.steps
        all_logps, losses, norms = [], [], []
        for k in range(mini_batches):
            train = bool(global_kept[k] > 0)
            scale = self.companion.accumulation_steps * self.accelerator.num_processes / global_kept[k].clamp(min=1)
            loss_sum = 0.0
            for start in range(k * local_mini, (k + 1) * local_mini, chunk):
                rows = slice(start, min(start + chunk, (k + 1) * local_mini))
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
                norm = self.companion.backward(loss * scale)
                if norm is not None:
                    norms.append(norm)
            if train:
                losses.append(loss_sum * self.accelerator.num_processes / global_kept[k].item())
        if losses:
            self.record_rank_mean("prime/prm_loss", sum(losses) / len(losses))
        if norms:
            self.record_metric("prime/prm_grad_norm", sum(norms) / len(norms))
        self.record_metric("prime/prm_optimizer_steps", self.companion.steps - steps_before)
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
        "prime_norm": str(algo["prime_norm"]),
        "prm_update": str(algo["prm_update"]),
        "prm_label_reward": algo["prm_label_reward"],
        "rm_coef": float(algo["rm_coef"]),
        "filter_accuracy": bool(algo["filter_accuracy"]),
        "accuracy_lower_bound": float(algo["accuracy_lower_bound"]),
        "accuracy_upper_bound": float(algo["accuracy_upper_bound"]),
    }
