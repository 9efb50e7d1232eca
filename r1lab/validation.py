"""Checks a composed config before any compute: every problem at once, in words a user can act on.

Hydra already rejects unknown keys and unknown group options (the config is in struct mode);
`r1lab.config_schema` checks every value's type and range; this adds what passes both but cannot
run (unknown rewards, batches that split a GRPO group)
and, separately, what this Python environment lacks for it (vLLM, DeepSpeed). It imports neither torch nor TRL, so a whole sweep
can be validated in a fraction of a second before a job is queued.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from omegaconf import DictConfig

from r1lab.config_schema import schema_problems


class ConfigError(ValueError):
    """A composed config that cannot run; the message lists every problem found."""


def world_size(cfg: DictConfig) -> int:
    """Training ranks a job of this config runs (model.resources.ranks: one per GPU by default)."""
    return max(1, int(cfg.model.resources.ranks))


def generation_batch_size(cfg: DictConfig) -> tuple[int, str]:
    """Completions per rollout, as TRL computes it, and how it was computed (for messages).

    TRL: per_device_batch_size x ranks x steps_per_generation, where steps_per_generation defaults to
    gradient_accumulation_steps (PPO and PRIME: times algo.mini_batches), or train.generation_batch_size.
    """
    train = cfg.train
    if train.get("generation_batch_size") is not None:
        return int(train.generation_batch_size), "train.generation_batch_size"
    per_device = f"train.per_device_batch_size={train.per_device_batch_size} x {world_size(cfg)} ranks"
    if train.get("steps_per_generation") is not None:
        steps = int(train.steps_per_generation)
        how = f"{per_device} x train.steps_per_generation={steps}"
    else:
        steps = int(train.gradient_accumulation_steps) * int(cfg.algo.get("mini_batches", 1))
        how = f"{per_device} x train.gradient_accumulation_steps={train.gradient_accumulation_steps}"
        if cfg.algo.get("mini_batches") is not None:
            how += f" x algo.mini_batches={cfg.algo.mini_batches}"
    return int(train.per_device_batch_size) * world_size(cfg) * steps, how


def rollout_size_problems(cfg: DictConfig) -> list[str]:
    """train.steps_per_generation / train.generation_batch_size: at most one, and a whole number of steps."""
    train = cfg.train
    steps, size = train.get("steps_per_generation"), train.get("generation_batch_size")
    found = []
    if steps is not None and size is not None:
        found.append("train.steps_per_generation and train.generation_batch_size set the same thing: set one of them")
    if (steps is not None or size is not None) and cfg.algo.get("mini_batches") is not None:
        found.append(f"algo={cfg.algo.name} sets the rollout size with algo.mini_batches: leave "
                     "train.steps_per_generation and train.generation_batch_size null")
    global_batch = int(train.per_device_batch_size) * world_size(cfg)
    if size is not None and int(size) % global_batch:
        found.append(f"train.generation_batch_size={size} must be a multiple of the global batch "
                     f"(train.per_device_batch_size={train.per_device_batch_size} x {world_size(cfg)} ranks "
                     f"= {global_batch})")
    return found


def problems(cfg: DictConfig) -> list[str]:
    """Everything wrong with `cfg`; empty when it can run."""
    from r1lab.algos import ALGORITHMS
    from r1lab.tasks import resolve_reward, task_module

    found = schema_problems(cfg)
    if found:  # the checks below assume well-typed values
        return found
    if cfg.model.name_or_path is None and cfg.model.get("tiny") is None:
        found.append("model: set name_or_path (a Hub id or local path) or tiny (a local architecture)")
    if cfg.algo.name not in ALGORITHMS:
        found.append(f"algo.name {cfg.algo.name!r} is not one of {sorted(ALGORITHMS)}")
    from r1lab.algos.config_checks import algorithm_problems

    found.extend(algorithm_problems(cfg))

    try:  # the task's own checks (countdown: target rule, task.test_path's rows)
        found.extend(getattr(task_module(cfg.task.name), "config_problems", lambda _: [])(cfg.task))
    except ValueError as error:
        found.append(f"task: {error}")
    if cfg.task.get("prompt", "full") != "full" and cfg.task.name != "countdown":
        found.append(f"task.prompt={cfg.task.prompt}: only countdown has a wording other than the seeds' (full)")
    rewards = cfg.task.get("rewards") or {}
    if not rewards:
        found.append("task.rewards is empty: name at least one reward function with its weight")
    for name in rewards:
        try:
            resolve_reward(cfg.task.name, name)
        except ValueError as error:
            found.append(f"task.rewards.{name}: {error}")

    generations = int(cfg.algo.get("num_generations", 1))
    size_problems = rollout_size_problems(cfg)
    found.extend(size_problems)
    generation_batch, how = generation_batch_size(cfg)
    if not size_problems and (generations < 1 or generation_batch % generations):
        found.append(
            f"the generation batch ({how} = {generation_batch}) must be a multiple of "
            f"algo.num_generations={generations}, so that every prompt's group of completions lands in one batch"
        )
    from r1lab.adapters import adapter_problems

    return found + adapter_problems(cfg)


def environment_problems(cfg: DictConfig) -> list[str]:
    """Optional packages the config needs but this Python environment lacks."""
    found = []
    if cfg.rollout.engine == "vllm" and importlib.util.find_spec("vllm") is None:
        found.append(f"rollout=vllm_{cfg.rollout.mode} needs vLLM: pip install -e '.[vllm]' on a GPU machine")
    if cfg.dist.deepspeed is not None and importlib.util.find_spec("deepspeed") is None:
        found.append("dist with DeepSpeed needs it installed: pip install -e '.[deepspeed]'")
    if cfg.train.get("liger_kernel") and importlib.util.find_spec("liger_kernel") is None:
        found.append("train.liger_kernel=true needs Liger's kernels: pip install liger-kernel (Triton, CUDA GPUs)")
    from r1lab.adapters import adapter_environment_problems

    return found + adapter_environment_problems(cfg)


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError listing every problem with `cfg` and with this environment for it."""
    found = problems(cfg) + environment_problems(cfg)
    if found:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(found))


def exit_with_message(error: Exception) -> None:
    """A user's error (a config, a run dir): print it as one message, no traceback, and exit 2.
    HYDRA_FULL_ERROR=1 re-raises it, traceback and all."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise error
    print(f"r1lab: {error}", file=sys.stderr, flush=True)
    raise SystemExit(2) from None
