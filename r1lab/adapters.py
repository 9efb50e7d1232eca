"""The `adapter` group (none | lora | qlora) as peft and transformers objects, and what it needs of the machine.

The policy's adapter is peft's `LoraConfig`, passed to TRL's trainer as `peft_config=`; TRL wraps the policy,
computes the reference log-probs with the adapter disabled (no second copy of the model), merges the adapter
into the weights it pushes to vLLM, and the HF Trainer saves and resumes the adapter in checkpoints. `qlora`
adds transformers' `BitsAndBytesConfig` (4-bit NF4 base), passed as `quantization_config=`. `adapter.modules_to_save`
(peft's own) trains whole modules beside the adapter; tied embeddings stay tied (`ensure_weight_tying`).

PPO's critic and PRIME's PRM (`adapter.companions`): `adapter` gives each its own copy of the base, quantized
like the policy, with its own LoRA adapter (the critic's value head is trained in full: peft's TOKEN_CLS task
saves it); `full` trains a full copy, as without an adapter.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf


def uses_adapter(cfg: DictConfig) -> bool:
    return cfg.adapter.name != "none"


def lora_config(adapter: Mapping, task_type: str = "CAUSAL_LM"):
    """peft's LoraConfig for the `adapter` group; None for full fine-tuning."""
    if adapter["name"] == "none":
        return None
    from peft import LoraConfig

    targets = [str(t) for t in adapter["target_modules"]]
    targets = "all-linear" if targets == ["all-linear"] else targets  # peft's keyword is a string
    full = adapter.get("modules_to_save")
    return LoraConfig(task_type=task_type, r=int(adapter["rank"]), lora_alpha=int(adapter["alpha"]),
                      lora_dropout=float(adapter["dropout"]), target_modules=targets, bias="none",
                      modules_to_save=None if full is None else [str(m) for m in full],
                      # A trained copy of tied embeddings stays tied to the LM head.
                      ensure_weight_tying=full is not None)


def quantization_config(adapter: Mapping, compute_dtype: str):
    """transformers' BitsAndBytesConfig for a 4-bit base (adapter=qlora); None otherwise."""
    quantization = adapter.get("quantization")
    if quantization is None:
        return None
    from transformers import BitsAndBytesConfig

    fields: dict[str, Any] = dict(OmegaConf.to_container(quantization) if OmegaConf.is_config(quantization)
                                  else quantization)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=compute_dtype, **fields)


def trainer_adapter_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """The adapter's keyword arguments for an r1lab trainer: TRL's `peft_config` and `quantization_config`, and
    `companion_lora` (the LoraConfig the critic/PRM get, None when they train in full)."""
    own = cfg.adapter.get("companions") == "adapter"
    return {
        "peft_config": lora_config(cfg.adapter),
        "quantization_config": quantization_config(cfg.adapter, cfg.model.dtype),
        "companion_lora": lora_config(cfg.adapter) if own else None,
    }


def adapter_problems(cfg: DictConfig) -> list[str]:
    """Adapter keys that pass the schema (r1lab/config_schema.py: types, ranges, choices) but cannot run."""
    if cfg.adapter.name != "none" and not cfg.adapter.target_modules:
        return ["adapter.target_modules is empty: name modules (e.g. [q_proj, v_proj]) or [all-linear]"]
    return []


def adapter_environment_problems(cfg: DictConfig) -> list[str]:
    """What this Python environment lacks for the adapter (no torch import: safe in a sweep's preflight)."""
    if cfg.adapter.get("quantization") is not None and importlib.util.find_spec("bitsandbytes") is None:
        return [f"adapter={cfg.adapter.name} needs bitsandbytes (pip install bitsandbytes) and a CUDA GPU; "
                "use adapter=lora on this machine"]
    return []


def adapter_hardware_problems(cfg: DictConfig, cuda_available: bool) -> list[str]:
    """adapter=qlora without CUDA: bitsandbytes' 4-bit layers need a GPU. Checked before any model loads."""
    if cfg.adapter.get("quantization") is not None and not cuda_available:
        return [f"adapter={cfg.adapter.name} (4-bit base via bitsandbytes) needs a CUDA GPU, and this machine has "
                "none: use adapter=lora"]
    return []
