"""Tiny base models that r1lab pretrains itself: word-level tokenizer, HF `Trainer`, cached by content.

`model.pretrain` (conf/model/tiny-*.yaml) names a corpus (r1lab/base_corpus.py: `primed` or `unprimed`)
and a schedule; `ensure_base_model` pretrains a Qwen2 of `model.tiny`'s shape on it with HF's `Trainer`
and caches it under `cache_dir`, keyed by a hash of architecture + corpus + schedule (+ the instruct SFT,
r1lab/tiny_instruct.py), so every run and sweep job after the first loads it. Build ahead of time with
`python -m r1lab.tiny_base [overrides]`; otherwise the first run builds it, with the Trainer's progress bar.
A primed base may first train `check_first_steps` steps on check drills alone (a stage of its own, then the
corpus): the check is what a ~1M base learnt alone and not in the mix.

Deterministic from its config: the corpus stream is seeded, the Trainer is seeded, and training runs on
one CPU thread (one thread is also ~40x faster than two on a busy 2-core machine).

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


def pretrain_base(arch: Mapping, pretrain: Mapping, out_dir: Path) -> None:
    """Pretrain a Qwen2 of shape `arch` on the corpus of `pretrain` with HF's Trainer; save model + tokenizer."""
    import torch
    from transformers import GenerationConfig, Qwen2ForCausalLM, set_seed

    spec = CorpusSpec.from_config(pretrain["data"])
    seed = int(pretrain["seed"])
    torch.set_num_threads(1)
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
        drill_history = _train(model, tokenizer, pretrain, out_dir, drill_rows, drill_steps, seed)[0].state.log_history
    rows = _document_rows(spec, tokenizer, seed + 1, steps * batch, block)
    log.info("pretraining a %.2fM-parameter base on the %s corpus: %d steps x %d documents (<= %d tokens)",
             model.num_parameters() / 1e6, spec.kind, steps, batch, block)
    trainer, result = _train(model, tokenizer, pretrain, out_dir, rows, steps, seed)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    shutil.rmtree(out_dir / "trainer", ignore_errors=True)
    (out_dir / "pretraining.json").write_text(json.dumps({
        **base_key(arch, pretrain), "parameters": model.num_parameters(),
        "train_runtime_s": result.metrics.get("train_runtime"), "final_loss": result.training_loss,
        "log_history": trainer.state.log_history, "check_drills_log_history": drill_history,
    }, indent=1))


def _train(model, tokenizer, pretrain: Mapping, out_dir: Path, rows: list[list[int]], steps: int, seed: int):
    """One pass of HF's Trainer over `rows` (one document per row), `steps` steps, AdamW cosine."""
    import datasets
    import torch
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    batch = int(pretrain["batch_size"])
    args = TrainingArguments(
        output_dir=str(out_dir / "trainer"),
        max_steps=steps,
        per_device_train_batch_size=batch,
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
    import sys

    from r1lab.config_tree import compose

    logging.basicConfig(level=logging.INFO)
    cfg = compose(sys.argv[1:] if argv is None else argv)
    if cfg.model.get("pretrain") is None:
        print(f"model={cfg.model.size} is not pretrained by r1lab (no model.pretrain)", file=sys.stderr)
        return 2
    print(ensure_from_config(cfg))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
