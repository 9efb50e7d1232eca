"""Tiny base models that r1lab pretrains itself: word-level tokenizer, HF `Trainer`, cached by content.

`model.pretrain` (conf/model/tiny-*.yaml) names a corpus (r1lab/base_corpus.py: `primed` or `unprimed`)
and a schedule; `ensure_base_model` pretrains a Qwen2 of `model.tiny`'s shape on it with HF's `Trainer`
and caches it under `cache_dir`, keyed by a hash of architecture + corpus + schedule (+ the instruct SFT,
r1lab/tiny_instruct.py), so every run and sweep job after the first loads it. Build ahead of time with
`python -m r1lab.tiny_base [overrides]`; otherwise the first run builds it, with the Trainer's progress bar.
A primed base may first train `check_first_steps` steps on check drills alone (a stage of its own, then the
corpus): the check is what a ~1M base learnt alone and not in the mix.

Deterministic from its config: the corpus stream is seeded and the Trainer is seeded. A one-process build
trains on every CPU it may use (`build_threads`): on this 2-core machine 2 threads built the same bytes as 1,
1.4x as fast, so the thread count is not part of the cache key. `processes` > 1 trains data-parallel
under torchrun, one thread each; that does change the weights, and is part of the key.

The tokenizer is word-level (HF `tokenizers`' WordLevel model and trainer): one token per integer the
corpus and prompts can hold (spaces are their own tokens there), one per operator with its spaces, one per word, the think/answer tags and
ChatML's special tokens, one per check with its leading space; decoding concatenates tokens, so text round-trips exactly. It is saved as a
`PreTrainedTokenizerFast` and loaded as saved (r1lab/tokenizer_loading.py): `AutoTokenizer` would rebuild a
Qwen2 directory's tokenizer with Qwen2's own pre-tokenizer and different ids.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from r1lab.base_corpus import CHECKS, CorpusSpec, documents
from r1lab.tokenizer_loading import load_tokenizer  # noqa: F401  (the loader for these tokenizers)
from r1lab.tiny_model import CHATML_TEMPLATE, SPECIAL_TOKENS, qwen2_config

log = logging.getLogger(__name__)

# Bump when the tokenizer, corpus writer or training recipe changes in a way the config does not show.
_RECIPE_VERSION = 8
TAGS = ["<think>", "</think>", "<answer>", "</answer>"]
UNKNOWN = "<|unk|>"
# An operator with its two spaces, a word with its leading space, a number with its sign (never with a
# space: one token per integer wherever it stands, so copying a number is copying one token), a newline,
# a bracket alone (so "(" before a number is one token in think lines and answers alike), another
# character with its leading space, or a lone space.
_PIECE = r" [-+*/=] | ?[A-Za-z]+|-?\d+|\n|[()]| ?[^\sA-Za-z\d()]| "
# Integers the tokenizer holds whole: every value the corpus writes fits (3 numbers up to 30: 30*30*30).
NUMBER_RANGE = range(0, 1000)


def base_key(arch: Mapping, pretrain: Mapping, sft: Mapping | None = None) -> dict:
    # `processes` is in it: the same recipe built in 2 processes rounds differently, and that base took off
    # under RL less often than the 1-process one (README, "Tiny bases").
    return {"arch": dict(arch), "pretrain": dict(pretrain), "sft": None if sft is None else dict(sft),
            "recipe": _RECIPE_VERSION}


def base_model_path(arch: Mapping, pretrain: Mapping, cache_dir: str | os.PathLike, sft: Mapping | None = None) -> Path:
    digest = hashlib.sha256(json.dumps(base_key(arch, pretrain, sft), sort_keys=True).encode()).hexdigest()[:12]
    kind = "instruct" if sft else "base"
    return Path(cache_dir).expanduser() / f"tiny-{kind}-{pretrain['corpus']}-{digest}"


def ensure_base_model(arch: Mapping, pretrain: Mapping, cache_dir: str | os.PathLike,
                      sft: Mapping | None = None) -> Path:
    """The cached pretrained base (or, with `sft`, its instruct variant), built on first use."""
    path = base_model_path(arch, pretrain, cache_dir, sft)
    if (path / "config.json").exists():
        return path
    if sft:
        from r1lab.tiny_instruct import build_instruct

        base = ensure_base_model(arch, pretrain, cache_dir)
        return _build_atomically(path, lambda out: build_instruct(base, sft, out))
    return _build_atomically(path, lambda out: pretrain_base(arch, pretrain, out))


def _build_atomically(path: Path, build) -> Path:
    """Build into a staging dir and rename it into place; concurrent builders race safely."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=path.name + ".building-", dir=path.parent))
    try:
        build(staging)
        try:
            os.rename(staging, path)
        except OSError:
            if not (path / "config.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


# --- tokenizer ---------------------------------------------------------------------------------


def _vocabulary_text(spec: CorpusSpec, seed: int) -> Iterator[str]:
    """Text that holds every piece the tokenizer must know: corpus documents, prompts, every number."""
    import itertools

    from r1lab.tasks import countdown

    yield from itertools.islice(documents(spec, seed), 2000)
    row = {"nums": [1, 2, 3], "target": 4}
    yield countdown.plain_prompt(row)
    yield "\n".join(m["content"] for m in countdown.chat_messages(row))
    from r1lab.tiny_instruct import vocabulary_text

    yield from vocabulary_text()
    # Negative values the corpus's candidates reach ((a - b) p c), each one token like the positive ones.
    lowest = -spec.max_number * spec.max_number
    yield " ".join(str(n) for n in range(lowest, 0))
    numbers = [str(n) for n in NUMBER_RANGE]
    yield " ".join(numbers) + " -" + " -".join(numbers) + "\n" + "\n".join(numbers) + "[" + "[".join(numbers)
    yield "(" + "(".join(numbers)
    yield "a  b"  # a lone space: what stands between two tags ("<think> </think>") once they are split off


def build_word_tokenizer(spec: CorpusSpec, seed: int):
    """A word-level `PreTrainedTokenizerFast` trained (HF tokenizers' WordLevelTrainer) on the corpus's pieces."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel(unk_token=UNKNOWN))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(_PIECE), behavior="isolated")
    core.decoder = decoders.Fuse()
    trainer = trainers.WordLevelTrainer(special_tokens=[*SPECIAL_TOKENS, UNKNOWN], min_frequency=1,
                                        show_progress=False)
    core.train_from_iterator(_vocabulary_text(spec, seed), trainer)
    # A check is one token with its leading space: its "(" is never the "(" that opens a candidate (which the
    # answer copies), and it follows the value it checks directly (`= 54 (wrong)`).
    core.add_tokens(TAGS + [" " + check for check in CHECKS])
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=UNKNOWN,
        padding_side="left",
        chat_template=CHATML_TEMPLATE,
    )


# --- pretraining -------------------------------------------------------------------------------


def _document_rows(spec: CorpusSpec, tokenizer, seed: int, rows: int, max_length: int) -> list[list[int]]:
    """`rows` corpus documents as token ids, each ending in EOS, one per row (cut at `max_length`).

    Not packed: every document starts at position 0 and attends to nothing else, so the prompt's numbers
    always sit at the same offsets. Packed blocks (documents concatenated and cut) let attention wander
    into the previous document's numbers; a ~1M model then never learned to copy the prompt's numbers.
    """
    docs = documents(spec, seed)
    out: list[list[int]] = []
    while len(out) < rows:
        batch = [next(docs) for _ in range(min(256, rows - len(out)))]
        for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]:
            out.append((ids + [tokenizer.eos_token_id])[:max_length])
    return out


def build_threads() -> int:
    """CPU threads a build trains on: torch's default (OMP_NUM_THREADS when set, else the machine's cores),
    but no more than the CPUs this process may run on (a SLURM job's or `taskset`'s share).

    The weights did not depend on it here: one recipe built on 1 and on 2 threads gave the same bytes
    (tests/test_tiny_base.py checks it on every machine it runs on). On this 2-core machine a step of the 1M
    shape (16 x 150 tokens) took 282 ms on 1 thread and 200 ms on 2.
    """
    import torch

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on macOS
        usable = os.cpu_count() or 1
    return max(1, min(torch.get_num_threads(), usable))


def build_processes(pretrain: Mapping) -> int:
    """How many processes a build trains in: `pretrain.processes`, lowered until each holds an equal share of
    the batch."""
    batch = int(pretrain["batch_size"])
    return max(n for n in range(1, int(pretrain.get("processes", 1)) + 1) if batch % n == 0)


def pretrain_base(arch: Mapping, pretrain: Mapping, out_dir: Path) -> None:
    """Pretrain a Qwen2 of shape `arch` on the corpus of `pretrain` with HF's Trainer; save model + tokenizer.

    With `processes` > 1 the same code runs data-parallel under `torchrun` (gloo, one thread each). On this
    2-core machine two processes train a step 1.37x as fast as one, as two threads in one process do (1.41x);
    beside two other busy processes they took 286 ms a step where one or two threads took 721-748 ms
    (README, "Tiny bases"). On an idle machine one process on all its threads is as fast, and keeps the
    1-process weights.
    """
    processes = build_processes(pretrain)
    if processes == 1:
        _pretrain(arch, pretrain, out_dir)
        return
    job = out_dir / "build-job.json"
    job.write_text(json.dumps({"arch": dict(arch), "pretrain": dict(pretrain), "out_dir": str(out_dir)}))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", "r1lab.tiny_base", "--pretrain-worker", str(job)]
    log.info("pretraining in %d processes (torchrun, gloo)", processes)
    worker = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        code = worker.wait()
    finally:
        if worker.poll() is None:  # interrupted here: take the training processes down too
            worker.terminate()
            worker.wait()
    if code != 0:
        raise RuntimeError(f"building the base failed in its training processes (torchrun exit {code}; "
                           "their output is above)")
    job.unlink()


def _pretrain(arch: Mapping, pretrain: Mapping, out_dir: Path) -> None:
    """The build itself, in this process (one of `torchrun`'s when WORLD_SIZE is set)."""
    import torch
    from transformers import GenerationConfig, Qwen2ForCausalLM, set_seed

    spec = CorpusSpec.from_config(pretrain["data"])
    seed = int(pretrain["seed"])
    # Under torchrun each process has OMP_NUM_THREADS=1; alone, the build takes every core it may use.
    threads = build_threads()
    torch.set_num_threads(threads)
    set_seed(seed)
    tokenizer = build_word_tokenizer(spec, seed)
    steps, batch, block = int(pretrain["max_steps"]), int(pretrain["batch_size"]), int(pretrain["block_size"])
    config = qwen2_config(arch, tokenizer)
    model = Qwen2ForCausalLM(config)
    drill_steps = int(pretrain["check_first_steps"]) if spec.kind == "primed" else 0
    drill_history: list[dict] = []
    if drill_steps:
        # Check drills alone first: a ~1M base learnt the check from 1,500-4,000 steps of nothing but drills
        # in some starts (P(this works) 0.96-0.99 at equal pairs, 0.01-0.05 at unequal), never when they
        # were mixed in.
        log.info("pretraining on check drills first: %d steps x %d documents", drill_steps, batch)
        drills = dataclasses.replace(spec, trace_share=0.0, enumeration_share=0.0, check_share=1.0)
        drill_rows = _document_rows(drills, tokenizer, seed + 2, drill_steps * batch, block)
        drill_history = _train(model, tokenizer, pretrain, out_dir, drill_rows, drill_steps, seed,
                               "base: check drills")[0].state.log_history
    rows = _document_rows(spec, tokenizer, seed + 1, steps * batch, block)
    log.info("pretraining a %.2fM-parameter base on the %s corpus: %d steps x %d documents (<= %d tokens), "
             "%d thread(s) per process", model.num_parameters() / 1e6, spec.kind, steps, batch, block, threads)
    trainer, result = _train(model, tokenizer, pretrain, out_dir, rows, steps, seed, f"base: {spec.kind} corpus")
    if not trainer.is_world_process_zero():
        return
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    shutil.rmtree(out_dir / "trainer", ignore_errors=True)
    (out_dir / "pretraining.json").write_text(json.dumps({
        **base_key(arch, pretrain), "parameters": model.num_parameters(),
        "train_runtime_s": result.metrics.get("train_runtime"), "final_loss": result.training_loss,
        "processes": trainer.args.world_size, "threads": threads,
        "log_history": trainer.state.log_history, "check_drills_log_history": drill_history,
    }, indent=1))


def _train(model, tokenizer, pretrain: Mapping, out_dir: Path, rows: list[list[int]], steps: int, seed: int,
           desc: str):
    """One pass of HF's Trainer over `rows` (one document per row), `steps` steps, AdamW cosine.

    Under torchrun each of the WORLD_SIZE processes takes an equal share of every batch of `batch_size` rows."""
    import datasets
    import torch
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    from r1lab.terminal import use_run_progress

    world = int(os.environ.get("WORLD_SIZE", "1"))
    batch = int(pretrain["batch_size"])
    args = TrainingArguments(
        output_dir=str(out_dir / "trainer"),
        max_steps=steps,
        per_device_train_batch_size=batch // world,
        ddp_backend="gloo" if world > 1 else None,
        ddp_find_unused_parameters=False,
        learning_rate=float(pretrain["lr"]),
        lr_scheduler_type="cosine",
        warmup_steps=int(pretrain["warmup_steps"]),
        weight_decay=0.01,
        logging_steps=max(1, steps // 20),
        save_strategy="no",
        report_to=[],
        seed=seed,
        data_seed=seed,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        # Rows are padded to the longest of their batch: batches of similar lengths (an arithmetic
        # document is ~3x a one-candidate trace) spend the compute on tokens, not padding.
        train_sampling_strategy="group_by_length",
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=datasets.Dataset.from_dict({"input_ids": rows}),
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
    )
    # One bar with the loss instead of a printed dict per logging step (the first run's terminal stays short).
    use_run_progress(trainer, desc, {"loss": ("loss", "{:.3f}")})
    return trainer, trainer.train()


def ensure_from_config(cfg) -> Path:
    """The model of a composed r1lab config whose `model.pretrain` is set (its `variant.sft` too)."""
    from omegaconf import OmegaConf

    def plain(node: Any) -> Any:
        return None if node is None else OmegaConf.to_container(node, resolve=True)

    return ensure_base_model(plain(cfg.model.tiny), plain(cfg.model.pretrain), cfg.cache_dir,
                             plain(cfg.variant.get("sft")))


def main(argv: list[str] | None = None) -> int:
    """`python -m r1lab.tiny_base [hydra overrides]`: build (or find) the base of that config and print its path."""
    from r1lab.config_tree import compose

    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO if int(os.environ.get("RANK", "0")) == 0 else logging.WARNING)
    if argv[:1] == ["--pretrain-worker"]:  # one of pretrain_base's torchrun processes
        job = json.loads(Path(argv[1]).read_text())
        _pretrain(job["arch"], job["pretrain"], Path(job["out_dir"]))
        return 0
    cfg = compose(argv)
    if cfg.model.get("pretrain") is None:
        print(f"model={cfg.model.size} is not pretrained by r1lab (no model.pretrain)", file=sys.stderr)
        return 2
    print(ensure_from_config(cfg))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
