"""GPU-memory plan of one job, from its composed config: peak GiB per training GPU, broken down, and whether it fits.

An estimate, made before anything is queued (`preflight.py`, and `run_job` for a single run), so that a job that
cannot fit its GPUs is refused with the cheapest changes that would make it fit instead of failing hours later.

Inputs: the model's shapes (`model.architecture`, Qwen2 config fields), its dtype, the algorithm's extra models
(reference, PPO's critic, PRIME's PRM), the adapter (LoRA trains only the adapter; QLoRA keeps the base in 4
bits), the DeepSpeed ZeRO stage, its ranks and CPU offload, the rollout engine (vLLM colocate's share of each
GPU, with or without sleep mode; a vLLM server's own GPUs) and the micro-batch x sequence length, with or without
gradient checkpointing.

Where they apply, model states (weights, gradients, AdamW state) come from DeepSpeed's own estimators
(`estimate_zero2_model_states_mem_needs`, `estimate_zero3_model_states_mem_needs`); their totals are split into
weights (the estimators' own figure with the optimizer offloaded) and gradients + optimizer state (the rest,
split 6:12 as DeepSpeed's ZeRO-2 estimator comments it: 16-bit and fp32 gradients vs fp32 master weights and the
two moments). Without DeepSpeed (dist=single) r1lab trains in the model's dtype with torch's AdamW, whose moments
take the parameters' dtype: 4 copies of the trained parameters; DeepSpeed's mixed-precision estimators do not
describe that, so it is counted here. Activations (Korthikanti et al. 2022, "Reducing Activation Recomputation",
sec. 4, without the attention-score term since SDPA/flash attention never stores it) and the KV cache of HF
`generate` are hand-counted from the shapes: no library estimates them.

Two phases are planned and the larger one is the peak: generation (every model's state plus vLLM's share or the
KV cache of HF generate) and training (every model's state plus activations, plus vLLM's share unless sleep mode
frees it). Gradients count in both phases (DeepSpeed keeps its gradient buffers; plain PyTorch frees them between
steps, so generation is overstated there). Activations assume every sequence is padded to max prompt + completion
length. GiB throughout (2^30 bytes; `gpu_mem_gb` is read as GiB).
"""

from __future__ import annotations

import copy
import importlib.util
import textwrap
from dataclasses import dataclass, field

from omegaconf import DictConfig, OmegaConf

from r1lab.config_tree import CONF_DIR as CONF

GIB = 2**30
# CUDA context, cuBLAS workspaces and NCCL's buffers: a fixed allowance per GPU.
CONTEXT_GIB = 1.0
# trl vllm-serve's default share of its GPU.
SERVER_GPU_MEMORY_UTILIZATION = 0.9
# DeepSpeed's ZeRO-2 estimator: 18 bytes per trained parameter = 6 of gradients (2 bf16 + 4 fp32) + 12 of optimizer
# (4 fp32 master weights + 8 for the two AdamW moments).
GRADIENT_SHARE = 6 / 18
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
# bitsandbytes NF4 with double quantization: 4 bits per weight + 0.127 bits of quantization constants
# (Dettmers et al. 2023, sec. 2); embeddings and the LM head stay in the compute dtype.
NF4_BYTES = (4 + 0.127) / 8
LEAVES_OUT = ("modules trained in full beside an adapter (adapter.modules_to_save), allocator fragmentation and PyTorch's cached blocks, DDP gradient buckets, temporary tensors of the "
              "loss and of the fused LM head's tiles, padding beyond max prompt + completion length, vLLM's own "
              "overshoot past its share, other processes on the GPU")


@dataclass(frozen=True)
class Shape:
    """A Qwen2 decoder's shapes (the fields of transformers' Qwen2Config that set its parameter count)."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool

    @classmethod
    def from_config(cls, arch) -> Shape:
        return cls(int(arch["hidden_size"]), int(arch["intermediate_size"]), int(arch["num_hidden_layers"]),
                   int(arch["num_attention_heads"]), int(arch["num_key_value_heads"]), int(arch["vocab_size"]),
                   bool(arch["tie_word_embeddings"]))

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * (self.hidden // self.heads)

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear layer of a decoder layer, by module name."""
        h, kv, i = self.hidden, self.kv_dim, self.intermediate
        return {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    def linear_params(self) -> int:
        """Weights of the decoder layers' linear layers (what bitsandbytes quantizes), all layers."""
        return self.layers * sum(a * b for a, b in self.linear_shapes().values())

    @property
    def embedding(self) -> int:
        return self.vocab * self.hidden

    def params(self) -> int:
        """Parameters of Qwen2ForCausalLM: embeddings, layers (q/k/v biases, 2 RMSNorms each), final norm, LM head."""
        biases = self.hidden + 2 * self.kv_dim
        per_layer_rest = biases + 2 * self.hidden
        head = 0 if self.tied else self.embedding
        return self.embedding + self.linear_params() + self.layers * per_layer_rest + self.hidden + head

    def critic_params(self) -> int:
        """Qwen2ForTokenClassification with one label: the backbone plus a hidden -> 1 head, no LM head."""
        return self.params() - (0 if self.tied else self.embedding) + self.hidden + 1  # head weight and bias

    def lora_params(self, target_modules, rank: int) -> int:
        """LoRA's A and B matrices, r x (in + out) per targeted linear layer; "all-linear" is every one."""
        shapes = self.linear_shapes()
        names = [str(m) for m in ([target_modules] if isinstance(target_modules, str) else target_modules)]
        names = list(shapes) if "all-linear" in names else names
        return self.layers * sum(rank * sum(shapes[n]) for n in names if n in shapes)


@dataclass
class MemoryPlan:
    """Peak GiB per training GPU of one job, by component, and the two phases it was taken from."""

    gpu_mem_gb: float | None
    components: dict[str, float]          # the peak phase's components, GiB
    phase: str                            # generation | training: which one is the peak
    other_phase_gb: float
    cpu_offload_gb: float = 0.0
    server: str | None = None             # vLLM server GPUs: weights against their share
    server_fits: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def peak_gb(self) -> float:
        return sum(self.components.values())

    @property
    def fits(self) -> bool:
        return self.server_fits and (self.gpu_mem_gb is None or self.peak_gb <= self.gpu_mem_gb)

    def cell(self) -> str:
        """The job table's GB/GPU cell: estimate / capacity."""
        flag = "" if self.fits else " over"
        capacity = f"/{self.gpu_mem_gb:g}" if self.gpu_mem_gb is not None else ""
        return f"~{self.peak_gb:.1f}{capacity}{flag}"

    def breakdown(self) -> str:
        other = "generation" if self.phase == "training" else "training"
        lines = [f"estimated peak {self.peak_gb:.1f} GiB per GPU"
                 + (f" of {self.gpu_mem_gb:g}" if self.gpu_mem_gb is not None else "")
                 + f", in the {self.phase} phase ({other} phase: {self.other_phase_gb:.1f} GiB):"]
        lines += [f"  {name:<28} {gb:7.1f}" for name, gb in self.components.items() if gb > 0.005]
        if self.cpu_offload_gb:
            lines.append(f"  (offloaded to CPU memory, DeepSpeed's estimate: {self.cpu_offload_gb:.1f} GiB per node)")
        if self.server:
            lines.append(f"  {self.server}")
        lines += [f"  note: {note}" for note in self.notes]
        lines.append(f"  an estimate; it leaves out {LEAVES_OUT}")
        return "\n".join(lines)


def _zero_stage(cfg: DictConfig) -> int:
    ds = cfg.dist.get("deepspeed")
    return int(ds.zero_optimization.stage) if ds is not None else 0


def _offload(cfg: DictConfig, what: str) -> bool:
    ds = cfg.dist.get("deepspeed")
    if ds is None:
        return False
    target = ds.zero_optimization.get(what)
    return target is not None and str(target.get("device", "none")) == "cpu"


def model_states(cfg: DictConfig, shape: Shape, trained: int, frozen_bytes: float, weight_bytes: int,
                 ranks: int) -> tuple[float, float, float, float]:
    """(weights, gradients, optimizer, CPU-offloaded) bytes per GPU of one model that trains `trained` parameters
    and holds `frozen_bytes` of frozen weights (an adapter's base), under the run's ZeRO stage."""
    stage = _zero_stage(cfg)
    if stage == 0:
        # r1lab without DeepSpeed: weights, gradients and both AdamW moments in the parameters' dtype.
        return frozen_bytes + trained * weight_bytes, trained * weight_bytes, 2 * trained * weight_bytes, 0.0
    offload_optimizer = _offload(cfg, "offload_optimizer")
    if stage == 3:
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

        offload_params = offload_optimizer and _offload(cfg, "offload_param")
        largest = shape.embedding  # the largest layer gathered at once: the embedding (or the LM head)
        cpu, total, _ = estimate_zero3_model_states_mem_needs(
            trained, largest, num_gpus_per_node=ranks, cpu_offload=offload_optimizer,
            cpu_offload_params=offload_params, additional_buffer_factor=1.0)
        _, weights, _ = estimate_zero3_model_states_mem_needs(
            trained, largest, num_gpus_per_node=ranks, cpu_offload=True, cpu_offload_params=offload_params,
            additional_buffer_factor=1.0)
        frozen_here = 0.0 if offload_params else frozen_bytes / ranks
    else:
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

        cpu, total = estimate_zero2_model_states_mem_needs(
            trained, num_gpus_per_node=ranks, cpu_offload=offload_optimizer, additional_buffer_factor=1.0)
        _, weights = estimate_zero2_model_states_mem_needs(
            trained, num_gpus_per_node=ranks, cpu_offload=True, additional_buffer_factor=1.0)
        frozen_here = frozen_bytes
    rest = total - weights
    offloaded = float(cpu) if offload_optimizer else 0.0  # without offload, `cpu` is only what loading needs
    return frozen_here + weights, rest * GRADIENT_SHARE, rest * (1 - GRADIENT_SHARE), offloaded


def _adapter_model(cfg: DictConfig, shape: Shape, params: int, weight_bytes: int, trained_extra: int = 0):
    """(trained parameters, frozen bytes) of a model under the run's adapter (or in full)."""
    adapter = cfg.adapter
    if adapter.name == "none":
        return params + trained_extra, 0.0
    lora = shape.lora_params(adapter.target_modules, int(adapter.rank)) + trained_extra
    if adapter.get("quantization") is not None:
        linear = shape.linear_params()
        return lora, linear * NF4_BYTES + (params - linear) * weight_bytes
    return lora, params * weight_bytes


def _extra_models(cfg: DictConfig) -> tuple[bool, str | None]:
    """(holds a frozen reference copy, name of its trained companion or None) for the run's algorithm."""
    name = cfg.algo.name
    if name == "ppo":
        return True, "critic"
    if name == "prime":
        return True, "PRM"
    if name == "reinforce_pp":
        return True, None
    if name == "rloo":
        return float(cfg.algo.get("kl_coef", 0.0)) > 0.0, None
    return float(cfg.algo.get("beta", 0.0)) != 0.0, None  # the GRPO family: TRL's reference at beta != 0


def activation_bytes(cfg: DictConfig, shape: Shape) -> float:
    """Activations of one micro-batch kept for the backward pass.

    Per decoder layer and token, bf16 elements: RMSNorm inputs and outputs, q, k, v, attention output (5h + 2 kv)
    and SwiGLU's gate, up, activation and product (4 i); no s x s attention scores (SDPA). With gradient
    checkpointing only each layer's input is kept, plus one layer's activations while it is recomputed.
    """
    train = cfg.train
    tokens = int(train.per_device_batch_size) * (int(train.max_prompt_length) + int(train.max_completion_length))
    element = 2 if train.bf16 else DTYPE_BYTES.get(str(cfg.model.dtype), 4)
    per_layer = tokens * (5 * shape.hidden + 2 * shape.kv_dim + 4 * shape.intermediate) * element
    if train.gradient_checkpointing:
        return shape.layers * tokens * shape.hidden * element + per_layer
    return shape.layers * per_layer


def generation_kv_cache_bytes(cfg: DictConfig, shape: Shape, weight_bytes: int) -> float:
    """KV cache of HF `generate` over this rank's whole generation batch (TRL generates it at once)."""
    from r1lab.validation import generation_batch_size, world_size

    sequences = generation_batch_size(cfg)[0] // world_size(cfg)
    tokens = sequences * (int(cfg.train.max_prompt_length) + int(cfg.train.max_completion_length))
    return tokens * shape.layers * 2 * shape.kv_dim * weight_bytes


def gpu_memory_plan(cfg: DictConfig) -> MemoryPlan | None:
    """The plan of `cfg`'s training GPUs; None when the job has no GPU or no known shapes, or DeepSpeed (whose
    estimators a ZeRO job needs) is not installed here."""
    architecture = cfg.model.get("architecture")
    if int(cfg.model.resources.gpus) < 1 or architecture is None:
        return None
    if _zero_stage(cfg) and importlib.util.find_spec("deepspeed") is None:
        return None
    shape = Shape.from_config(architecture)
    ranks = max(1, int(cfg.model.resources.ranks))
    weight_bytes = DTYPE_BYTES.get(str(cfg.model.dtype), 4)
    params = shape.params()
    gb = 1 / GIB
    notes: list[str] = []
    components: dict[str, float] = {}

    trained, frozen = _adapter_model(cfg, shape, params, weight_bytes)
    weights, gradients, optimizer, cpu = model_states(cfg, shape, trained, frozen, weight_bytes, ranks)
    components["policy weights"] = weights * gb
    components["policy gradients"] = gradients * gb
    components["policy optimizer state"] = optimizer * gb

    has_reference, companion = _extra_models(cfg)
    reference = 0.0
    if has_reference and cfg.adapter.name == "none":
        reference = params * weight_bytes / (ranks if _zero_stage(cfg) == 3 else 1)
    elif has_reference:
        notes.append("the reference is the policy with its adapter disabled: no copy")
    components["reference"] = reference * gb

    if companion is not None:
        companion_params = shape.critic_params() if companion == "critic" else params
        own_adapter = cfg.adapter.name != "none" and cfg.adapter.get("companions") == "adapter"
        if own_adapter:
            head = shape.hidden + 1 if companion == "critic" else 0  # the value head trains in full
            c_trained, c_frozen = _adapter_model(cfg, shape, companion_params - head, weight_bytes, head)
        else:
            c_trained, c_frozen = companion_params, 0.0
        c_weights, c_grads, c_opt, c_cpu = model_states(cfg, shape, c_trained, c_frozen, weight_bytes, ranks)
        components[f"{companion} (weights, gradients, optimizer)"] = (c_weights + c_grads + c_opt) * gb
        cpu += c_cpu
    components["CUDA context and buffers"] = CONTEXT_GIB

    rollout = cfg.rollout
    states = sum(components.values())
    server, server_fits = None, True
    vllm_share = 0.0
    if rollout.engine == "vllm" and rollout.mode == "colocate":
        # A share of the GPU's memory: unknown without gpu_mem_gb.
        vllm_share = float(rollout.gpu_memory_utilization) * float(cfg.gpu_mem_gb or 0)
        generation = {"vLLM share (colocate)": vllm_share}
    elif rollout.engine == "vllm":
        generation = {}
        tensor_parallel = int(rollout.tensor_parallel_size)
        server_weights = params * weight_bytes / tensor_parallel * gb
        if cfg.gpu_mem_gb is not None:
            capacity = SERVER_GPU_MEMORY_UTILIZATION * float(cfg.gpu_mem_gb)
            server_fits = server_weights < capacity
            server = (f"vLLM server: {tensor_parallel} GPU(s) of its own, {server_weights:.1f} GiB of weights each "
                      f"within its {capacity:.0f} GiB share (the rest is KV cache)")
    else:
        generation = {"KV cache (HF generate)": generation_kv_cache_bytes(cfg, shape, weight_bytes) * gb}
    training = {"activations": activation_bytes(cfg, shape) * gb}
    if vllm_share and not rollout.get("enable_sleep_mode", False):
        training["vLLM share (colocate, no sleep mode)"] = vllm_share
    elif vllm_share:
        notes.append("vLLM sleep mode frees its share while the policy trains")
    generation_gb = states + sum(generation.values())
    training_gb = states + sum(training.values())
    phase, peak_extra, other = (("training", training, generation_gb) if training_gb >= generation_gb
                                else ("generation", generation, training_gb))
    return MemoryPlan(
        gpu_mem_gb=None if cfg.gpu_mem_gb is None else float(cfg.gpu_mem_gb),
        components={**components, **peak_extra}, phase=phase, other_phase_gb=other,
        cpu_offload_gb=cpu * gb, server=server, server_fits=server_fits, notes=notes,
    )


# --- what would make it fit ------------------------------------------------------------------------------------


def _group_option(group: str, option: str) -> DictConfig:
    """A config group's option as composed by Hydra (one level of a same-group defaults list, as qlora uses)."""
    loaded = OmegaConf.load(CONF / group / f"{option}.yaml")
    parents = [OmegaConf.load(CONF / group / f"{d}.yaml") for d in loaded.get("defaults", []) if d != "_self_"]
    merged = OmegaConf.merge(*parents, loaded) if parents else loaded
    merged.pop("defaults", None)
    return merged


def _changed(cfg: DictConfig, changes: dict[str, object]) -> DictConfig:
    changed = copy.deepcopy(cfg)
    OmegaConf.set_struct(changed, False)
    for key, value in changes.items():
        if key in ("dist", "adapter"):
            changed[key] = _group_option(key, str(value))
        else:
            OmegaConf.update(changed, key, value, merge=False)
    return changed


def candidate_changes(cfg: DictConfig) -> list[tuple[str, dict[str, object]]]:
    """Changes that lower the plan, cheapest first (in speed and in what the run learns): (override, changes)."""
    found: list[tuple[str, dict[str, object]]] = []
    rollout, train = cfg.rollout, cfg.train
    if rollout.engine == "vllm" and rollout.mode == "colocate":
        if not rollout.get("enable_sleep_mode", False):
            found.append(("rollout.enable_sleep_mode=true", {"rollout.enable_sleep_mode": True}))
        for share in (0.3, 0.2):
            if float(rollout.gpu_memory_utilization) > share:
                found.append((f"rollout.gpu_memory_utilization={share}", {"rollout.gpu_memory_utilization": share}))
    if not train.gradient_checkpointing:
        found.append(("train.gradient_checkpointing=true", {"train.gradient_checkpointing": True}))
    per_device, accumulation = int(train.per_device_batch_size), int(train.gradient_accumulation_steps)
    factor = 2
    while per_device // factor >= 1 and per_device % factor == 0:
        b, ga = per_device // factor, accumulation * factor
        found.append((f"train.per_device_batch_size={b} train.gradient_accumulation_steps={ga} (fewer completions "
                      "per device per pass, same batch)",
                      {"train.per_device_batch_size": b, "train.gradient_accumulation_steps": ga}))
        factor *= 2
    stage = _zero_stage(cfg)
    if stage < 3:
        found.append(("dist=zero3", {"dist": "zero3"}))
    offload = "dist.deepspeed.zero_optimization.offload_optimizer.device"
    if not _offload(cfg, "offload_optimizer"):
        found.append((f"dist=zero3 {offload}=cpu", {"dist": "zero3", offload: "cpu"}))
    if cfg.adapter.name == "none":
        found.append(("adapter=lora", {"adapter": "lora"}))
        found.append(("adapter=qlora", {"adapter": "qlora"}))
    return found


def suggestions(cfg: DictConfig, limit: int = 3) -> list[str]:
    """The cheapest single changes that make `cfg` fit (with their estimates); else one combination; else advice."""
    fitting = []
    for override, changes in candidate_changes(cfg):
        plan = gpu_memory_plan(_changed(cfg, changes))
        if plan is not None and plan.fits:
            fitting.append(f"{override}  (~{plan.peak_gb:.1f} GiB)")
            if len(fitting) == limit:
                return fitting
    if fitting:
        return fitting
    combined: dict[str, object] = {}
    applied: list[str] = []
    for override, changes in candidate_changes(cfg):
        if any(key in combined for key in changes if key.startswith("train.per_device")):
            continue
        combined.update(changes)
        applied.append(override.split(" (")[0])
        plan = gpu_memory_plan(_changed(cfg, combined))
        if plan is not None and plan.fits:
            return [f"all of: {' '.join(applied)}  (~{plan.peak_gb:.1f} GiB)"]
    return ["nothing r1lab can change fits it: use more GPUs (model.resources.gpus=) or larger ones (gpu_mem_gb=)"]


def over_memory_message(cfg: DictConfig, plan: MemoryPlan) -> str:
    why = (f"does not fit its GPUs: estimated ~{plan.peak_gb:.1f} GiB per GPU > gpu_mem_gb={plan.gpu_mem_gb:g}"
           if plan.peak_gb > (plan.gpu_mem_gb or float("inf")) else "its vLLM server's GPUs cannot hold the model")
    fixes = "\n".join(f"      - {s}" for s in suggestions(cfg))
    return f"GPU memory: {why}\n{textwrap.indent(plan.breakdown(), '    ')}\n    would fit with:\n{fixes}"


def memory_problems(cfg: DictConfig) -> list[str]:
    """[the refusal with breakdown and suggestions] when `cfg`'s plan exceeds its GPUs; [] otherwise."""
    plan = gpu_memory_plan(cfg)
    if plan is None or plan.fits:
        return []
    return [over_memory_message(cfg, plan)]


def refuse_if_over_gpu_memory(cfg: DictConfig) -> None:
    """Raise ConfigError (before any model loads) when the job's plan exceeds its GPUs' memory."""
    from r1lab.validation import ConfigError

    if found := memory_problems(cfg):
        raise ConfigError(found[0])
