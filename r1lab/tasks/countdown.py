"""Countdown: combine 3-4 numbers with + - * / (each used exactly once) to reach a target.

The task of TinyZero and Mini-R1 (/work/shared/seeds/mini-r1-blog.md). Rows are ``{"nums": list[int],
"target": int}``. ``source: hub`` reads TinyZero's ``Jiayi-Pan/Countdown-Tasks-3to4``; ``source:
generated`` builds the same shape offline, every target reachable by construction and re-checked with
the exact evaluator. Rewards: ``equation_reward`` (exact, eval-free correctness; the accuracy metric)
and ``format_reward`` (strict think-then-answer layout).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from r1lab.tasks import answer_format
from r1lab.tasks.answer_format import completion_text, format_reward, last_answer
from r1lab.tasks.exact_arithmetic import MAX_EXPRESSION_CHARS, evaluate_tokens, tokenize

# The brute-force solver grows like 6^(n-1) * n!(n-1)!/2^(n-1); 5 numbers without a solution take ~0.5 s.
MAX_SOLVER_NUMBERS = 5
# Random expression trees tried per task before declaring that a configuration cannot produce targets.
_MAX_ATTEMPTS_PER_TASK = 1000


# --- prompts -----------------------------------------------------------------------------------


def _numbers(row: Mapping[str, Any]) -> list[int]:
    return [int(n) for n in row["nums"]]


def plain_prompt(row: Mapping[str, Any]) -> str:
    """TinyZero's base-model prompt, verbatim."""
    question = (
        f"Using the numbers {_numbers(row)}, create an equation that equals {int(row['target'])}. "
        "You can use basic arithmetic operations (+, -, *, /) and each number can only be used once. "
        "Show your work in <think> </think> tags. And return the final answer in <answer> </answer> tags, "
        "for example <answer> (1 + 2) / 3 </answer>."
    )
    return answer_format.base_prompt(question)


def chat_messages(row: Mapping[str, Any]) -> list[dict[str, str]]:
    """Mini-R1's system / user / assistant-prefill messages, verbatim."""
    question = (
        f"Using the numbers {_numbers(row)}, create an equation that equals {int(row['target'])}. "
        "You can use basic arithmetic operations (+, -, *, /) and each number can only be used once. "
        "Show your work in <think> </think> tags. And return the final equation and answer in "
        "<answer> </answer> tags, for example <answer> (1 + 2) / 3 = 1 </answer>."
    )
    return answer_format.chat_messages(question)


# --- verifier ----------------------------------------------------------------------------------


def is_correct_equation(answer: str, nums: Sequence[int], target: int) -> bool:
    """True iff ``answer`` is ``expr`` or ``expr = target`` where expr uses ``nums`` exactly once and equals target.

    Numbers are compared as a multiset before any arithmetic, so a huge or foreign literal is rejected
    without being multiplied; the value is exact (``Fraction``), so ``1 / 3 * 3`` is 1 and nothing
    "close" counts.
    """
    answer = answer.strip()
    if len(answer) > MAX_EXPRESSION_CHARS:
        return False
    expression, equals, claimed = answer.partition("=")
    if equals:
        claimed = claimed.strip()
        # The claimed result must be a plain ASCII integer equal to the target (Mini-R1's "= 1" example).
        if not (claimed.isascii() and claimed.isdigit() and int(claimed) == target):
            return False
    tokens = tokenize(expression)
    if tokens is None:
        return False
    if sorted(t for t in tokens if type(t) is int) != sorted(nums):
        return False
    value = evaluate_tokens(tokens)
    return value is not None and value == target


def equation_reward(
    completions: Iterable[Any], nums: Sequence[Sequence[Any]], target: Sequence[Any], **kwargs: Any
) -> list[float]:
    """1.0 iff the last ``<answer>`` block is a correct equation for that row's nums and target, else 0.0."""
    rewards = []
    for completion, row_nums, row_target in zip(completions, nums, target, strict=True):
        try:
            answer = last_answer(completion_text(completion))
            ok = answer is not None and is_correct_equation(answer, [int(n) for n in row_nums], int(row_target))
        except Exception:  # Last line of defence: a reward function must never crash a training step.
            ok = False
        rewards.append(1.0 if ok else 0.0)
    return rewards


REWARDS = {"equation_reward": equation_reward, "format_reward": format_reward}
CORRECTNESS = "equation_reward"


# --- solver ------------------------------------------------------------------------------------


def _combinations(a: tuple[Fraction, str], b: tuple[Fraction, str]) -> Iterable[tuple[Fraction, str]]:
    """Every value reachable by one operator over a and b, with its fully parenthesized expression."""
    (x, ex), (y, ey) = a, b
    yield x + y, f"({ex} + {ey})"
    yield x * y, f"({ex} * {ey})"
    yield x - y, f"({ex} - {ey})"
    yield y - x, f"({ey} - {ex})"
    if y:
        yield x / y, f"({ex} / {ey})"
    if x:
        yield y / x, f"({ey} / {ex})"


def solve(nums: Sequence[int], target: int) -> str | None:
    """An expression using every number in ``nums`` once that equals ``target`` exactly, or None.

    Brute force over all binary trees (pick two values, combine, recurse), exact arithmetic.
    """
    if not 1 <= len(nums) <= MAX_SOLVER_NUMBERS:
        raise ValueError(f"solve() takes 1 to {MAX_SOLVER_NUMBERS} numbers, got {len(nums)}")
    goal = Fraction(int(target))

    def search(pool: list[tuple[Fraction, str]]) -> str | None:
        if len(pool) == 1:
            value, expression = pool[0]
            return expression if value == goal else None
        for i, j in itertools.combinations(range(len(pool)), 2):
            rest = [p for k, p in enumerate(pool) if k not in (i, j)]
            for combined in _combinations(pool[i], pool[j]):
                found = search(rest + [combined])
                if found is not None:
                    return found
        return None

    found = search([(Fraction(int(n)), str(int(n))) for n in nums])
    # Drop the redundant parentheses around the whole expression.
    return found[1:-1] if found is not None and len(nums) > 1 else found


# --- data --------------------------------------------------------------------------------------


def _random_task(rng: random.Random, count: int, numbers: range, targets: range) -> tuple[list[int], int, str] | None:
    """One random expression tree over ``count`` fresh numbers: (nums, target, expression), or None if out of range."""
    nums = [rng.choice(numbers) for _ in range(count)]
    # Values stay ints until a division needs a Fraction: same exact result, several times faster.
    pool: list[tuple[int | Fraction, str]] = [(n, str(n)) for n in nums]
    while len(pool) > 1:
        (x, ex) = pool.pop(rng.randrange(len(pool)))
        (y, ey) = pool.pop(rng.randrange(len(pool)))
        op = rng.choice("+-*/" if y else "+-*")
        value = x + y if op == "+" else x - y if op == "-" else x * y if op == "*" else Fraction(x) / y
        pool.append((value, f"({ex} {op} {ey})"))
    value, expression = pool[0]
    if value != int(value) or int(value) not in targets:
        return None
    return nums, int(value), expression


def generate_tasks(cfg: Mapping[str, Any], count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` distinct Countdown tasks (distinct by sorted numbers + target), each with a verified solution.

    Numbers are drawn uniformly, combined in a random binary tree with random operators, and kept if the
    exact value is an integer in [min_target, max_target] -- so targets are reachable by construction. The
    target distribution is that of random expressions, close to uniform (1 is about 1.5x as common as 99).
    """
    sizes = range(int(cfg["min_count"]), int(cfg["max_count"]) + 1)
    numbers = range(int(cfg["min_number"]), int(cfg["max_number"]) + 1)
    targets = range(int(cfg["min_target"]), int(cfg["max_target"]) + 1)
    rng = random.Random(seed)
    seen: set[tuple[tuple[int, ...], int]] = set()
    tasks: list[dict[str, Any]] = []
    duplicates = 0
    while len(tasks) < count:
        # The count is drawn before the retries, so 3- and 4-number tasks stay equally common.
        size = rng.choice(sizes)
        for _ in range(_MAX_ATTEMPTS_PER_TASK):
            drawn = _random_task(rng, size, numbers, targets)
            if drawn is not None:
                break
        else:
            raise ValueError(f"countdown generator found no target in range for {size} numbers with {dict(cfg)}")
        nums, target, expression = drawn
        key = (tuple(sorted(nums)), target)
        if key in seen:
            duplicates += 1
            if duplicates > 10 * count + 1000:
                raise ValueError(f"only {len(tasks)} distinct countdown tasks exist for {dict(cfg)}; {count} requested")
            continue
        if not is_correct_equation(expression, nums, target):
            raise AssertionError(f"generator and verifier disagree on {expression} = {target}")
        seen.add(key)
        tasks.append({"nums": nums, "target": target})
    return tasks


def _key(row: Mapping[str, Any]) -> tuple[tuple[int, ...], int]:
    return tuple(sorted(int(n) for n in row["nums"])), int(row["target"])


def _hub_tasks(task_cfg: Mapping[str, Any], seed: int, count: int) -> list[dict[str, Any]]:
    """The first ``count`` distinct tasks of the shuffled Hub dataset."""
    import datasets

    shuffled = datasets.load_dataset(task_cfg["hub_id"], split="train").shuffle(seed=seed)
    seen: set[tuple[tuple[int, ...], int]] = set()
    tasks = []
    for batch in shuffled.select_columns(["nums", "target"]).iter(batch_size=4096):
        for nums, target in zip(batch["nums"], batch["target"], strict=True):
            row = {"nums": [int(n) for n in nums], "target": int(target)}
            key = _key(row)
            if key not in seen:
                seen.add(key)
                tasks.append(row)
                if len(tasks) == count:
                    return tasks
    raise ValueError(f"{task_cfg['hub_id']} has only {len(tasks)} distinct tasks, {count} requested")


def load_splits(task_cfg: Mapping[str, Any], seed: int):
    """(train, test) ``datasets.Dataset``s with columns nums, target; disjoint, deterministic in ``seed``.

    Test rows are taken first, then train, from one deduplicated stream, so no (sorted nums, target)
    appears in both.
    """
    import datasets

    num_train, num_test = int(task_cfg["num_train"]), int(task_cfg["num_test"])
    source = task_cfg["source"]
    if source == "generated":
        tasks = generate_tasks(task_cfg["generator"], num_test + num_train, seed)
    elif source == "hub":
        tasks = _hub_tasks(task_cfg, seed, num_test + num_train)
    else:
        raise ValueError(f"task.source must be 'generated' or 'hub', got {source!r}")
    features = datasets.Features(
        {"nums": datasets.Sequence(datasets.Value("int64")), "target": datasets.Value("int64")}
    )

    def to_dataset(rows: list[dict[str, Any]]):
        return datasets.Dataset.from_dict(
            {"nums": [r["nums"] for r in rows], "target": [r["target"] for r in rows]}, features=features
        )

    return to_dataset(tasks[num_test:]), to_dataset(tasks[:num_test])
