"""GRPO: Group Relative Policy Optimization (Shao et al. 2024, DeepSeekMath, eq. 3).

Advantages are each completion's reward minus its group's mean (divided by the group's std when
`scale_rewards=group`), the policy update is PPO-clipped, and `beta` weighs a k3 KL estimate to
the reference model. TRL's `GRPOTrainer` implements all of it; r1lab adds only the greedy
held-out evaluation (`R1Trainer`). Loss variants are plain config keys: `loss_type`
grpo (per-sequence, the paper), dr_grpo (Liu et al. 2025) or dapo (Yu et al. 2025, per-token),
`epsilon_high` (DAPO's clip-higher), `scale_rewards` group | batch | none.
Defaults: Mini-R1's lr 5e-7 recipe lives in conf/experiment; conf/algo/grpo.yaml holds the paper's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trl import GRPOConfig

from r1lab.algos.base import R1Trainer, clipped_update_fields

Config = GRPOConfig
Trainer = R1Trainer


def config_fields(algo: Mapping) -> dict[str, Any]:
    return {**clipped_update_fields(algo), "beta": float(algo["beta"]), "scale_rewards": algo["scale_rewards"]}
