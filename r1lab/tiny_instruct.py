"""`variant=instruct` for r1lab's own tiny bases: the base plus a short SFT on chat examples of OTHER tasks.

The toy analogue of an instruct model (TinyZero's "base vs instruct" ablation): it learns the chat template
and the think/answer tags on three small tasks -- evaluate an expression, pick the larger of two numbers,
sort three numbers -- and never sees a Countdown puzzle, so it knows the format, not the task. Trained with
HF's `Trainer` on the rendered chat text (Mini-R1's system prompt, the user's question, the assistant turn
starting with r1lab's "Let me solve this step by step.\\n<think>" prefill).
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

from r1lab.base_corpus import candidates
from r1lab.tasks.answer_format import SYSTEM_PROMPT, PREFILL

_FORMAT = "Show your work in <think> </think> tags. And return the final answer in <answer> </answer> tags."


def _example(rng: random.Random, low: int, high: int) -> tuple[str, str, str]:
    """(question, think lines, answer) of one of the three SFT tasks."""
    kind = rng.randrange(3)
    nums = [rng.randint(low, high) for _ in range(3)]
    if kind == 0:
        candidate = rng.choice(candidates(nums))
        return f"Compute {candidate.expression}.", candidate.line(), str(candidate.value)
    if kind == 1:
        a, b = nums[:2]
        big, small = max(a, b), min(a, b)
        return f"Which is larger, {a} or {b}?", f"{big} > {small}" if a != b else f"{a} = {b}", str(big)
    ordered = sorted(nums)
    return f"Sort the numbers {nums} from smallest to largest.", " < ".join(map(str, ordered)), str(ordered)


def chat_examples(count: int, seed: int, low: int, high: int) -> Iterator[list[dict[str, str]]]:
    rng = random.Random(seed)
    for _ in range(count):
        question, think, answer = _example(rng, low, high)
        yield [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"{question} {_FORMAT}"},
            {"role": "assistant", "content": f"{PREFILL}\n{think}\n</think>\n<answer> {answer} </answer>"},
        ]


def vocabulary_text() -> Iterator[str]:
    """Words the SFT examples use, for the base tokenizer's vocabulary."""
    for messages in chat_examples(200, 0, 1, 9):
        yield "\n".join(m["content"] for m in messages)


def build_instruct(base: Path, sft: Mapping, out_dir: Path) -> None:
    """Fine-tune the base at `base` on `sft['examples']` chat examples; save model + tokenizer to `out_dir`."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, DataCollatorForLanguageModeling, Trainer, TrainingArguments

    from r1lab.tiny_base import build_threads
    from r1lab.tokenizer_loading import load_tokenizer

    torch.set_num_threads(build_threads())
    tokenizer = load_tokenizer(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    seed = int(sft["seed"])
    texts = [tokenizer.apply_chat_template(messages, tokenize=False)
             for messages in chat_examples(int(sft["examples"]), seed, int(sft["min_number"]), int(sft["max_number"]))]
    data = datasets.Dataset.from_dict(dict(tokenizer(texts, add_special_tokens=False)))
    args = TrainingArguments(
        output_dir=str(out_dir / "trainer"), max_steps=int(sft["max_steps"]),
        per_device_train_batch_size=int(sft["batch_size"]), learning_rate=float(sft["lr"]),
        lr_scheduler_type="cosine", logging_steps=10, save_strategy="no", report_to=[], seed=seed,
        use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=data,
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False))
    result = trainer.train()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    shutil.rmtree(out_dir / "trainer", ignore_errors=True)
    (out_dir / "sft.json").write_text(json.dumps({"sft": dict(sft), "base": base.name,
                                                  "final_loss": result.training_loss}, indent=1))
