"""One GPU check: measured peak memory beside r1lab's memory plan, step time, tokens/s and MFU, per algorithm.

Run on a CUDA machine from the repo root: python bench/gpu_check.py  (under 8 minutes on one H100/H200).
`python bench/gpu_check.py --smoke` runs the same code on the CPU with a tiny shape (fp32): a test of the script,
not a measurement.

No weights and no network: models are random-init Qwen2 with the shapes of Qwen2.5-0.5B and -1.5B as
`conf/model/*.yaml` declares them (`model.architecture`), saved once to a temporary folder with a synthetic
tokenizer (bench/gpu_step.py's). Each run is r1lab's own trainer for a composed config (`model=<size>
algo=<grpo|ppo|prime> adapter=<none|lora> dist=<...>`, HF generate, bf16, gradient checkpointing), in its own
subprocess so that DeepSpeed and CUDA memory start clean: full fine-tuning under ZeRO-2 for the first size and
ZeRO-3 for the second (one rank each), LoRA without DeepSpeed. A random-init model almost never samples EOS, so
every completion runs to --completion-tokens and each step does a fixed amount of work.

Per run it prints the memory plan's peak for that config (`r1lab/launching/memory_plan.py`, with gpu_mem_gb set
to this GPU's memory), the measured peak (torch's max allocated and max reserved, plus the plan's 1 GiB context
allowance so the two compare) and their ratio, the median step time after one warm-up step, generation tokens/s
(completion tokens / time in TRL's `_generate`), training tokens/s ((prompt + completion) tokens / the rest of
the step: scoring, reference/critic/PRM passes, forward, backward, optimizer) and MFU of the policy (6 N per
trained token and 2 N per generated token over the measured bf16 matmul peak; the critic's and PRM's FLOPs are
left out, so PPO's and PRIME's MFU is understated).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

from gpu_step import clock_steps, flops_params, machine, matmul_peak, sync, synthetic_tokenizer  # noqa: E402
from r1lab.config_tree import compose  # noqa: E402

GIB = 2**30
SMOKE_SHAPE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
               "num_key_value_heads": 2, "vocab_size": 2048, "tie_word_embeddings": True}
FULL_DIST = ("zero2", "zero3")  # full fine-tuning's ZeRO stage, by size (first, second)


def build_model(architecture: dict, out_dir: Path, dtype: str) -> None:
    """A random-init Qwen2 of `architecture` and the synthetic tokenizer, saved to `out_dir`."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = synthetic_tokenizer(int(architecture["vocab_size"]))
    config = Qwen2Config(**architecture, max_position_embeddings=32768, bos_token_id=None,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(dtype=getattr(torch, dtype))
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def run_overrides(opts, size: str, algo: str, adapter: str, dist: str, model_dir: Path, gpu_mem_gb: float) -> list[str]:
    """The composed config of one run: r1lab's keys, shrunk to a few short steps."""
    model = "qwen2.5-0.5b" if size == "tiny" else f"qwen2.5-{size}"
    overrides = ["experiment=none", f"model={model}", f"algo={algo}", f"adapter={adapter}", f"dist={dist}",
                 "rollout=hf", "logger=none", f"model.name_or_path={model_dir}", "model.resources.gpus=1",
                 f"gpu_mem_gb={gpu_mem_gb}",
                 f"train.max_steps={1 + opts.steps}", f"train.per_device_batch_size={opts.completions}",
                 f"train.max_prompt_length={opts.prompt_tokens}", f"train.max_completion_length={opts.completion_tokens}",
                 f"algo.num_generations={opts.group}", "train.save_steps=100000", "eval.every_steps=0",
                 "samples.per_step=0"]
    if algo in ("ppo", "prime"):
        overrides.append("algo.mini_batches=1")
    if opts.smoke:
        overrides += ["model.dtype=float32", "train.bf16=false", "train.gradient_checkpointing=false"]
        overrides += [f"model.architecture.{k}={v}" for k, v in SMOKE_SHAPE.items()]
    else:
        overrides += ["train.bf16=true", "train.gradient_checkpointing=true"]
    return overrides


def one_run(overrides: list[str], device: str) -> dict:
    """Train one composed config with r1lab's trainer (runs in a subprocess); returns its figures."""
    import torch
    from datasets import Dataset
    from transformers import PreTrainedTokenizerFast, PrinterCallback

    from r1lab.adapters import trainer_adapter_kwargs
    from r1lab.algos import algorithm_module
    from r1lab.launching.memory_plan import gpu_memory_plan
    from r1lab.train import _single_process_distributed_env
    from r1lab.trl_args import trainer_kwargs

    cfg = compose(overrides)
    plan = gpu_memory_plan(cfg)
    _single_process_distributed_env(cfg)
    model_dir = str(cfg.model.name_or_path)
    # The synthetic word-level tokenizer (AutoTokenizer would read the config's qwen2 and load Qwen's class).
    tokenizer = PreTrainedTokenizerFast.from_pretrained(model_dir, padding_side="left")
    prompt_words = int(cfg.train.max_prompt_length)
    vocab = len(tokenizer)
    prompts = [" ".join(f"t{(7 * i + j) % (vocab - 2) + 2}" for j in range(prompt_words)) for i in range(256)]

    def random_reward(completions, **kwargs):
        return torch.rand(len(completions)).tolist()  # non-zero advantages, so every backward is real

    algo = algorithm_module(cfg.algo.name)
    with tempfile.TemporaryDirectory() as out:
        args = algo.Config(**trainer_kwargs(cfg, output_dir=out, run_name="gpu_check", report_to=[],
                                            reward_weights=[1.0], algo_fields=algo.config_fields(cfg.algo)),
                           use_cpu=device == "cpu", disable_tqdm=True)
        trainer = algo.Trainer(model=model_dir, **trainer_adapter_kwargs(cfg), reward_funcs=[random_reward], args=args,
                               train_dataset=Dataset.from_dict({"prompt": prompts}), processing_class=tokenizer)
        # TRL's `_generate(prompts)` returns (prompt_ids, completion_ids, ...) as lists of token ids.
        steps = clock_steps(trainer, torch, device, "_generate", lambda result: (
            sum(len(c) for c in result[1]), sum(len(p) for p in result[0])))
        trainer.remove_callback(PrinterCallback)
        policy = trainer.accelerator.unwrap_model(trainer.model)
        n_flops = flops_params(policy.get_base_model() if hasattr(policy, "get_base_model") else policy)
        trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        trainer.train()

    timed = steps[1:] or steps
    step_s = statistics.median(s["step_s"] for s in timed)
    gen_s = statistics.median(s["gen_s"] for s in timed)
    result = {"step_s": step_s, "gen_s": gen_s, "trainable": trainable, "n_flops": n_flops,
              "gen_tokens": statistics.median(s["gen_tokens"] for s in timed),
              "train_tokens": statistics.median(s["train_tokens"] for s in timed),
              "plan_gb": plan.peak_gb if plan is not None else None}
    if device == "cuda":
        result["allocated_gb"] = torch.cuda.max_memory_allocated() / GIB
        result["reserved_gb"] = torch.cuda.max_memory_reserved() / GIB
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, a tiny shape, fp32: tests the script only")
    parser.add_argument("--sizes", default=None, help="comma-separated of 0.5b, 1.5b (default both; tiny with --smoke)")
    parser.add_argument("--algos", default="grpo,ppo,prime")
    parser.add_argument("--adapters", default="none,lora", help="none (full, ZeRO-2/3 by size) and/or lora (no ZeRO)")
    parser.add_argument("--completions", type=int, default=16, help="completions per step (one device pass)")
    parser.add_argument("--group", type=int, default=4, help="completions per prompt")
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--completion-tokens", type=int, default=128)
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    parser.add_argument("--budget-s", type=float, default=450, help="skip the runs left after this many seconds")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: JSON overrides of one run in a subprocess
    opts = parser.parse_args()
    device = "cpu" if opts.smoke else "cuda"
    if opts.one:
        print("GPU_CHECK_RESULT " + json.dumps(one_run(json.loads(opts.one), device)), flush=True)
        return

    import torch

    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench/gpu_check.py: no CUDA GPU on this machine; nothing measured. Run it on a GPU machine "
                 "(or `--smoke` to test the script on the CPU).")
    sizes = (opts.sizes or ("tiny" if opts.smoke else "0.5b,1.5b")).split(",")
    gpu_mem_gb = round(torch.cuda.get_device_properties(0).total_memory / GIB, 1) if device == "cuda" else 80
    peak = matmul_peak(torch, device)
    print(machine(torch))
    print(f"measured matmul peak: {peak / 1e12:.1f} TFLOP/s; {opts.completions} completions per step (groups of "
          f"{opts.group}), {opts.prompt_tokens} prompt + {opts.completion_tokens} completion tokens, HF generate, "
          f"{'fp32, no checkpointing (smoke)' if opts.smoke else 'bf16, gradient checkpointing'}; median of "
          f"{opts.steps} steps after a warm-up; plan with gpu_mem_gb={gpu_mem_gb:g}\n")
    header = (f"{'size':5} {'algo':5} {'adapter':7} {'dist':6} {'trained M':>9} {'plan GB':>8} {'alloc GB':>8} "
              f"{'resv GB':>8} {'ratio':>6} {'step s':>7} {'gen tok/s':>10} {'train tok/s':>11} {'MFU':>6}")
    print(header)
    started = time.time()
    with tempfile.TemporaryDirectory() as models:
        for index, size in enumerate(sizes):
            model_name = "qwen2.5-0.5b" if size == "tiny" else f"qwen2.5-{size}"
            architecture = dict(SMOKE_SHAPE) if size == "tiny" else dict(compose([f"model={model_name}"]).model.architecture)
            model_dir = Path(models) / size
            build_model(architecture, model_dir, "float32" if opts.smoke else "bfloat16")
            for algo in opts.algos.split(","):
                for adapter in opts.adapters.split(","):
                    dist = FULL_DIST[index % 2] if adapter == "none" else "single"
                    label = f"{size:5} {algo:5} {adapter:7} {dist:6}"
                    if time.time() - started > opts.budget_s:
                        print(f"{label} skipped: past --budget-s {opts.budget_s:g}", flush=True)
                        continue
                    overrides = run_overrides(opts, size, algo, adapter, dist, model_dir, gpu_mem_gb)
                    print(label + " " + format_row(run_child(overrides, opts), peak), flush=True)
    print(f"\ntotal {time.time() - started:.0f} s. ratio = (max reserved + 1 GiB context) / plan; MFU counts the "
          "policy's FLOPs only. The plan is an estimate: see r1lab/launching/memory_plan.py for what it leaves out.")


def run_child(overrides: list[str], opts) -> dict | str:
    """One run in a fresh Python process: its result, or the last line of its error."""
    argv = [sys.executable, __file__, "--one", json.dumps(overrides)] + (["--smoke"] if opts.smoke else [])
    out = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
    for line in out.stdout.splitlines():
        if line.startswith("GPU_CHECK_RESULT "):
            return json.loads(line.split(" ", 1)[1])
    return (out.stderr.strip().splitlines() or ["no output"])[-1][:200]


def format_row(result: dict | str, peak: float) -> str:
    if isinstance(result, str):
        return f"failed: {result}"
    plan = result["plan_gb"]
    gen_tok_s = result["gen_tokens"] / result["gen_s"] if result["gen_s"] else 0.0
    train_s = result["step_s"] - result["gen_s"]
    train_tok_s = result["train_tokens"] / train_s if train_s > 0 else 0.0
    flops = 2 * result["n_flops"] * result["gen_tokens"] + 6 * result["n_flops"] * result["train_tokens"]
    mfu = flops / result["step_s"] / peak
    if "reserved_gb" in result:
        measured = result["reserved_gb"] + 1.0
        memory = f"{plan:8.2f} {result['allocated_gb']:8.2f} {result['reserved_gb']:8.2f} {measured / plan:6.2f}"
    else:
        memory = f"{plan:8.2f} {'n/a':>8} {'n/a':>8} {'n/a':>6}"
    return (f"{result['trainable'] / 1e6:9.2f} {memory} {result['step_s']:7.2f} {gen_tok_s:10.0f} "
            f"{train_tok_s:11.0f} {mfu:6.1%}")


if __name__ == "__main__":
    main()
