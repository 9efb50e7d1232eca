"""A Qwen2-architecture model small enough for a laptop CPU, built locally and cached.

No weights can be downloaded in CI or on an offline laptop, so `model=tiny` builds a random-init
Qwen2 and a byte-level BPE tokenizer trained on Countdown prompt text, with Qwen's ChatML chat
template and left padding. Both are cached under `cache_dir`, keyed by a hash of the architecture,
so a sweep of tiny runs builds them once; concurrent builders race safely (atomic rename). Each entry
lists its files' SHA-256 in MANIFEST; an entry that no longer matches it (a disk error, a hand edit) is
rebuilt, with a line naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

# Bump when the tokenizer corpus or build recipe changes, so stale caches are not reused.
_RECIPE_VERSION = 1

# Qwen2.5's ChatML shape, reduced to what r1lab's prompts use.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MANIFEST = "r1lab-manifest.json"


def tiny_model_path(arch: Mapping, cache_dir: str | os.PathLike) -> Path:
    """Where the tiny model for `arch` lives (built or not)."""
    key = json.dumps({"arch": dict(arch), "recipe": _RECIPE_VERSION}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return Path(cache_dir).expanduser() / f"tiny-qwen2-{digest}"


def ensure_tiny_model(arch: Mapping, cache_dir: str | os.PathLike) -> Path:
    """Return the path of the cached tiny model for `arch`, building it on first use."""
    path = tiny_model_path(arch, cache_dir)
    if path.exists():
        problem = cache_entry_problem(path)
        if problem is None:
            return path
        print(f"r1lab: the cached tiny model {path} is corrupt ({problem}); rebuilding it", flush=True)
        aside = path.with_name(f"{path.name}.corrupt-{os.getpid()}")
        os.rename(path, aside)
        shutil.rmtree(aside, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=path.name + ".building-", dir=path.parent))
    try:
        _build(arch, staging)
        try:
            os.rename(staging, path)
        except OSError:
            # Another job finished the same build first; its copy is identical.
            if cache_entry_problem(path) is not None:
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.iterdir()) if p.is_file() and p.name != MANIFEST}


def cache_entry_problem(path: Path) -> str | None:
    """What is wrong with a cached tiny model (a missing, changed or unlisted file), or None."""
    try:
        listed = json.loads((path / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return f"{MANIFEST} is missing or unreadable"
    found = _digests(path)
    for name in sorted(set(listed) | set(found)):
        if listed.get(name) != found.get(name):
            return f"{name} is {'missing' if name not in found else 'not as built'}"
    return None


def _tokenizer_corpus(rows: int = 2000, seed: int = 0) -> Iterator[str]:
    """Countdown prompts in both prompt styles plus worked equations: the text the tiny model sees."""
    from r1lab.tasks import countdown

    rng = random.Random(seed)
    for _ in range(rows):
        nums = [rng.randint(1, 99) for _ in range(rng.choice((3, 4)))]
        row = {"nums": nums, "target": rng.randint(1, 99)}
        yield countdown.plain_prompt(row)
        yield "\n".join(m["content"] for m in countdown.chat_messages(row))
        ops = [rng.choice("+-*/") for _ in nums[1:]]
        equation = " ".join(f"{n} {op}" for n, op in zip(nums, ops)) + f" {nums[-1]}"
        yield f"</think>\n<answer> {equation} = {row['target']} </answer>"


def build_tokenizer(vocab_size: int):
    """A byte-level BPE tokenizer (any text encodes) with Qwen's special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(_tokenizer_corpus(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        chat_template=CHATML_TEMPLATE,
    )


def qwen2_config(arch: Mapping, tokenizer):
    """The Qwen2 config of a tiny architecture `arch` over `tokenizer` (tied embeddings, no BOS)."""
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=int(arch["hidden_size"]),
        intermediate_size=int(arch["intermediate_size"]),
        num_hidden_layers=int(arch["num_hidden_layers"]),
        num_attention_heads=int(arch["num_attention_heads"]),
        num_key_value_heads=int(arch["num_key_value_heads"]),
        max_position_embeddings=int(arch["max_position_embeddings"]),
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _build(arch: Mapping, out_dir: Path) -> None:
    import torch
    from transformers import GenerationConfig, Qwen2ForCausalLM

    tokenizer = build_tokenizer(int(arch["vocab_size"]))
    config = qwen2_config(arch, tokenizer)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / MANIFEST).write_text(json.dumps(_digests(out_dir), indent=1) + "\n")
