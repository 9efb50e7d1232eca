"""Each speed feature is one config key that reaches the right TRL / accelerate / vLLM / DeepSpeed setting.

Every test composes the real config with the overrides a user would type, translates it with
`r1lab.trl_args` and checks the GRPOConfig keyword arguments, and where GRPOConfig can be built on a
CPU, the built object. Also here: the sweep preflight's composition shortcut equals Hydra's own.
"""

from __future__ import annotations

import dataclasses
import warnings

import pytest
from omegaconf import OmegaConf

from r1lab.algos import algorithm_module
from r1lab.trl_args import trainer_kwargs, vllm_serve_command
from r1lab.validation import environment_problems, problems
from tests.conftest import CONF, compose


def kwargs_for(*overrides: str) -> dict:
    cfg = compose(*overrides)
    algo = algorithm_module(cfg.algo.name)
    return trainer_kwargs(cfg, output_dir="/tmp/r1lab-speed-test", run_name="speed", report_to=[],
                          reward_weights=[1.0] * len(cfg.task.rewards), algo_fields=algo.config_fields(cfg.algo))


def built(kwargs: dict):
    """The GRPOConfig TRL builds from `kwargs` on this CPU machine."""
    from trl import GRPOConfig

    return GRPOConfig(**kwargs, use_cpu=True)


def test_defaults_are_the_plain_cpu_run():
    kwargs = kwargs_for()
    assert kwargs["bf16"] is False and kwargs["activation_checkpointing"] is False
    assert kwargs["use_vllm"] is False and kwargs["use_liger_kernel"] is False
    assert kwargs["steps_per_generation"] is None and kwargs["generation_batch_size"] is None
    assert "deepspeed" not in kwargs
    args = built(kwargs)
    # TRL's default: one rollout per optimizer step.
    assert args.steps_per_generation == args.gradient_accumulation_steps == 1
    assert args.generation_batch_size == args.per_device_train_batch_size == 16


def test_bf16():
    kwargs = kwargs_for("train.bf16=true")
    assert kwargs["bf16"] is True
    assert built(kwargs).bf16 is True
    # The GPU models turn it on; the tiny CPU model does not.
    assert kwargs_for("model=qwen2.5-1.5b")["bf16"] is True


def test_gradient_checkpointing_is_non_reentrant():
    kwargs = kwargs_for("train.gradient_checkpointing=true")
    assert kwargs["activation_checkpointing"] is True
    assert kwargs["activation_checkpointing_kwargs"] == {"use_reentrant": False}
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # transformers 5's names: no deprecation warning
        args = built(kwargs)
    # TRL reads the old names, which transformers keeps in step with the new ones.
    assert args.gradient_checkpointing and args.gradient_checkpointing_kwargs == {"use_reentrant": False}
    assert "activation_checkpointing_kwargs" not in kwargs_for()


def test_completion_table_prints_only_when_asked():
    assert kwargs_for()["num_completions_to_print"] == 0
    assert kwargs_for("logger=none")["log_completions"] is False
    asked = kwargs_for("logger=none", "logger.print_completions=2")
    assert asked["log_completions"] is True and asked["num_completions_to_print"] == 2


def test_vllm_colocate_with_sleep_mode():
    kwargs = kwargs_for("model=qwen2.5-1.5b", "rollout=vllm_colocate")
    assert kwargs["use_vllm"] is True and kwargs["vllm_mode"] == "colocate"
    assert kwargs["vllm_enable_sleep_mode"] is True and kwargs["vllm_gpu_memory_utilization"] == 0.3
    args = built(kwargs)  # building the config needs no vLLM; the trainer does
    assert (args.use_vllm, args.vllm_mode, args.vllm_enable_sleep_mode) == (True, "colocate", True)
    assert kwargs_for("rollout=vllm_colocate", "rollout.enable_sleep_mode=false")["vllm_enable_sleep_mode"] is False


def test_vllm_server_mode_and_its_serve_command_with_prefix_caching():
    kwargs = kwargs_for("model=qwen2.5-1.5b", "rollout=vllm_server", "rollout.port=8123")
    assert (kwargs["use_vllm"], kwargs["vllm_mode"]) == (True, "server")
    assert (kwargs["vllm_server_host"], kwargs["vllm_server_port"], kwargs["vllm_server_timeout"]) == (
        "127.0.0.1", 8123, 240.0)
    assert "vllm_enable_sleep_mode" not in kwargs
    args = built(kwargs)
    assert (args.vllm_mode, args.vllm_server_port) == ("server", 8123)

    from transformers import HfArgumentParser
    from trl.scripts.vllm_serve import ScriptArguments

    def served(*overrides):
        cfg = compose("model=qwen2.5-1.5b", "rollout=vllm_server", *overrides)
        command = vllm_serve_command(cfg, cfg.model.name_or_path)
        assert command[:2] == ["trl", "vllm-serve"]
        (script_args,) = HfArgumentParser(ScriptArguments).parse_args_into_dataclasses(command[2:])
        return script_args

    server = served()
    assert server.model == "Qwen/Qwen2.5-1.5B" and server.enable_prefix_caching is True
    assert (server.port, server.tensor_parallel_size, server.dtype) == (8000, 1, "bfloat16")
    assert served("rollout.enable_prefix_caching=false", "rollout.tensor_parallel_size=2").enable_prefix_caching is False
    assert served("rollout.tensor_parallel_size=2").tensor_parallel_size == 2


def test_liger_kernel():
    kwargs = kwargs_for("train.liger_kernel=true")
    assert kwargs["use_liger_kernel"] is True
    assert built(kwargs).use_liger_kernel is True
    missing = [p for p in environment_problems(compose("train.liger_kernel=true")) if "liger-kernel" in p]
    try:
        import liger_kernel  # noqa: F401
    except ImportError:
        assert missing, "train.liger_kernel=true without the package must be caught before any model loads"
    else:
        assert not missing


def test_trl_has_no_padding_free_or_liger_loss_for_grpo():
    # README "Performance" says so: TRL 1.16's GRPOConfig has neither; padding_free is SFT/DPO only, and the
    # memory saving of Liger's fused GRPO loss is built in (chunked log-probs). Fails when TRL adds them.
    from trl import GRPOConfig

    fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    assert not {"padding_free", "use_liger_loss"} & fields
    assert "train.padding_free" not in OmegaConf.to_yaml(compose())


@pytest.mark.parametrize("overrides,stage,offload", [
    (("dist=zero2",), 2, False),
    (("dist=zero2", "dist.deepspeed.zero_optimization.offload_optimizer.device=cpu"), 2, True),
    (("dist=zero3",), 3, False),
    (("dist=zero3", "dist.deepspeed.zero_optimization.offload_optimizer.device=cpu",
      "dist.deepspeed.zero_optimization.offload_param.device=cpu"), 3, True),
])
def test_deepspeed_zero_stage_and_offload(overrides, stage, offload):
    pytest.importorskip("deepspeed")
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    kwargs = kwargs_for(*overrides)
    zero = kwargs["deepspeed"]["zero_optimization"]
    assert zero["stage"] == stage
    assert (zero["offload_optimizer"]["device"] == "cpu") == offload
    if stage == 3:
        assert (zero["offload_param"]["device"] == "cpu") == offload
    try:
        args = built(kwargs)
        ds = args.hf_deepspeed_config
        assert ds.is_zero3() == (stage == 3) and ds.is_offload() == offload
        # "auto" is filled from the trainer's own values, so batch sizes are set in one place.
        assert ds.config["train_micro_batch_size_per_gpu"] == kwargs["per_device_train_batch_size"]
        assert ds.config["gradient_accumulation_steps"] == kwargs["gradient_accumulation_steps"]
    finally:
        unset_hf_deepspeed_config()  # a ZeRO-3 config is process-global in transformers


def test_steps_per_generation_and_generation_batch_size():
    kwargs = kwargs_for("train.steps_per_generation=4")
    assert kwargs["steps_per_generation"] == 4 and kwargs["generation_batch_size"] is None
    args = built(kwargs)
    assert (args.steps_per_generation, args.generation_batch_size) == (4, 64)

    kwargs = kwargs_for("train.generation_batch_size=64")
    args = built(kwargs)
    assert (args.steps_per_generation, args.generation_batch_size) == (4, 64)


@pytest.mark.parametrize("overrides,message", [
    (("train.steps_per_generation=2", "train.generation_batch_size=32"), "set one of them"),
    (("train.generation_batch_size=40",), "multiple of the global batch"),
    (("train.steps_per_generation=0",), "train.steps_per_generation=0: expected an integer >= 1"),
    (("train.per_device_batch_size=4", "train.steps_per_generation=3"), "multiple of algo.num_generations=8"),
    (("algo=ppo", "train.steps_per_generation=2"), "algo.mini_batches"),
])
def test_bad_rollout_sizes_fail_validation(overrides, message):
    found = problems(compose(*overrides))
    assert any(message in p for p in found), found


def test_a_rollout_size_that_completes_groups_passes():
    # 4 per device x 4 steps = 16 completions: two groups of 8, though one step's 4 cannot hold a group.
    assert problems(compose("train.per_device_batch_size=4", "train.steps_per_generation=4")) == []


JOB_OVERRIDES = [
    ["model=qwen2.5-3b", "variant=instruct", "algo.lr=1e-6", "seed=1"],
    ["algo.lr=3e-7", "model=qwen2.5-0.5b", "seed=2", "rollout=hf"],
    ["experiment=mini_r1_countdown_3b", "train.max_steps=3", "+train.extra_note=x", "~eval.num_prompts"],
    ["dist=zero3", "dist.deepspeed.zero_optimization.offload_param.device=cpu", "hydra.job.name=custom"],
    ["seed=5", "train.bf16=true"],
    ["model=qwen2.5-3b", "variant=instruct"],
]


def test_preflight_composes_each_job_exactly_as_hydra_does():
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from r1lab.launching.preflight import JobComposer

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        primary = loader.load_configuration("config", ["hydra.sweep.dir=/tmp/r1lab-speed-sweep"], RunMode.MULTIRUN)
        composer = JobComposer(loader, primary)
        fast = [composer.compose(list(overrides)) for overrides in JOB_OVERRIDES]
        # The first job's copy is not touched by the later jobs that share its groups.
        for overrides, config in zip(JOB_OVERRIDES, fast):
            expected = loader.load_sweep_config(primary, list(overrides))
            assert OmegaConf.to_container(config) == OmegaConf.to_container(expected), overrides
            assert OmegaConf.is_struct(config) and not OmegaConf.is_readonly(config.hydra)
        # Value overrides of one composed group choice: composed once.
        assert len(composer._stage_one) < len(JOB_OVERRIDES)


def test_preflight_reports_hydras_own_error_for_a_bad_override():
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import ConfigCompositionException
    from hydra.types import RunMode

    from r1lab.launching.preflight import JobComposer

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        primary = loader.load_configuration("config", [], RunMode.MULTIRUN)
        composer = JobComposer(loader, primary)
        with pytest.raises(ConfigCompositionException, match="Could not override 'algo.lrr'"):
            composer.compose(["model=qwen2.5-3b", "algo.lrr=1"])
