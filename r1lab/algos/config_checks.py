"""Checks of the `algo` keys that compose but cannot run as meant, for r1lab.validation (before any model loads).

Imports neither torch nor TRL, except to check `algo.trl.<field>` names against the algorithm's config class when
`algo.trl` names something (r1lab.trl_args.trl_passthrough_problems).
"""

from __future__ import annotations

from omegaconf import DictConfig


def algorithm_problems(cfg: DictConfig) -> list[str]:
    """The algorithm's keys that compose but cannot run as meant (see conf/algo/*.yaml)."""
    from r1lab.algos import ALGORITHMS, LOSS_TYPES
    from r1lab.tasks import task_module

    algo, found = cfg.algo, []
    if algo.get("loss_type") is not None and algo.loss_type not in LOSS_TYPES:
        found.append(f"algo.loss_type {algo.loss_type!r} is not one of TRL's losses {list(LOSS_TYPES)}")
    if algo.get("loss_type") == "dr_grpo" and algo.get("scale_rewards", "none") == "group":
        found.append("algo.loss_type=dr_grpo with algo.scale_rewards=group: Dr. GRPO (Liu et al. 2025) removes the "
                     "division by the group's std; set algo.scale_rewards=none (or batch)")
    if algo.name == "prime":
        for key, choices in (("prime_norm", ("batch_norm", "none")), ("prm_update", ("after", "before"))):
            if algo[key] not in choices:
                found.append(f"algo.{key} must be one of {list(choices)}, not {algo[key]!r}")
        label = algo.get("prm_label_reward")
        try:
            label = label or task_module(cfg.task.name).CORRECTNESS
        except ValueError:
            label = None  # the unknown task is reported with its rewards
        if label is not None and label not in (cfg.task.get("rewards") or {}):
            found.append(f"algo=prime labels its PRM with reward {label!r}, which is not in task.rewards: add "
                         f"+task.rewards.{label}=0.0 (logged, not shaping) or set algo.prm_label_reward")
    if algo.name in ALGORITHMS:
        from r1lab.trl_args import trl_passthrough_problems

        found.extend(trl_passthrough_problems(cfg))
    return found
