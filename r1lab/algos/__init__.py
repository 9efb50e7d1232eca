"""Algorithm registry: `algo.name` → the module that trains it.

Each module exposes `Trainer` (a TRL `GRPOTrainer` subclass with r1lab's held-out eval),
`Config` (the `GRPOConfig` class it trains with) and `config_fields(algo_cfg) -> dict`, the
algorithm's own fields of that config. Everything else (data, rewards, rollout engine,
DeepSpeed, logging) is shared, so the algorithms differ only where the algorithms differ.
"""

from __future__ import annotations

import importlib
from types import ModuleType

ALGORITHMS = {
    "grpo": "r1lab.algos.grpo",
    "ppo": "r1lab.algos.ppo",
    "prime": "r1lab.algos.prime",
    "rloo": "r1lab.algos.rloo",
    "reinforce_pp": "r1lab.algos.reinforce_pp",
}
# Every policy loss TRL 1.16's GRPOTrainer implements (`_compute_loss`); `algo.loss_type` takes any of them.
LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo", "cispo", "sapo", "vespo")


def algorithm_module(name: str) -> ModuleType:
    """The module implementing algorithm `name` (see ALGORITHMS)."""
    try:
        return importlib.import_module(ALGORITHMS[name])
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r}; known: {', '.join(sorted(ALGORITHMS))}") from None
