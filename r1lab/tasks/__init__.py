"""Tasks: data, prompts and rule-based verifiers, one module per task, plus name -> module/reward lookup.

A task module exposes ``load_splits(task_cfg, seed) -> (train, test)``, ``plain_prompt(row)``,
``chat_messages(row)`` (a task with wordings other than the seeds' also takes ``prompt=``, as countdown does
for ``task.prompt=short``), ``REWARDS`` (name -> TRL reward function) and ``CORRECTNESS`` (the reward
whose 1.0 means solved). ``task_module`` also takes a dotted module path, and ``resolve_reward`` a
dotted function path, so users can plug in their own without editing this package (the open-r1/TRL
registry-with-fallback pattern). Importing this package loads no torch/transformers/trl/datasets.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

TASKS = {
    "countdown": "r1lab.tasks.countdown",
    "multiplication": "r1lab.tasks.multiplication",
    "sanity": "r1lab.tasks.sanity",
}
# What the trainer calls on every task module.
INTERFACE = ("load_splits", "plain_prompt", "chat_messages", "REWARDS", "CORRECTNESS")


def task_module(name: str) -> ModuleType:
    """The module of a registered task (``countdown``), or of a user task given as a dotted path (``my.tasks.foo``)."""
    if name not in TASKS and "." not in name:
        raise ValueError(f"unknown task {name!r}: known tasks are {sorted(TASKS)}, or give a dotted module path")
    module = importlib.import_module(TASKS.get(name, name))
    missing = [attr for attr in INTERFACE if not hasattr(module, attr)]
    if missing:
        raise ValueError(f"task module {module.__name__!r} lacks {missing} (a task must define {list(INTERFACE)})")
    return module


def resolve_reward(task_name: str, reward_name: str) -> Callable[..., list[float]]:
    """A reward function: a bare name from the task's ``REWARDS``, or a dotted path ``pkg.module.function``."""
    rewards = task_module(task_name).REWARDS
    known = sorted(rewards)
    if "." not in reward_name:
        if reward_name not in rewards:
            raise ValueError(
                f"unknown reward {reward_name!r} for task {task_name!r}: known rewards are {known}, "
                "or give a dotted path pkg.module.function"
            )
        return rewards[reward_name]
    module_name, _, function_name = reward_name.rpartition(".")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise ValueError(
            f"cannot import reward {reward_name!r} for task {task_name!r} ({error}); the task's own rewards are {known}"
        ) from error
    if not callable(function):
        raise ValueError(f"reward {reward_name!r} for task {task_name!r} is not callable")
    return function
