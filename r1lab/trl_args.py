"""The one place where r1lab's composed config becomes TRL's `GRPOConfig`.

Every algorithm trains through a `GRPOConfig` (the token-level ones subclass it), so batch sizes,
precision, checkpointing, rollout engine and DeepSpeed settings mean the same for all of them.
The algorithm module supplies only its own fields (`config_fields`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf


def rollout_fields(rollout: Mapping) -> dict[str, Any]:
    """TRL's generation-engine fields for the `rollout` group (hf, vllm_colocate, vllm_server)."""
    if rollout["engine"] == "hf":
        return {"use_vllm": False}
    fields: dict[str, Any] = {
        "use_vllm": True,
        "vllm_mode": rollout["mode"],
        "vllm_tensor_parallel_size": int(rollout["tensor_parallel_size"]),
    }
    if rollout["mode"] == "colocate":
        fields["vllm_gpu_memory_utilization"] = float(rollout["gpu_memory_utilization"])
        fields["vllm_enable_sleep_mode"] = bool(rollout["enable_sleep_mode"])
    else:
        fields["vllm_server_host"] = rollout["host"]
        fields["vllm_server_port"] = int(rollout["port"])
        fields["vllm_server_timeout"] = float(rollout["timeout"])
    return fields


def vllm_serve_command(cfg: DictConfig, model: str) -> list[str]:
    """The `trl vllm-serve` command line that serves `model` for rollout=vllm_server.

    Prefix caching and tensor parallelism are settings of the server process, not of GRPOConfig.
    """
    rollout = cfg.rollout
    command = ["trl", "vllm-serve", "--model", model, "--host", str(rollout.host), "--port", str(int(rollout.port)),
               "--tensor_parallel_size", str(int(rollout.tensor_parallel_size)),
               "--enable_prefix_caching", str(bool(rollout.enable_prefix_caching))]
    if cfg.train.bf16:
        command += ["--dtype", "bfloat16"]
    return command


def trl_passthrough(algo: Mapping) -> dict[str, Any]:
    """`algo.trl`: GRPOConfig fields r1lab has no key for, passed on as they are (they win over r1lab's own)."""
    trl = algo.get("trl") or {}
    return OmegaConf.to_container(trl, resolve=True) if isinstance(trl, DictConfig) else dict(trl)


def trl_passthrough_problems(cfg: DictConfig) -> list[str]:
    """Each `algo.trl.<field>` that the algorithm's config class (GRPOConfig or its subclass) does not have.

    Imports the algorithm module (torch, TRL) only when `algo.trl` names something, so that validating an
    ordinary sweep stays fast.
    """
    fields = trl_passthrough(cfg.algo)
    if not fields:
        return []
    import dataclasses
    import difflib

    from r1lab.algos import algorithm_module

    config_class = algorithm_module(cfg.algo.name).Config
    known = {f.name for f in dataclasses.fields(config_class) if f.init}
    found = []
    for name in fields:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            found.append(f"algo.trl.{name}: {config_class.__name__} (TRL {_trl_version()}) has no field {name!r}{hint}")
    return found


def _trl_version() -> str:
    from importlib.metadata import version

    return version("trl")


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def trainer_kwargs(
    cfg: DictConfig,
    *,
    output_dir: str,
    run_name: str,
    report_to: list[str],
    reward_weights: list[float],
    algo_fields: Mapping[str, Any],
) -> dict[str, Any]:
    """Keyword arguments for `GRPOConfig` (or an algorithm's subclass) from the composed config."""
    train, model, algo = cfg.train, cfg.model, cfg.algo
    eval_every = int(cfg.eval.every_steps)
    gradient_checkpointing = bool(train.gradient_checkpointing)
    print_completions = int(cfg.logger.get("print_completions") or 0)
    kwargs: dict[str, Any] = {
        "output_dir": output_dir,
        "run_name": run_name,
        "seed": int(cfg.seed),
        "max_steps": int(train.max_steps),
        "learning_rate": float(algo.lr),
        "lr_scheduler_type": algo.lr_scheduler,
        # transformers 5 reads a value below 1 as a fraction of max_steps.
        "warmup_steps": float(algo.warmup_steps),
        "weight_decay": float(algo.weight_decay),
        "max_grad_norm": float(algo.max_grad_norm),
        "per_device_train_batch_size": int(train.per_device_batch_size),
        "gradient_accumulation_steps": int(train.gradient_accumulation_steps),
        "max_completion_length": int(train.max_completion_length),
        "temperature": float(train.temperature),
        "bf16": bool(train.bf16),
        # transformers 5's name; `gradient_checkpointing` is its deprecated alias (a FutureWarning per run).
        "activation_checkpointing": gradient_checkpointing,
        # Rollout size; both None = TRL's default (steps_per_generation = gradient_accumulation_steps).
        "steps_per_generation": _optional_int(train.steps_per_generation),
        "generation_batch_size": _optional_int(train.generation_batch_size),
        # Liger's layer kernels; TRL 1.16 keeps its own chunked log-prob head instead of Liger's fused loss.
        "use_liger_kernel": bool(train.liger_kernel),
        "model_init_kwargs": {
            "dtype": model.dtype,
            "attn_implementation": model.attn_implementation,
        },
        "logging_steps": int(train.logging_steps),
        "save_strategy": "steps",
        "save_steps": int(train.save_steps),
        "save_total_limit": int(train.save_total_limit),
        # Held-out eval is r1lab's greedy one (evaluation.py), scheduled by HF's eval loop.
        "eval_strategy": "steps" if eval_every > 0 else "no",
        "eval_steps": eval_every if eval_every > 0 else None,
        # TRL checks eval groups against num_generations; greedy eval has one completion per prompt.
        "num_generations_eval": 1,
        "report_to": report_to,
        # TRL's completions table: to W&B (and completions/*.parquet) with log_completions, and to the terminal
        # only when asked: num_completions_to_print=0 prints nothing (TRL's default, None, prints every row).
        "log_completions": print_completions > 0 or ("wandb" in report_to and bool(cfg.logger.get("log_completions"))),
        "num_completions_to_print": print_completions,
        "reward_weights": reward_weights,
        "dataloader_num_workers": int(train.dataloader_num_workers),
        **rollout_fields(cfg.rollout),
        **algo_fields,
        **trl_passthrough(algo),
    }
    if gradient_checkpointing:
        # Non-reentrant checkpointing works with frozen embeddings and DeepSpeed; TRL's docs use it.
        kwargs["activation_checkpointing_kwargs"] = {"use_reentrant": False}
    if cfg.dist.deepspeed is not None:
        kwargs["deepspeed"] = OmegaConf.to_container(cfg.dist.deepspeed, resolve=True)
    return kwargs
