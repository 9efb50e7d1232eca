"""The GRPO family as config: every TRL loss, the variants' keys, `algo.trl.<field>` checked before any model."""

from __future__ import annotations

import dataclasses

import pytest
from trl import GRPOConfig

from r1lab.algos import LOSS_TYPES, algorithm_module
from r1lab.trl_args import trainer_kwargs
from r1lab.validation import ConfigError, validate
from tests.conftest import compose, launch


def grpo_config(*overrides: str):
    cfg = compose(*overrides)
    validate(cfg)
    algo = algorithm_module(cfg.algo.name)
    kwargs = trainer_kwargs(cfg, output_dir="/tmp/unused", run_name="x", report_to=[], reward_weights=[1.0, 1.0],
                            algo_fields=algo.config_fields(cfg.algo))
    return algo.Config(**kwargs, use_cpu=True)


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_every_trl_loss_is_an_algo_loss_type(loss_type):
    scale = "none" if loss_type == "dr_grpo" else "group"
    level = "sequence" if loss_type == "luspo" else "token"
    args = grpo_config(f"algo.loss_type={loss_type}", f"algo.scale_rewards={scale}",
                       f"algo.importance_sampling_level={level}")
    assert args.loss_type == loss_type


def test_loss_types_are_those_grpo_trainer_implements():
    import inspect

    from trl import GRPOTrainer

    source = inspect.getsource(GRPOTrainer._compute_loss)
    assert all(f'"{loss}"' in source for loss in LOSS_TYPES)
    with pytest.raises(ConfigError, match="not one of TRL's losses"):
        validate(compose("algo.loss_type=ppo_clip"))


@pytest.mark.parametrize(("variant", "expected"), [
    ("dr_grpo", {"loss_type": "dr_grpo", "scale_rewards": "none"}),
    ("dapo", {"loss_type": "dapo", "epsilon_high": 0.28, "mask_truncated_completions": True, "beta": 0.0}),
    ("gspo", {"importance_sampling_level": "sequence", "loss_type": "grpo", "epsilon": 3e-4, "epsilon_high": 4e-4}),
])
def test_variants_reach_grpo_config(variant, expected):
    args = grpo_config(f"algo={variant}")
    assert {key: getattr(args, key) for key in expected} == expected


def test_plain_family_keys_reach_grpo_config():
    args = grpo_config("algo.delta=1.5", "algo.top_entropy_quantile=0.2", "algo.mask_truncated_completions=true",
                       "algo.vllm_importance_sampling_correction=false")
    assert (args.delta, args.top_entropy_quantile, args.mask_truncated_completions) == (1.5, 0.2, True)
    assert args.vllm_importance_sampling_correction is False


def test_dr_grpo_with_group_std_scaling_is_flagged():
    with pytest.raises(ConfigError, match="dr_grpo with algo.scale_rewards=group"):
        validate(compose("algo.loss_type=dr_grpo"))
    validate(compose("algo.loss_type=dr_grpo", "algo.scale_rewards=none"))


@pytest.mark.parametrize("algo", ["grpo", "ppo", "prime", "rloo", "reinforce_pp"])
def test_any_grpo_config_field_through_algo_trl(algo):
    args = grpo_config(f"algo={algo}", "++algo.trl.top_k=7", "++algo.trl.repetition_penalty=1.1")
    assert (args.top_k, args.repetition_penalty) == (7, 1.1)
    assert {"top_k", "repetition_penalty"} <= {f.name for f in dataclasses.fields(GRPOConfig)}


def test_mistyped_trl_field_fails_naming_it_before_any_model(tmp_path):
    cache = tmp_path / "cache"
    out = launch("algo.trl.nonexistent_field=1", "algo.trl.temprature=0.7", f"hydra.run.dir={tmp_path}/run",
                 f"cache_dir={cache}", "logger=none")
    assert out.returncode != 0
    assert "algo.trl.nonexistent_field: GRPOConfig" in out.stderr
    assert "did you mean temperature" in out.stderr
    assert not cache.exists()
