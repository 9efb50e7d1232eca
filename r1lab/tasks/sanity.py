"""Sanity: reward the share of ASCII digits in the completion -- the check that an algorithm learns at all.

A tiny random-init language model can raise this reward on CPU within about a minute, so a run of
``task=sanity`` with the tiny model separates "the algorithm is wired wrong" from "the task is hard".
If the reward does not rise here, it will not rise on Countdown. Rows are ``{"id": int, "instruction":
str}``: short, varied prompts, so generations differ across the batch.

Rewards: ``digit_share_reward`` (dense, in [0, 1]) shapes training; ``mostly_digits_reward`` (1.0 iff the
share is at least 0.5) is the accuracy metric, carried with weight 0 in the config so it is logged and
measured on the test split without shaping the reward.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Any

from r1lab.tasks import answer_format
from r1lab.tasks.answer_format import completion_text

# A completion counts as solved at this digit share.
SOLVED_SHARE = 0.5
_INSTRUCTIONS = ("Write some digits", "Type a number", "Reply with digits only", "Give me a long number")
_DIGITS = "0123456789"
# Ids are sampled from this range without replacement, so train and test never share a prompt.
_ID_RANGE = 1_000_000


def _question(row: Mapping[str, Any]) -> str:
    return f"{row['instruction']} (request {int(row['id'])})."


def plain_prompt(row: Mapping[str, Any]) -> str:
    """Base-model prompt without the long preamble (a tiny model gains nothing from it), then the prefill."""
    return f"User: {_question(row)}\nAssistant: {answer_format.PREFILL}"


def chat_messages(row: Mapping[str, Any]) -> list[dict[str, str]]:
    """System / user / assistant-prefill messages."""
    return answer_format.chat_messages(_question(row))


def digit_share(text: str) -> float:
    """Fraction of the characters of ``text`` that are ASCII digits; 0.0 for empty text."""
    if not text:
        return 0.0
    return sum(text.count(digit) for digit in _DIGITS) / len(text)


def digit_share_reward(completions: Iterable[Any], **kwargs: Any) -> list[float]:
    """Share of ASCII digits in each completion, in [0, 1]."""
    return [digit_share(completion_text(c)) for c in completions]


def mostly_digits_reward(completions: Iterable[Any], **kwargs: Any) -> list[float]:
    """1.0 iff at least half of the completion's characters are ASCII digits (the "solved" criterion)."""
    return [1.0 if digit_share(completion_text(c)) >= SOLVED_SHARE else 0.0 for c in completions]


REWARDS = {"digit_share_reward": digit_share_reward, "mostly_digits_reward": mostly_digits_reward}
CORRECTNESS = "mostly_digits_reward"


def load_splits(task_cfg: Mapping[str, Any], seed: int):
    """(train, test) ``datasets.Dataset``s with columns id, instruction; disjoint ids, deterministic in ``seed``."""
    import datasets

    num_train, num_test = int(task_cfg["num_train"]), int(task_cfg["num_test"])
    rng = random.Random(seed)
    ids = rng.sample(range(_ID_RANGE), num_test + num_train)
    rows = {"id": ids, "instruction": [rng.choice(_INSTRUCTIONS) for _ in ids]}
    features = datasets.Features({"id": datasets.Value("int64"), "instruction": datasets.Value("string")})

    def to_dataset(part: slice):
        return datasets.Dataset.from_dict({name: column[part] for name, column in rows.items()}, features=features)

    return to_dataset(slice(num_test, None)), to_dataset(slice(None, num_test))
