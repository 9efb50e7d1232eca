"""What PPO and PRIME share on top of GRPOTrainer: token-level advantage math and the extra models it needs.

Math (pure functions on small tensors; `tests/test_ppo.py` and `tests/test_prime.py` check them by hand, and
`tests/test_golden_maths.py` against the reference implementations' formulas): masked mean/whitening, GAE,
KL-shaped token rewards, the clipped value loss, leave-one-out (RLOO) baselines, and PRIME's process scores,
masked RLOO, returns and PRM cross-entropy. Tensors are (B, T) over the completion tokens, with `mask` 1 on real
completion tokens (EOS included) and 0 on right padding. Batch-wide statistics go through `Ranks`, so a batch
split over ranks gives the same numbers as one process holding all of it.

Models: `build_reference` (a frozen copy of the initial policy, as TRL builds its own at beta != 0) and
`TrainedCompanion`, a second trained model (PPO's critic, PRIME's PRM) with its own optimizer, stepped
outside HF's training loop so that `self.model` stays the bare policy (vLLM weight sync, generation and
TRL's fused LM head all assume it). Under DeepSpeed the companion gets its own `deepspeed.initialize`
engine: one prepared through `accelerator.prepare` in `__init__` would become the accelerator's backward
target and be destroyed by `free_memory()` when training starts.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from trl import GRPOConfig

from r1lab.algos.base import R1Trainer

# --- token-level math ----------------------------------------------------------------------------------


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `x` over the positions where `mask` is 1 (over `dim`, or all of it)."""
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_whiten(
    x: torch.Tensor, mask: torch.Tensor, all_reduce_sum: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> torch.Tensor:
    """(x - mean) / std over the masked positions, zero elsewhere; unbiased variance, as veRL's `masked_whiten`.

    `all_reduce_sum` sums a tensor over ranks, so every rank whitens with the moments of the whole batch.
    """
    reduce = all_reduce_sum or (lambda t: t)
    sums = reduce(torch.stack([(x * mask).sum(), (x * x * mask).sum(), mask.sum().to(x.dtype)]))
    total, total_sq, count = sums[0], sums[1], sums[2].clamp(min=1)
    mean = total / count
    variance = (total_sq / count - mean * mean) * count / (count - 1).clamp(min=1)
    return (x - mean) * torch.rsqrt(variance.clamp(min=0) + 1e-8) * mask


def last_token_scores(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T) with each row's outcome score (B,) on its last completion token (the EOS, or the cut-off token)."""
    placed = torch.zeros_like(mask, dtype=scores.dtype)
    last = (mask.sum(dim=1) - 1).clamp(min=0).long()
    placed[torch.arange(mask.size(0), device=mask.device), last] = scores * (mask.sum(dim=1) > 0)
    return placed


def kl_shaped_rewards(
    scores: torch.Tensor, logps: torch.Tensor, ref_logps: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> torch.Tensor:
    """PPO's token rewards (Ouyang et al. 2022, eq. 2; veRL's `apply_kl_penalty`).

    r_t = -kl_coef * (log pi_old(y_t) - log pi_ref(y_t)), plus the outcome score on the last token.
    """
    return last_token_scores(scores, mask) - kl_coef * (logps - ref_logps) * mask


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016, eq. 16) over each completion's tokens.

    delta_t = r_t + gamma * V_{t+1} - V_t (V = 0 after the last token);  A_t = delta_t + gamma * lam * A_{t+1};
    returns R_t = A_t + V_t, the critic's regression target. Returns (advantages, returns), zero on padding.
    """
    values = values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.size(1))):
        next_value = values[:, t + 1] if t + 1 < rewards.size(1) else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        advantages[:, t] = running
    return advantages, (advantages + values) * mask


def clipped_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped value loss 0.5 * max((V - R)^2, (clip(V, V_old +- clip) - R)^2), masked token mean.

    Returns (loss, fraction of tokens where the clipped term was the larger one).
    """
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    unclipped_error = (values - returns) ** 2
    clipped_error = (clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(unclipped_error, clipped_error), mask)
    return loss, masked_mean((clipped_error > unclipped_error).float(), mask)


def leave_one_out_baseline(values: torch.Tensor, group_size: int) -> torch.Tensor:
    """RLOO baseline (Ahmadian et al. 2024): for each row, the mean of the other rows of its group.

    `values` is (N,) with groups of `group_size` contiguous rows.
    """
    grouped = values.view(-1, group_size)
    return ((grouped.sum(dim=1, keepdim=True) - grouped) / (group_size - 1)).view(-1)


def prm_cross_entropy(
    log_ratios: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, beta: float, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """PRIME's PRM loss (Cui et al. 2025, eq. 4): BCE(sigmoid(beta * sum_t log(pi_prm/pi_ref)), outcome label).

    `log_ratios` (B, T) must carry the PRM's gradient; `labels` (B,) lie in [0, 1]; `weights` (B,) average
    over a subset of rows (e.g. those that passed the accuracy filter). Computed from logits, so stable.
    """
    logits = beta * (log_ratios * mask).sum(dim=1)
    losses = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none")
    if weights is None:
        return losses.mean()
    return (losses * weights).sum() / weights.sum().clamp(min=1)


def _unchanged(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


@dataclass
class Ranks:
    """Collectives over the ranks that share one rollout batch; the defaults are one process holding all of it.

    `sum`/`max` reduce a tensor over ranks, `gather` concatenates (B, ...) tensors rank-major (as TRL gathers),
    `index` is this rank's position, so `local` slices this rank's rows out of a gathered tensor.
    """

    sum: Callable[[torch.Tensor], torch.Tensor] = _unchanged
    max: Callable[[torch.Tensor], torch.Tensor] = _unchanged
    gather: Callable[[torch.Tensor], torch.Tensor] = _unchanged
    index: int = 0

    def local(self, values: torch.Tensor, local_size: int) -> torch.Tensor:
        return values[self.index * local_size : (self.index + 1) * local_size]

    @classmethod
    def of_default_group(cls) -> Ranks:
        """The ranks of torch.distributed's default process group (one process when there is none).

        `gather` needs the same leading size on every rank, as TRL's per-rank batches have.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return cls()

        def all_reduce(op):
            def reduce(tensor: torch.Tensor) -> torch.Tensor:
                tensor = tensor.clone()
                dist.all_reduce(tensor, op=op)
                return tensor
            return reduce

        def all_gather(tensor: torch.Tensor) -> torch.Tensor:
            parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
            dist.all_gather(parts, tensor.contiguous())
            return torch.cat(parts)

        return cls(sum=all_reduce(dist.ReduceOp.SUM), max=all_reduce(dist.ReduceOp.MAX), gather=all_gather,
                   index=dist.get_rank())


def suffix_sum(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """R_t = sum_{s >= t} x_s over each row's masked positions (gamma = 1 returns)."""
    return (x * mask).flip(dims=[1]).cumsum(dim=1).flip(dims=[1]) * mask


def last_token_mask(mask: torch.Tensor) -> torch.Tensor:
    """(B, T) with 1 on each row's last completion token only."""
    return last_token_scores(torch.ones(mask.size(0), dtype=mask.dtype, device=mask.device), mask)


def prime_process_scores(log_ratios: torch.Tensor, mask: torch.Tensor, norm: str, beta: float,
                         ranks: Ranks = Ranks()) -> torch.Tensor:
    """PRIME's token process rewards from q_t = log pi_prm(y_t) - log pi_ref(y_t) (Cui et al. 2025, eq. 3).

    `norm="batch_norm"` (PRIME's `prime_norm`, its reference run): q_t divided by the largest |sum_{s>=t} q_s|
    over the whole batch (+1e-6), so the largest process return is 1 and beta cancels; PRIME-RL's
    `training/verl/workers/actor/dp_prime.py` (`compute_implicit_reward`, then `prime_norm`) scores every completion
    token with the raw q_t. `norm="none"`: beta * q_t, as veRL's recipe (`recipe/prime/prime_dp_rm.py`) scores
    when it does not normalise. The batch maximum is taken over all ranks (the reference takes it per data-parallel
    shard; with one GPU the two agree), so the scores do not depend on how many ranks hold the batch.
    """
    q = log_ratios * mask
    if norm == "none":
        return beta * q
    if norm != "batch_norm":
        raise ValueError(f"prime_norm must be batch_norm or none, not {norm!r}")
    largest = suffix_sum(q, mask).abs().max() if q.numel() else q.new_zeros(())
    return q / (ranks.max(largest) + 1e-6)


def masked_rloo(rewards: torch.Tensor, reward_mask: torch.Tensor, group_size: int, ranks: Ranks = Ranks()) -> torch.Tensor:
    """PRIME's RLOO on one reward source (PRIME-RL `core_algos.compute_rloo_returns`, veRL `masked_rloo`).

    With m_i the mean of row i's rewards over its `reward_mask` positions, every masked reward becomes
    r * n / (n - 1) - sum_{j in group} m_j / (n - 1). For a reward on the last token only this is the usual
    leave-one-out r_i - mean_{j != i} r_j; for token rewards it also moves each token by (r_t - m_i) / (n - 1).
    Groups are `group_size` contiguous rows of the gathered batch.
    """
    n = group_size
    means = masked_mean(rewards, reward_mask, dim=1)
    totals = ranks.gather(means).view(-1, n).sum(dim=1).repeat_interleave(n)
    local_totals = ranks.local(totals, rewards.size(0)).unsqueeze(1)
    return (rewards * n / (n - 1) - local_totals / (n - 1)) * reward_mask


def prime_returns(outcome: torch.Tensor, process_scores: torch.Tensor, mask: torch.Tensor, group_size: int,
                  rm_coef: float, ranks: Ranks = Ranks()) -> torch.Tensor:
    """PRIME's returns (eq. 5, gamma = 1): RLOO on each reward source separately, summed, then suffix sums.

    The outcome (B,) sits on the last completion token; `process_scores` (B, T) on every token. PRIME-RL sums the
    two RLOO'd sources 1:1 (`compute_rloo_returns`; veRL's recipe weighs both by 5): `rm_coef` is the process
    weight, 1.0 in the reference. The policy's advantage is these returns whitened over the batch.
    """
    outcome_rloo = masked_rloo(last_token_scores(outcome, mask), last_token_mask(mask), group_size, ranks)
    process_rloo = masked_rloo(process_scores, mask, group_size, ranks)
    return suffix_sum(outcome_rloo + rm_coef * process_rloo, mask)


def prime_advantages(outcome: torch.Tensor, log_ratios: torch.Tensor, mask: torch.Tensor, group_size: int,
                     rm_coef: float, norm: str, beta: float, ranks: Ranks = Ranks()) -> tuple[torch.Tensor, torch.Tensor]:
    """PRIME's policy advantages from outcomes (B,) and PRM log-ratios q (B, T): (whitened returns, process scores)."""
    process = prime_process_scores(log_ratios, mask, norm, beta, ranks)
    returns = prime_returns(outcome, process, mask, group_size, rm_coef, ranks)
    return masked_whiten(returns, mask, ranks.sum), process


def ppo_advantages(scores: torch.Tensor, logps: torch.Tensor, ref_logps: torch.Tensor, values: torch.Tensor,
                   mask: torch.Tensor, kl_coef: float, gamma: float, lam: float,
                   ranks: Ranks = Ranks()) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's (whitened GAE advantages, returns) from outcome scores (B,), old/ref log-probs and values (B, T)."""
    rewards = kl_shaped_rewards(scores, logps, ref_logps, mask, kl_coef)
    advantages, returns = gae(rewards, values, mask, gamma, lam)
    return masked_whiten(advantages, mask, ranks.sum), returns


def prm_label_accuracy(sequence_log_ratios: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of completions whose 0/1 label the PRM predicts: sigmoid(beta * sum_t q_t) > 1/2 iff the label is 1.

    veRL's `compute_dpo_abs_accuracy`, except that a tie (sum q = 0: an untrained PRM, sigmoid exactly 1/2) counts
    as a coin flip, 1/2, where veRL's sign comparison counts it wrong.
    """
    right = ((sequence_log_ratios > 0) == (labels > 0.5)).float()
    return torch.where(sequence_log_ratios == 0, 0.5, right).mean().item()


def group_ranking_accuracy(scores: torch.Tensor, labels: torch.Tensor, group_size: int) -> float:
    """Share of completion pairs within a group that `scores` order like `labels`, weighted by |label gap|.

    PRIME's `dpo_acc`: 0.5 for groups whose labels are all equal; averaged over groups.
    """
    accuracies = []
    for group_scores, group_labels in zip(scores.view(-1, group_size), labels.view(-1, group_size), strict=True):
        score_gap = group_scores.unsqueeze(1) - group_scores.unsqueeze(0)
        label_gap = group_labels.unsqueeze(1) - group_labels.unsqueeze(0)
        upper = torch.triu(torch.ones_like(label_gap, dtype=torch.bool), diagonal=1)
        score_gap, label_gap = score_gap[upper], label_gap[upper]
        weight = label_gap.abs().sum()
        if weight == 0:
            accuracies.append(0.5)
        else:
            agree = ((score_gap > 0) == (label_gap > 0)).float()
            accuracies.append(((agree * label_gap.abs()).sum() / weight).item())
    return sum(accuracies) / len(accuracies)


# --- config ---------------------------------------------------------------------------------------------


@dataclass
class TokenLevelConfig(GRPOConfig):
    """GRPOConfig plus what every token-level algorithm sets: `mini_batches` and one rollout per prompt.

    `mini_batches` sets TRL's `steps_per_generation` to `gradient_accumulation_steps * mini_batches`, so each
    rollout batch gives that many policy optimizer steps per epoch (and as many critic/PRM steps).
    `num_generations=1` (TinyZero's PPO, REINFORCE++) is allowed: GRPOConfig rejects fewer than 2 because GRPO's
    group baseline needs a group, which a critic or a batch-wide baseline replaces.
    """

    mini_batches: int = field(default=1, metadata={"help": "Optimizer steps per epoch over one rollout batch."})

    def __post_init__(self):
        self.steps_per_generation = self.gradient_accumulation_steps * self.mini_batches
        one_rollout = self.num_generations == 1
        if one_rollout:
            self.num_generations = 2  # passes GRPOConfig's group checks; restored below
        super().__post_init__()
        if one_rollout:
            self.num_generations = 1


# --- extra models --------------------------------------------------------------------------------------


def model_init_kwargs(trainer) -> dict:
    """`from_pretrained` kwargs for a model built like the policy (dtype and attention from `args.model_init_kwargs`)."""
    kwargs = dict(trainer.args.model_init_kwargs or {})
    if trainer.args.distributed_state.distributed_type in ("MULTI_GPU", "DEEPSPEED"):
        kwargs["device_map"] = None  # distributed training places models itself ("auto" fails)
    kwargs.setdefault("dtype", trainer.model.dtype)
    kwargs.setdefault("attn_implementation", trainer.model.config._attn_implementation)
    return kwargs


def policy_model_id(trainer) -> str:
    from trl.trainer.utils import get_config_model_id

    return get_config_model_id(trainer.model.config)


def build_reference(trainer) -> torch.nn.Module | None:
    """The frozen reference policy: TRL's own when it built one (beta != 0), else a fresh copy of the initial policy;
    None when the policy trains an adapter: the reference is then its base with the adapter disabled, as in TRL
    (`TokenLevelTrainer.per_token_logps`).

    Its LM head is patched like the policy's (same temperature), so its log-probs compare with the policy's.
    """
    from accelerate.utils import is_peft_model

    if trainer.ref_model is not None:
        return trainer.ref_model
    if is_peft_model(trainer.model):
        return None
    from trl.models import prepare_deepspeed
    from trl.trainer.utils import add_fused_lm_head, create_model_from_path, disable_dropout_in_model

    reference = create_model_from_path(policy_model_id(trainer), **model_init_kwargs(trainer))
    disable_dropout_in_model(reference)
    add_fused_lm_head(reference, temperature=trainer.temperature, cast_lm_head_to_fp32=trainer.args.cast_lm_head_to_fp32)
    if trainer.is_deepspeed_enabled:
        return prepare_deepspeed(reference, trainer.accelerator)
    if trainer.is_fsdp_enabled:
        raise NotImplementedError("r1lab's PPO and PRIME support DeepSpeed and DDP, not FSDP")
    return trainer.accelerator.prepare_model(reference, evaluation_mode=True)


def load_companion(trainer, **from_pretrained) -> torch.nn.Module:
    """A critic's or PRM's starting point, loaded from the policy's checkpoint like the policy: quantized as the
    policy when it gets its own adapter on a 4-bit base (adapter=qlora, adapter.companions=adapter)."""
    from trl.trainer.utils import create_model_from_path

    kwargs = model_init_kwargs(trainer)
    if trainer.companion_lora is not None and trainer.quantization_config is not None:
        kwargs["quantization_config"] = trainer.quantization_config
    return create_model_from_path(policy_model_id(trainer), **from_pretrained, **kwargs)


def with_companion_adapter(trainer, model: torch.nn.Module, task_type: str) -> torch.nn.Module:
    """`model` with its own LoRA adapter when the run trains companions with adapters, else `model` itself.

    `task_type` TOKEN_CLS (the critic) also trains peft's `modules_to_save` head (the value head `score`) in full.
    """
    if trainer.companion_lora is None:
        return model
    from peft import get_peft_model

    config = copy.deepcopy(trainer.companion_lora)
    config.task_type = task_type
    if task_type == "TOKEN_CLS":
        # The value head is trained in full (peft's modules_to_save for this task), so no adapter on it too
        # ("all-linear" would also pick it).
        config.exclude_modules = ["score"]
    return get_peft_model(model, config)


class TrainedCompanion:
    """A second trained model (critic or PRM) with its own AdamW, stepped every `accumulation_steps` backwards.

    Single process and DDP: the model goes through `accelerator.prepare_model` (DDP when distributed) and a
    plain torch optimizer, so HF's gradient-accumulation state never skips its steps. DeepSpeed: its own engine
    from a copy of the run's DeepSpeed config, with this model's batch geometry.
    """

    def __init__(self, trainer, model: torch.nn.Module, learning_rate: float, max_grad_norm: float,
                 accumulation_steps: int):
        args = trainer.args
        self.accelerator = trainer.accelerator
        self.max_grad_norm = max_grad_norm
        self.accumulation_steps = accumulation_steps
        self._backwards = 0
        # Optimizer steps taken so far; the trainers log how many each rollout batch took.
        self.steps = 0
        if args.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=args.gradient_checkpointing_kwargs)
        model.config.use_cache = False
        # Only what trains: under an adapter the frozen base has no optimizer state.
        trained = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trained, lr=learning_rate, weight_decay=args.weight_decay)
        self.engine = None
        if trainer.is_deepspeed_enabled:
            import deepspeed

            config = copy.deepcopy(self.accelerator.state.deepspeed_plugin.deepspeed_config)
            config.pop("optimizer", None)
            config.pop("scheduler", None)
            config["gradient_accumulation_steps"] = accumulation_steps
            config["train_micro_batch_size_per_gpu"] = args.per_device_train_batch_size
            config["train_batch_size"] = args.per_device_train_batch_size * accumulation_steps * args.world_size
            config["gradient_clipping"] = max_grad_norm
            config["bf16"] = {"enabled": bool(args.bf16)}
            config["fp16"] = {"enabled": bool(args.fp16)}
            self.engine, self.optimizer, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
            self.module = self.engine
        else:
            if trainer.is_fsdp_enabled:
                raise NotImplementedError("r1lab's PPO and PRIME support DeepSpeed and DDP, not FSDP")
            self.module = self.accelerator.prepare_model(model)
            self.optimizer = optimizer

    @property
    def unwrapped(self) -> torch.nn.Module:
        return self.engine.module if self.engine is not None else self.accelerator.unwrap_model(self.module)

    def backward(self, loss: torch.Tensor) -> float | None:
        """Backward one micro-batch's mean loss; at every `accumulation_steps`-th call, clip and step.

        Returns the pre-clip gradient norm when it stepped, else None.
        """
        self._backwards += 1
        boundary = self._backwards % self.accumulation_steps == 0
        if self.engine is not None:
            self.engine.backward(loss)  # DeepSpeed divides by its gradient_accumulation_steps itself
            self.engine.step()
            if boundary:
                self.steps += 1
                norm = self.engine.get_global_grad_norm()
                return None if norm is None else float(norm)
            return None
        (loss / self.accumulation_steps).backward()
        if not boundary:
            return None
        norm = torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps += 1
        return float(norm)

    def save(self, directory: str | os.PathLike, with_optimizer: bool, is_main_process: bool) -> None:
        """Weights as a Hugging Face model (loadable with `from_pretrained`), plus optimizer state when asked.

        Call on every rank (DeepSpeed saves and gathers collectively).
        """
        directory = Path(directory)
        if self.engine is not None:
            if with_optimizer:
                self.engine.save_checkpoint(str(directory / "deepspeed"))
            state = self.engine._zero3_consolidated_16bit_state_dict() if self.engine.zero_optimization_stage() == 3 \
                else None
            if is_main_process:
                self.unwrapped.save_pretrained(directory, state_dict=state)
            return
        if is_main_process:
            self.unwrapped.save_pretrained(directory)
            if with_optimizer:
                torch.save(self.optimizer.state_dict(), directory / "optimizer.pt")

    def load(self, directory: str | os.PathLike) -> None:
        """Restore what `save(..., with_optimizer=True)` wrote (every rank)."""
        directory = Path(directory)
        if self.engine is not None:
            self.engine.load_checkpoint(str(directory / "deepspeed"))
            return
        from safetensors.torch import load_file

        from accelerate.utils import is_peft_model

        state = {}
        for shard in sorted(directory.glob("*.safetensors")):
            state.update(load_file(str(shard), device=str(self.accelerator.device)))
        if is_peft_model(self.unwrapped):  # saved as an adapter (adapter_model.safetensors)
            from peft import set_peft_model_state_dict

            unexpected = set_peft_model_state_dict(self.unwrapped, state).unexpected_keys
        else:
            unexpected = self.unwrapped.load_state_dict(state, strict=False).unexpected_keys
        if unexpected or not state:
            raise RuntimeError(f"{directory} does not hold this model's weights (unexpected: {unexpected[:5]})")
        self.optimizer.load_state_dict(torch.load(directory / "optimizer.pt", map_location=self.accelerator.device))



# --- the trainer base ----------------------------------------------------------------------------------


class TokenLevelTrainer(R1Trainer):
    """R1Trainer for algorithms that replace GRPO's sequence advantages with (B, T) token-level ones.

    Subclasses compute advantages in `_generate_and_score_completions` after `super()` has generated and scored
    the rollout batch (before TRL shuffles and splits it). Those with a trained extra model (PPO's critic,
    PRIME's PRM) set `self.companion` and `companion_name` (its folder in checkpoints and in the final export):
    it is saved with its optimizer state in `checkpoint-N/<companion_name>/`, restored on resume, and
    `save_model` exports its weights next to the policy's.
    """

    companion_name: str = ""
    companion: TrainedCompanion | None = None

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        # Keep the gathered per-function rewards: TRL returns only GRPO's group advantages.
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._rewards_per_func = rewards_per_func
        return rewards_per_func

    def outcome_scores(self) -> torch.Tensor:
        """(N,) weighted outcome reward of every completion of the generation batch, all ranks (as TRL's `reward`).

        A completion every reward function returned None for scores 0.
        """
        weights = self.reward_weights.to(self._rewards_per_func.device)
        return (self._rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)

    def reward_column(self, name: str) -> torch.Tensor:
        """(N,) unweighted output of reward function `name` for the whole generation batch (None counts 0)."""
        if name not in self.reward_func_names:
            raise ValueError(f"reward {name!r} is not among this run's rewards {self.reward_func_names}: "
                             "add it to task.rewards (weight 0 logs it without shaping the reward)")
        return self._rewards_per_func[:, self.reward_func_names.index(name)].nan_to_num(0.0)

    def local_rows(self, values: torch.Tensor, local_size: int) -> torch.Tensor:
        """This rank's slice of a tensor gathered over ranks (TRL gathers rank-major)."""
        return self.ranks.local(values, local_size)

    @property
    def ranks(self) -> Ranks:
        """The ranks sharing this rollout batch (accelerate's processes are torch.distributed's default group)."""
        return Ranks.of_default_group()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.ranks.sum(tensor)

    def per_token_logps(self, model, batch: dict) -> torch.Tensor:
        """Log-probs of the completion tokens of `batch` under `model` (no grad), in per-device chunks.

        `model=None` is the reference under an adapter (`build_reference`): the policy with its adapter disabled.
        """
        input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
        attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
        adapter_off = contextlib.nullcontext()
        if model is None:
            from trl.trainer.utils import use_adapter

            model, adapter_off = self.model, use_adapter(self.accelerator.unwrap_model(self.model), adapter_name=None)
        with torch.no_grad(), adapter_off:
            logps, _, _ = self._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, batch["completion_ids"].size(1),
                batch_size=self.args.per_device_train_batch_size,
            )
        return logps

    def record_metric(self, name: str, value: float) -> None:
        """Log `value` (already the same on every rank, e.g. computed from gathered tensors) for this step."""
        self._metrics["train"][name].append(float(value))

    def record_rank_mean(self, name: str, value: float) -> None:
        """Log the mean over ranks of a rank-local `value` (a critic or PRM loss on this rank's rows)."""
        local = torch.tensor(float(value), device=self.accelerator.device)
        self.record_metric(name, self.accelerator.reduce(local, reduction="mean").item())

    def _save_optimizer_and_scheduler(self, output_dir):
        super()._save_optimizer_and_scheduler(output_dir)
        if self.companion is None:
            return
        self.companion.save(Path(output_dir) / self.companion_name, with_optimizer=True,
                            is_main_process=self.args.should_save)

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is not None and self.companion is not None:
            self.companion.load(Path(checkpoint) / self.companion_name)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        super().save_model(output_dir, _internal_call)
        if not _internal_call and self.companion is not None:  # checkpoints save it with its optimizer (above)
            directory = Path(output_dir or self.args.output_dir) / self.companion_name
            self.companion.save(directory, with_optimizer=False, is_main_process=self.args.should_save)
