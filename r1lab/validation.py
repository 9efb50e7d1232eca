"""Checks a composed config before any compute: every problem at once, in words a user can act on.

Hydra already rejects unknown keys and unknown group options (the config is in struct mode);
this catches what composes but cannot run: unknown rewards, batches that split a GRPO group,
an engine or DeepSpeed that is not installed. It imports neither torch nor TRL, so a whole sweep
can be validated in a fraction of a second before a job is queued.
"""

from __future__ import annotations

import importlib.util

from omegaconf import DictConfig


class ConfigError(ValueError):
    """A composed config that cannot run; the message lists every problem found."""


def world_size(cfg: DictConfig) -> int:
    """Ranks a job of this config runs: one per GPU the model asks for, or one on CPU."""
    return max(1, int(cfg.model.resources.gpus))


def problems(cfg: DictConfig) -> list[str]:
    """Everything wrong with `cfg`; empty when it can run."""
    from r1lab.algos import ALGORITHMS
    from r1lab.tasks import resolve_reward

    found: list[str] = []
    if cfg.model.name_or_path is None and cfg.model.get("tiny") is None:
        found.append("model: set name_or_path (a Hub id or local path) or tiny (a local architecture)")
    if cfg.variant.prompt_style not in ("plain", "chat"):
        found.append(f"variant.prompt_style must be plain or chat, not {cfg.variant.prompt_style!r}")
    if cfg.algo.name not in ALGORITHMS:
        found.append(f"algo.name {cfg.algo.name!r} is not one of {sorted(ALGORITHMS)}")

    rewards = cfg.task.get("rewards") or {}
    if not rewards:
        found.append("task.rewards is empty: name at least one reward function with its weight")
    for name, weight in rewards.items():
        try:
            resolve_reward(cfg.task.name, name)
        except ValueError as error:
            found.append(f"task.rewards.{name}: {error}")
        if not isinstance(weight, (int, float)):
            found.append(f"task.rewards.{name}: weight must be a number, got {weight!r}")

    train = cfg.train
    for key in ("max_steps", "per_device_batch_size", "gradient_accumulation_steps", "max_completion_length",
                "save_steps", "logging_steps"):
        if int(train[key]) < 1:
            found.append(f"train.{key} must be at least 1, got {train[key]}")
    generations = int(cfg.algo.get("num_generations", 1))
    generation_batch = int(train.per_device_batch_size) * world_size(cfg) * int(train.gradient_accumulation_steps)
    if generations < 1 or generation_batch % generations:
        found.append(
            f"the generation batch (train.per_device_batch_size={train.per_device_batch_size} x "
            f"{world_size(cfg)} ranks x train.gradient_accumulation_steps={train.gradient_accumulation_steps} "
            f"= {generation_batch}) must be a multiple of algo.num_generations={generations}, "
            "so that every prompt's group of completions lands in one batch"
        )
    if cfg.eval.num_prompts is not None and int(cfg.eval.num_prompts) < 1:
        found.append("eval.num_prompts must be at least 1 (or null for the whole test split)")
    if int(cfg.eval.every_steps) < 0:
        found.append("eval.every_steps must be 0 (only at the end) or positive")

    if cfg.rollout.engine == "vllm" and importlib.util.find_spec("vllm") is None:
        found.append(f"rollout=vllm_{cfg.rollout.mode} needs vLLM: pip install -e '.[vllm]' on a GPU machine")
    if cfg.dist.deepspeed is not None and importlib.util.find_spec("deepspeed") is None:
        found.append("dist with DeepSpeed needs it installed: pip install -e '.[deepspeed]'")
    return found


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError listing every problem with `cfg`."""
    found = problems(cfg)
    if found:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(found))
