"""Multiplication: the product of two multi-digit integers, TinyZero's second task.

Rows are ``{"a": int, "b": int, "product": int}``, each factor with ``min_digits``..``max_digits`` digits
(drawn independently). ``product_reward`` checks the last ``<answer>`` block exactly; it never converts
the model's digits to ``int`` (it compares digit strings), so a 100,000-digit answer costs one bounded
string check, not a quadratic conversion.

Accepted answers (anything else scores 0.0): ``N``, or ``a * b = N`` with the row's factors in either
order, where N is the product in plain ASCII digits or with correct thousands commas (``1,234,567``,
a natural way to write large numbers; a wrong grouping like ``12,34`` is rejected).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from r1lab.tasks import answer_format
from r1lab.tasks.answer_format import completion_text, format_reward, last_answer

# int64 holds the product of two 9-digit factors; the datasets columns are int64.
MAX_DIGITS = 9
# Longest stripped answer looked at: "999,999,999 * 999,999,999 = 999,999,998,000,000,001" is ~50 chars.
MAX_ANSWER_CHARS = 96
_PRODUCT = re.compile(r"(?:([0-9]+) *\* *([0-9]+) *= *)?([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)")


def _question(row: Mapping[str, Any]) -> str:
    return (
        f"Give me the answer of the following equation: {int(row['a'])} * {int(row['b'])}. "
        "Show your work in <think> </think> tags. And return the final answer in <answer> </answer> tags, "
        "for example <answer> 1234 </answer>."
    )


def plain_prompt(row: Mapping[str, Any]) -> str:
    """Base-model prompt in TinyZero's style (its multiply question, the Countdown tag instructions)."""
    return answer_format.base_prompt(_question(row))


def chat_messages(row: Mapping[str, Any]) -> list[dict[str, str]]:
    """System / user / assistant-prefill messages in Mini-R1's style."""
    return answer_format.chat_messages(_question(row))


def is_correct_product(answer: str, a: int, b: int, product: int) -> bool:
    """True iff ``answer`` is the product (optionally as ``a * b = N``, optionally comma-grouped)."""
    answer = answer.strip()
    if len(answer) > MAX_ANSWER_CHARS:
        return False
    match = _PRODUCT.fullmatch(answer)
    if match is None:
        return False
    left, right, digits = match.groups()
    if left is not None and sorted((left, right)) != sorted((str(a), str(b))):
        return False
    return digits.replace(",", "") == str(product)


def product_reward(
    completions: Iterable[Any],
    a: Sequence[Any],
    b: Sequence[Any],
    product: Sequence[Any],
    **kwargs: Any,
) -> list[float]:
    """1.0 iff the last ``<answer>`` block holds exactly that row's product, else 0.0."""
    rewards = []
    for completion, row_a, row_b, row_product in zip(completions, a, b, product, strict=True):
        try:
            answer = last_answer(completion_text(completion))
            ok = answer is not None and is_correct_product(answer, int(row_a), int(row_b), int(row_product))
        except Exception:  # Last line of defence: a reward function must never crash a training step.
            ok = False
        rewards.append(1.0 if ok else 0.0)
    return rewards


REWARDS = {"product_reward": product_reward, "format_reward": format_reward}
CORRECTNESS = "product_reward"


def generate_tasks(task_cfg: Mapping[str, Any], count: int, seed: int) -> list[dict[str, int]]:
    """``count`` distinct (unordered) factor pairs, each factor with min_digits..max_digits digits."""
    low, high = int(task_cfg["min_digits"]), int(task_cfg["max_digits"])
    if not 1 <= low <= high <= MAX_DIGITS:
        raise ValueError(f"multiplication needs 1 <= min_digits <= max_digits <= {MAX_DIGITS}, got {low}, {high}")
    rng = random.Random(seed)
    seen: set[tuple[int, int]] = set()
    tasks = []
    duplicates = 0

    def factor() -> int:
        digits = rng.randint(low, high)
        return rng.randint(10 ** (digits - 1), 10**digits - 1)

    while len(tasks) < count:
        a, b = factor(), factor()
        key = (min(a, b), max(a, b))
        if key in seen:
            duplicates += 1
            if duplicates > 10 * count + 1000:
                raise ValueError(
                    f"only {len(tasks)} distinct multiplication tasks for {low}..{high} digits; {count} requested"
                )
            continue
        seen.add(key)
        tasks.append({"a": a, "b": b, "product": a * b})
    return tasks


def load_splits(task_cfg: Mapping[str, Any], seed: int):
    """(train, test) ``datasets.Dataset``s with columns a, b, product; disjoint, deterministic in ``seed``."""
    import datasets

    num_train, num_test = int(task_cfg["num_train"]), int(task_cfg["num_test"])
    tasks = generate_tasks(task_cfg, num_test + num_train, seed)
    features = datasets.Features({name: datasets.Value("int64") for name in ("a", "b", "product")})

    def to_dataset(rows: list[dict[str, int]]):
        return datasets.Dataset.from_dict({name: [r[name] for r in rows] for name in features}, features=features)

    return to_dataset(tasks[num_test:]), to_dataset(tasks[:num_test])
