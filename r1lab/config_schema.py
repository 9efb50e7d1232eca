"""The config schema: every key r1lab's config may hold, with its type and range, in one table.

`SCHEMA` maps a dotted key to what its value must be. Adding a key to `conf/` means adding one line
here (tests/test_config_schema.py fails, naming the key, until it is there). `*` stands for any one
key: `model.tiny.*` covers every field of the tiny architecture. A key whose spec is `open_map()`
is passed on as it is and not looked into (`algo.trl`, `dist.deepspeed`); `map_of(spec)` checks
every value of a map whose keys are free (`task.rewards`).

`schema_problems(cfg)` checks every value of a composed config against the table before any compute
(single runs in `r1lab.validation.validate`, every job of a sweep in the preflight) and reports every
problem at once, each naming the key, the value and what was expected.

Why a table and not dataclasses in Hydra's ConfigStore: the options of one group hold different
keys (GRPO's `beta`, PPO's `kl_coef`), so a structured config per group would need a schema line in
every option file besides the dataclass, and OmegaConf's structured configs check types only (no
ranges) and stop at the first error. One table keeps "add a key" to one line and reports them all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf


@dataclass(frozen=True)
class Spec:
    """What one value must be: a kind, an optional range or set of choices, and whether null is allowed."""

    kind: str                        # integer | number | boolean | text | list | map_of | open | section
    low: float | None = None         # inclusive lower bound
    high: float | None = None        # inclusive upper bound
    above: float | None = None       # exclusive lower bound
    choices: tuple[str, ...] = ()
    null: bool = False
    values: Spec | None = None       # map_of / list: the spec of each item

    def expected(self) -> str:
        words = {"integer": "an integer", "number": "a number", "boolean": "true or false", "text": "a string",
                 "list": "a list", "map_of": "a map", "open": "a map", "section": "a group of keys"}[self.kind]
        if self.choices:
            words = "one of " + ", ".join(self.choices)
        bounds = [f">= {self.low:g}" if self.low is not None else "", f"> {self.above:g}" if self.above is not None else "",
                  f"<= {self.high:g}" if self.high is not None else ""]
        words += " " + " and ".join(b for b in bounds if b) if any(bounds) else ""
        if self.kind == "list" and self.values is not None:
            words += " of " + self.values.expected().removeprefix("a ").removeprefix("an ") + "s"
        if self.kind == "map_of" and self.values is not None:
            words += " of " + self.values.expected()
        return words + (" (or null)" if self.null else "")

    def accepts(self, value: Any) -> bool:
        """Whether `value` (resolved, plain Python) is of this kind and in range; items are checked by the caller."""
        if value is None:
            return self.null
        if self.kind == "integer":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif self.kind == "number":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        elif self.kind == "boolean":
            return isinstance(value, bool)
        elif self.kind == "text":
            return isinstance(value, str) and (not self.choices or value in self.choices)
        elif self.kind == "list":
            return isinstance(value, (list, tuple, ListConfig))
        else:
            return isinstance(value, (Mapping, DictConfig))
        return ok and (self.low is None or value >= self.low) and (self.above is None or value > self.above) \
            and (self.high is None or value <= self.high)


def integer(low: float | None = None, high: float | None = None, null: bool = False) -> Spec:
    return Spec("integer", low=low, high=high, null=null)


def number(low: float | None = None, high: float | None = None, above: float | None = None, null: bool = False) -> Spec:
    return Spec("number", low=low, high=high, above=above, null=null)


def boolean() -> Spec:
    return Spec("boolean")


def text(*choices: str, null: bool = False) -> Spec:
    return Spec("text", choices=choices, null=null)


def list_of(item: Spec) -> Spec:
    return Spec("list", values=item)


def map_of(item: Spec, null: bool = False) -> Spec:
    """A map with free keys, every value checked against `item`."""
    return Spec("map_of", values=item, null=null)


def open_map(null: bool = False) -> Spec:
    """A map passed on as it is (to TRL, DeepSpeed, ...): its contents are the receiver's to check."""
    return Spec("open", null=null)


def section(null: bool = False) -> Spec:
    """A group of keys each listed in the table; only needed when the whole group may be null."""
    return Spec("section", null=null)


POSITIVE = number(above=0)
COUNT = integer(low=1)
FRACTION = number(low=0, high=1)

# One line per key. Keys that only some group options hold (PPO's kl_coef) are checked where present.
SCHEMA: dict[str, Spec] = {
    "seed": integer(low=0),
    "run_name": text(null=True),
    "dry_run": boolean(),
    "gpu_mem_gb": number(above=0, null=True),
    "cache_dir": text(),

    "train.max_steps": COUNT,
    "train.per_device_batch_size": COUNT,
    "train.gradient_accumulation_steps": COUNT,
    "train.max_prompt_length": COUNT,
    "train.max_completion_length": COUNT,
    "train.temperature": POSITIVE,
    "train.bf16": boolean(),
    "train.gradient_checkpointing": boolean(),
    "train.steps_per_generation": integer(low=1, null=True),
    "train.generation_batch_size": integer(low=1, null=True),
    "train.liger_kernel": boolean(),
    "train.logging_steps": COUNT,
    "train.save_steps": COUNT,
    "train.save_total_limit": integer(low=1, null=True),
    "train.resume": text("auto", "never"),
    "train.dataloader_num_workers": integer(low=0),

    "eval.every_steps": integer(low=0),
    "eval.num_prompts": integer(low=1, null=True),
    "eval.batch_size": COUNT,
    "eval.max_new_tokens": COUNT,
    "eval.pass_k": integer(low=0),

    "samples.per_step": integer(low=0),
    "samples.max_bytes": COUNT,

    "model.size": text(),
    "model.name_or_path": text(null=True),
    "model.tiny": section(null=True),
    "model.tiny.*": COUNT,
    # r1lab's own pretrained tiny bases (r1lab/tiny_base.py): word-level vocabulary sized by the corpus.
    "model.tiny.vocab_size": integer(low=1, null=True),
    "model.pretrain": section(null=True),
    "model.pretrain.corpus": text("primed", "unprimed"),
    "model.pretrain.data.kind": text("primed", "unprimed"),
    "model.pretrain.data.count": integer(low=3, high=3),
    "model.pretrain.data.min_number": integer(low=1),
    "model.pretrain.data.max_number": integer(low=1, high=30),
    "model.pretrain.data.min_target": integer(low=1),
    "model.pretrain.data.max_target": integer(low=1, high=999),
    "model.pretrain.data.trace_share": FRACTION,
    "model.pretrain.data.enumeration_share": FRACTION,
    "model.pretrain.data.check_share": FRACTION,
    "model.pretrain.data.continue_prob": FRACTION,
    "model.pretrain.data.hit_share": FRACTION,
    "model.pretrain.data.enumeration_continue_prob": FRACTION,
    "model.pretrain.data.max_candidates": COUNT,
    "model.pretrain.data.number_order": text("prompt", "any"),
    "model.pretrain.data.search_order": text("random", "cyclic", "fixed"),
    "model.pretrain.data.prompt": text("full", "short"),
    "model.pretrain.data.arithmetic_lines": COUNT,
    "model.pretrain.seed": integer(low=0),
    "model.pretrain.max_steps": COUNT,
    "model.pretrain.check_first_steps": integer(low=0),
    "model.pretrain.batch_size": COUNT,
    "model.pretrain.processes": COUNT,
    "model.pretrain.block_size": COUNT,
    "model.pretrain.lr": POSITIVE,
    "model.pretrain.warmup_steps": integer(low=0),
    "model.learning_rates": map_of(POSITIVE, null=True),
    "model.dtype": text("float32", "bfloat16", "float16", "auto"),
    "model.bf16": boolean(),
    "model.gradient_checkpointing": boolean(),
    "model.attn_implementation": text(),
    "model.max_completion_length": COUNT,
    "model.per_device_batch_size": COUNT,
    "model.resources.gpus": integer(low=0),
    "model.resources.ranks": COUNT,
    "model.resources.cpus": COUNT,
    "model.resources.mem_gb": POSITIVE,
    "model.resources.time_min": POSITIVE,
    "model.resources.est_step_s": POSITIVE,
    "model.resources.gpu_mem_gb": number(above=0, null=True),
    "model.architecture": section(),
    "model.architecture.tie_word_embeddings": boolean(),
    "model.architecture.*": COUNT,
    "model.adapter_modules_to_save": list_of(text()),
    "adapter.name": text("none", "lora", "qlora"),
    "adapter.rank": COUNT,
    "adapter.alpha": POSITIVE,
    "adapter.dropout": FRACTION,
    "adapter.target_modules": list_of(text()),
    "adapter.modules_to_save": Spec("list", values=text(), null=True),
    "adapter.companions": text("adapter", "full"),
    "adapter.quantization": section(null=True),
    "adapter.quantization.bnb_4bit_quant_type": text("nf4", "fp4"),
    "adapter.quantization.bnb_4bit_use_double_quant": boolean(),

    "variant.name": text(),
    "variant.prompt_style": text("plain", "chat"),
    # The instruct variant of r1lab's own tiny bases (r1lab/tiny_instruct.py); Hub models ignore it.
    "variant.sft": section(null=True),
    "variant.sft.examples": COUNT,
    "variant.sft.min_number": integer(low=0),
    "variant.sft.max_number": integer(low=1),
    "variant.sft.max_steps": COUNT,
    "variant.sft.batch_size": COUNT,
    "variant.sft.lr": POSITIVE,
    "variant.sft.seed": integer(low=0),

    "algo.name": text(),
    "algo.lr": POSITIVE,
    "algo.critic_lr": POSITIVE,
    "algo.prm_lr": POSITIVE,
    "algo.lr_scheduler": text(),
    "algo.warmup_steps": integer(low=0),
    "algo.weight_decay": number(low=0),
    "algo.max_grad_norm": POSITIVE,
    "algo.prm_max_grad_norm": POSITIVE,
    "algo.beta": number(low=0),
    "algo.kl_coef": number(low=0),
    "algo.num_generations": COUNT,
    "algo.loss_type": text(),
    "algo.scale_rewards": text(),
    "algo.epsilon": POSITIVE,
    "algo.epsilon_high": number(above=0, null=True),
    "algo.num_iterations": COUNT,
    "algo.gamma": FRACTION,
    "algo.lam": FRACTION,
    "algo.cliprange_value": POSITIVE,
    "algo.entropy_coef": number(low=0),
    "algo.mini_batches": COUNT,
    "algo.prm_beta": POSITIVE,
    "algo.rm_coef": number(low=0),
    "algo.filter_accuracy": boolean(),
    "algo.accuracy_lower_bound": FRACTION,
    "algo.accuracy_upper_bound": FRACTION,
    "algo.importance_sampling_level": text(),  # its choices: TRL's GRPOConfig
    "algo.mask_truncated_completions": boolean(),
    "algo.delta": number(above=1, null=True),
    "algo.top_entropy_quantile": FRACTION,
    "algo.vllm_importance_sampling_correction": boolean(),
    "algo.prime_norm": text(),  # its choices (and prm_update's): r1lab.algos.config_checks
    "algo.prm_update": text(),
    "algo.prm_label_reward": text(null=True),
    "algo.trl": open_map(null=True),  # TRL config fields passed through as they are

    "task.name": text(),
    "task.source": text("generated", "hub"),
    "task.hub_id": text(),
    "task.generator.*": integer(low=0),
    "task.generator.target": text(),  # its choices: r1lab.tasks.countdown.config_problems
    "task.test_path": text(null=True),
    "task.prompt": text("full", "short"),
    "task.num_train": COUNT,
    "task.num_test": COUNT,
    "task.rewards": map_of(number()),
    "task.prime_rm_coef": number(low=0),
    "task.min_digits": COUNT,
    "task.max_digits": COUNT,

    "rollout.engine": text("hf", "vllm"),
    "rollout.mode": text("colocate", "server"),
    "rollout.gpu_memory_utilization": number(above=0, high=1),
    "rollout.enable_sleep_mode": boolean(),
    "rollout.tensor_parallel_size": COUNT,
    "rollout.start_server": boolean(),
    "rollout.host": text(),
    "rollout.port": integer(low=1, high=65535),
    "rollout.timeout": POSITIVE,
    "rollout.enable_prefix_caching": boolean(),

    "dist.deepspeed": open_map(null=True),  # a DeepSpeed config, read by DeepSpeed

    "logger.backend": text("wandb", "none"),
    "logger.project": text(),
    "logger.entity": text(null=True),
    "logger.mode": text("auto", "online", "offline", "disabled"),
    "logger.group": text(null=True),
    "logger.tags": list_of(text()),
    "logger.log_completions": boolean(),
    "logger.print_completions": integer(low=0),
}


def spec_for(key: str) -> Spec | None:
    """The spec of a dotted key: its own line, else a `*` line matching it (one key per `*`)."""
    if key in SCHEMA:
        return SCHEMA[key]
    parts = key.split(".")
    for i in range(len(parts) - 1, -1, -1):
        pattern = ".".join(parts[:i] + ["*"] + parts[i + 1:])
        if pattern in SCHEMA:
            return SCHEMA[pattern]
    return None


def _is_section(key: str) -> bool:
    prefix = key + "."
    return any(k.startswith(prefix) for k in SCHEMA)


def _show(value: Any) -> str:
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=False)
    return repr(value)


def _check(key: str, value: Any, found: list[str]) -> None:
    spec = spec_for(key)
    if spec is None and _is_section(key):
        spec = section()
    if spec is None:
        found.append(f"{key}={_show(value)}: not a key of r1lab's config (r1lab/config_schema.py lists them)")
        return
    if not spec.accepts(value):
        found.append(f"{key}={_show(value)}: expected {spec.expected()}")
        return
    if value is None or spec.kind == "open":
        return
    if spec.kind == "section":
        _check_children(key, value, found)
    elif spec.kind == "map_of":
        for name in value:
            item = _child(value, name, f"{key}.{name}", found)
            if item is not _UNRESOLVED and not spec.values.accepts(item):
                found.append(f"{key}.{name}={_show(item)}: expected {spec.values.expected()}")
    elif spec.kind == "list":
        for i, item in enumerate(value):
            if not spec.values.accepts(item):
                found.append(f"{key}[{i}]={_show(item)}: expected {spec.values.expected()}")


_UNRESOLVED = object()


def _child(node: Any, name: str, key: str, found: list[str]) -> Any:
    """node[name] with interpolations resolved; an unresolvable one is reported and skipped."""
    try:
        return node[name]
    except Exception as error:  # noqa: BLE001 - OmegaConf raises several types for one bad interpolation
        found.append(f"{key}: cannot be resolved ({error})".split("\n")[0])
        return _UNRESOLVED


def _check_children(prefix: str, node: Any, found: list[str]) -> None:
    for name in node:
        key = f"{prefix}.{name}"
        value = _child(node, name, key, found)
        if value is not _UNRESOLVED:
            _check(key, value, found)


def schema_problems(cfg: DictConfig | Mapping) -> list[str]:
    """Every value of `cfg` (a composed config without `hydra`) that the schema rejects, one message each."""
    found: list[str] = []
    for name in cfg:
        if name != "hydra":
            value = _child(cfg, name, str(name), found)
            if value is not _UNRESOLVED:
                _check(str(name), value, found)
    return _one_message_for_a_hub_model_in_the_laptop_recipe(cfg, found)


def _one_message_for_a_hub_model_in_the_laptop_recipe(cfg: Any, found: list[str]) -> list[str]:
    """The laptop recipe (laptop_aha, the default) reads the task's ranges from the base r1lab pretrains; with a
    Hub model each of those keys fails to resolve. Say why once instead."""
    # Most configs validate clean: no unresolved copy of the whole tree for them (a sweep validates every job).
    if not found or not isinstance(cfg, DictConfig):
        return found
    if OmegaConf.select(cfg, "model.pretrain", default=None) is not None:
        return found
    raw = OmegaConf.to_container(cfg, resolve=False)
    # The keys that failed, found by their own text: an interpolation of model.pretrain (not OmegaConf's wording).
    needs_base = [f for f in found if "${model.pretrain." in str(_raw_value(raw, f.split(":", 1)[0]))]
    if not needs_base:
        return found
    size = OmegaConf.select(cfg, "model.size", default="?")
    hint = (f"model.size={size}: the laptop experiment (laptop_aha, the default) needs a base r1lab pretrains "
            "itself (model=tiny-0.3m|tiny-1m|tiny-3m|tiny-10m); for a Hub model add experiment=none or name its "
            "recipe (e.g. experiment=tinyzero_countdown_3b_grpo)")
    return [hint] + [f for f in found if f not in needs_base]


def _raw_value(raw: Any, key: str) -> Any:
    """The unresolved value at dotted `key` of a plain container, or None."""
    for part in key.split("."):
        if not isinstance(raw, dict) or part not in raw:
            return None
        raw = raw[part]
    return raw
