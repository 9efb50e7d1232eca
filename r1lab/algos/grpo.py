"""GRPO: Group Relative Policy Optimization (Shao et al. 2024, DeepSeekMath, eq. 3).

Advantages are each completion's reward minus its group's mean (divided by the group's std when
`scale_rewards=group`), the policy update is PPO-clipped, and `beta` weighs a k3 KL estimate to
the reference model. TRL's `GRPOTrainer` implements all of it; r1lab adds only the greedy
held-out evaluation (`R1Trainer`). The GRPO family is config (conf/algo/grpo.yaml, one comment per key):
`loss_type` (any of TRL's: grpo, the paper's per-sequence mean; dr_grpo, Liu et al. 2025; dapo, Yu et al.
2025; bnpo, cispo, sapo, luspo, vespo), `scale_rewards`, `epsilon_high` (DAPO's clip-higher),
`importance_sampling_level=sequence` (GSPO, Zheng et al. 2025), `mask_truncated_completions` (DAPO's overlong
filter), `delta` (dual clip), `top_entropy_quantile` (Wang et al. 2025) and the vLLM importance-sampling
correction; any other `GRPOConfig` field through `algo.trl.<field>`. sweeps/grpo_variants.yaml compares
grpo, dr_grpo, dapo and gspo. Defaults: Mini-R1's lr 5e-7 recipe lives in conf/experiment; conf/algo/grpo.yaml
holds the paper's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trl import GRPOConfig

from r1lab.algos.base import R1Trainer, clipped_update_fields

Config = GRPOConfig
Trainer = R1Trainer


def config_fields(algo: Mapping) -> dict[str, Any]:
    return {
        **clipped_update_fields(algo),
        "beta": float(algo["beta"]),
        "scale_rewards": algo["scale_rewards"],
        "importance_sampling_level": algo["importance_sampling_level"],
        "mask_truncated_completions": bool(algo["mask_truncated_completions"]),
        "delta": None if algo["delta"] is None else float(algo["delta"]),
        "top_entropy_quantile": float(algo["top_entropy_quantile"]),
        "vllm_importance_sampling_correction": bool(algo["vllm_importance_sampling_correction"]),
    }
