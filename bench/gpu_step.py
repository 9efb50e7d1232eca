"""One GRPO step on a GPU: generation tokens/s, training tokens/s and MFU, for Qwen2.5-0.5B- and 1.5B-shaped models.

Run on a CUDA machine from the repo root: python bench/gpu_step.py  (a few minutes on one H100/H200).
Needs only torch, transformers and trl; no network: the models are random-init Qwen2 configs with the shapes
of Qwen2.5-0.5B and -1.5B (hidden size, layers, heads, vocabulary 151,936, tied embeddings) and the tokenizer
is synthetic (one word per id), so nothing is downloaded. A random-init model almost never samples EOS, so
every completion runs to --completion-tokens: the step does a fixed amount of work.

Settings: bf16 weights and autocast, TRL's GRPOTrainer with plain HF `generate` (no vLLM), beta 0 (no
reference model), --completions completions per optimizer step (default 512, the issue's step) in groups of 8,
split into micro-batches of --micro-batch with gradient accumulation, prompts of --prompt-tokens tokens,
one warm-up step, then --steps timed steps.

Figures per model:
- generation tokens/s: completion tokens / time in TRL's `_generate_and_score_completions` (generation, decoding,
  rewards; no old-logprob pass, since steps_per_generation = gradient_accumulation_steps);
- training tokens/s: (prompt + completion) tokens / the rest of the optimizer step (forward, backward, AdamW);
- MFU: achieved FLOP/s over the measured bf16 matmul peak of this GPU (an 8192^3 matmul, best of 20), with
  6 N FLOPs per trained token and 2 N per generated token (N = non-embedding parameters + the LM head; attention
  FLOPs are left out, so MFU is slightly understated).

On a machine without CUDA it says so and exits with status 1. `--device cpu --sizes tiny` runs the same code on
a tiny model on the CPU (fp32), a smoke test of the script, not a benchmark.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

VOCAB = 151_936
SHAPES = {
    # Qwen2.5-0.5B and -1.5B config.json: hidden, intermediate, layers, attention heads, KV heads.
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, vocab_size=VOCAB),
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, vocab_size=VOCAB),
    # For --device cpu smoke tests of this script only.
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=2048),
}
GROUP = 8


def machine(torch) -> str:
    if torch.cuda.is_available():
        device = f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()} | CUDA {torch.version.cuda}"
    else:
        device = "CPU only"
    return (f"{platform.platform()} | {device} | torch {torch.__version__} | Python {sys.version.split()[0]} | "
            f"{datetime.datetime.now():%Y-%m-%d %H:%M}")


def matmul_peak(torch, device: str) -> float:
    """Measured dense matmul FLOP/s: bf16 8192^3 on a GPU (fp32 1024^3 on a CPU), best of 20."""
    n, dtype = (8192, torch.bfloat16) if device == "cuda" else (1024, torch.float32)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(20):
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best


def synthetic_tokenizer(vocab_size: int):
    """A word-level tokenizer with one word per id ("t0", "t1", ...), so every sampled id decodes."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_end|>"]
    vocab = {token: i for i, token in enumerate(specials)}
    vocab.update({f"t{i}": i for i in range(len(specials), vocab_size)})
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|endoftext|>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   padding_side="left")


def flops_params(model) -> int:
    """Parameters that cost 2 FLOPs per token forward: all but the embedding lookup (the tied head counts)."""
    embedding = model.get_input_embeddings().weight.numel()
    return sum(p.numel() for p in model.parameters()) - embedding + model.get_output_embeddings().weight.numel()


def one_model(size: str, opts, device: str, peak: float) -> dict:
    import torch
    from datasets import Dataset
    from transformers import GenerationConfig, PrinterCallback, Qwen2Config, Qwen2ForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    shape = SHAPES[size]
    tokenizer = synthetic_tokenizer(shape["vocab_size"])
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    config = Qwen2Config(**shape, max_position_embeddings=32768, tie_word_embeddings=True, bos_token_id=None,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(dtype=dtype)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    n_flops = flops_params(model)

    prompts = [" ".join(f"t{(7 * i + j) % (shape['vocab_size'] - 2) + 2}" for j in range(opts.prompt_tokens))
               for i in range(opts.completions)]
    dataset = Dataset.from_dict({"prompt": prompts})

    def random_reward(completions, **kwargs):
        return torch.rand(len(completions)).tolist()  # non-zero advantages, so the backward is real

    accumulation = opts.completions // opts.micro_batch
    with tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(
            output_dir=out, max_steps=1 + opts.steps, learning_rate=1e-6, bf16=device == "cuda",
            use_cpu=device == "cpu", per_device_train_batch_size=opts.micro_batch,
            gradient_accumulation_steps=accumulation, num_generations=GROUP, beta=0.0,
            max_completion_length=opts.completion_tokens, temperature=1.0, logging_steps=1, save_strategy="no",
            report_to=[], gradient_checkpointing=opts.gradient_checkpointing, seed=0, disable_tqdm=True,
        )
        trainer = GRPOTrainer(model=model, reward_funcs=random_reward, args=args, train_dataset=dataset,
                              processing_class=tokenizer)

        steps = clock_steps(trainer, torch, device, "_generate_and_score_completions", lambda result: (
            int(result["completion_mask"].sum()), int(result["prompt_mask"].sum())))
        trainer.remove_callback(PrinterCallback)  # the per-step log dicts; the table below says it all
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        trainer.train()

    timed = steps[1:]  # the first step warms up kernels and the allocator
    step_s = statistics.median(s["step_s"] for s in timed)
    gen_s = statistics.median(s["gen_s"] for s in timed)
    gen_tokens = statistics.median(s["gen_tokens"] for s in timed)
    train_tokens = statistics.median(s["train_tokens"] for s in timed)
    train_s = step_s - gen_s
    result = {
        "size": size, "params_m": sum(p.numel() for p in model.parameters()) / 1e6, "step_s": step_s,
        "gen_s": gen_s, "gen_tok_s": gen_tokens / gen_s, "train_s": train_s, "train_tok_s": train_tokens / train_s,
        "gen_mfu": 2 * n_flops * gen_tokens / gen_s / peak, "train_mfu": 6 * n_flops * train_tokens / train_s / peak,
        "step_mfu": (2 * n_flops * gen_tokens + 6 * n_flops * train_tokens) / step_s / peak,
    }
    if device == "cuda":
        result["peak_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
    del trainer, model
    if device == "cuda":
        torch.cuda.empty_cache()
    return result


def clock_steps(trainer, torch, device: str, method: str, token_counts) -> list[dict]:
    """Time every optimizer step of `trainer` and the calls to its generation `method` within it.

    `token_counts(result)` gives (completion tokens, prompt tokens) of one call's result. Returns the list that
    fills with one dict per step: gen_s, gen_tokens, train_tokens (prompt + completion), step_s.
    """
    from transformers import TrainerCallback

    steps: list[dict] = []
    generate = getattr(trainer, method)

    def timed_generate(*args, **kwargs):
        sync(torch, device)
        started = time.perf_counter()
        result = generate(*args, **kwargs)
        sync(torch, device)
        completion, prompt = token_counts(result)
        steps[-1]["gen_s"] += time.perf_counter() - started
        steps[-1]["gen_tokens"] += completion
        steps[-1]["train_tokens"] += completion + prompt
        return result

    setattr(trainer, method, timed_generate)

    class StepClock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            sync(torch, device)
            steps.append({"gen_s": 0.0, "gen_tokens": 0, "train_tokens": 0, "started": time.perf_counter()})

        def on_step_end(self, args, state, control, **kwargs):
            sync(torch, device)
            steps[-1]["step_s"] = time.perf_counter() - steps[-1]["started"]

    trainer.add_callback(StepClock())
    return steps


def sync(torch, device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0.5b,1.5b", help=f"comma-separated, of {', '.join(SHAPES)}")
    parser.add_argument("--completions", type=int, default=512, help="completions per optimizer step")
    parser.add_argument("--micro-batch", type=int, default=64, help="completions per forward/backward")
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--completion-tokens", type=int, default=256)
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    opts = parser.parse_args()
    if opts.completions % opts.micro_batch or opts.micro_batch % GROUP:
        parser.error(f"--completions must be a multiple of --micro-batch, and that a multiple of {GROUP}")

    import torch

    if opts.device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench/gpu_step.py: no CUDA GPU on this machine; nothing measured. Run it on a GPU machine "
                 "(or `--device cpu --sizes tiny` to smoke-test the script).")
    print(machine(torch))
    peak = matmul_peak(torch, opts.device)
    print(f"measured matmul peak: {peak / 1e12:.1f} TFLOP/s ({'bf16 8192^3' if opts.device == 'cuda' else 'fp32 1024^3'})")
    print(f"one GRPO step: {opts.completions} completions (groups of {GROUP}, micro-batches of {opts.micro_batch}), "
          f"{opts.prompt_tokens} prompt + {opts.completion_tokens} completion tokens, "
          f"{'bf16' if opts.device == 'cuda' else 'fp32'}, HF generate, beta 0, "
          f"gradient checkpointing {'on' if opts.gradient_checkpointing else 'off'}; median of {opts.steps} steps\n")
    header = (f"{'model':6} {'params M':>9} {'step s':>7} {'gen s':>7} {'gen tok/s':>10} {'gen MFU':>8} "
              f"{'train s':>8} {'train tok/s':>12} {'train MFU':>10} {'step MFU':>9}")
    print(header + (f" {'peak GB':>8}" if opts.device == "cuda" else ""))
    for size in opts.sizes.split(","):
        r = one_model(size.strip(), opts, opts.device, peak)
        line = (f"{r['size']:6} {r['params_m']:9.1f} {r['step_s']:7.2f} {r['gen_s']:7.2f} {r['gen_tok_s']:10.0f} "
                f"{r['gen_mfu']:8.1%} {r['train_s']:8.2f} {r['train_tok_s']:12.0f} {r['train_mfu']:10.1%} "
                f"{r['step_mfu']:9.1%}")
        print(line + (f" {r['peak_mem_gb']:8.1f}" if "peak_mem_gb" in r else ""), flush=True)


if __name__ == "__main__":
    main()
