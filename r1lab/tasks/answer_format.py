"""The think/answer protocol shared by the R1-Zero tasks: prompt scaffolding, answer extraction, format reward.

Every prompt ends with the prefill ``"Let me solve this step by step.\\n<think>"`` (TinyZero, Mini-R1), so a
completion starts inside the think block and should read ``... </think> <answer> ... </answer>``.
All helpers are linear-time on any input (``str.find``/``rfind``/``count``, no backtracking regex),
because completions are model output and may be a megabyte of junk.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# The assistant turn is prefilled with this, so the model starts thinking immediately.
PREFILL = "Let me solve this step by step.\n<think>"
# TinyZero's base-model preamble (examples/data_preprocess/countdown.py, template_type="base").
BASE_PREAMBLE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the answer."
)
# Mini-R1's system prompt, grammar included, verbatim.
SYSTEM_PROMPT = (
    "You are a helpful assistant. You first thinks about the reasoning process in the mind "
    "and then provides the user with the answer."
)

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"


def base_prompt(question: str) -> str:
    """Plain-text prompt for a base model: preamble, the user's question, then the prefilled assistant turn."""
    return f"{BASE_PREAMBLE}\n{bare_prompt(question)}"


def bare_prompt(question: str) -> str:
    """The base template without its preamble: the user's question, then the prefilled assistant turn."""
    return f"User: {question}\nAssistant: {PREFILL}"


def chat_messages(question: str) -> list[dict[str, str]]:
    """Chat prompt for an instruct model: system, user, and an assistant prefill to continue from."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": question},
        {"role": "assistant", "content": PREFILL},
    ]


def completion_text(completion: Any) -> str:
    """The generated text of one completion: a str, or the last message's content of a chat completion."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, (list, tuple)) and completion:
        last = completion[-1]
        if isinstance(last, dict) and isinstance(last.get("content"), str):
            return last["content"]
    return ""


def last_answer(text: str) -> str | None:
    """Content of the last complete ``<answer>...</answer>`` block, unstripped, or None if there is none."""
    end = text.rfind(ANSWER_CLOSE)
    if end < 0:
        return None
    start = text.rfind(ANSWER_OPEN, 0, end)
    if start < 0:
        return None
    return text[start + len(ANSWER_OPEN) : end]


def is_think_then_answer(completion: str) -> bool:
    """True iff ``"<think>" + completion`` is one think block, then one answer block, then nothing.

    Whitespace is allowed between and after the blocks; any second think or answer tag (open or
    close) anywhere fails, as in Mini-R1's format regex, which also forbids a nested ``<think>``.
    """
    text = THINK_OPEN + completion
    for tag in (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE):
        if text.count(tag) != 1:
            return False
    think_end = text.find(THINK_CLOSE) + len(THINK_CLOSE)
    answer_start = text.find(ANSWER_OPEN)
    answer_end = text.find(ANSWER_CLOSE)
    return (
        think_end <= answer_start < answer_end
        and not text[think_end:answer_start].strip()
        and not text[answer_end + len(ANSWER_CLOSE) :].strip()
    )


def format_reward(completions: Iterable[Any], **kwargs: Any) -> list[float]:
    """1.0 per completion in the strict think-then-answer format, else 0.0 (TRL reward signature)."""
    return [1.0 if is_think_then_answer(completion_text(c)) else 0.0 for c in completions]
