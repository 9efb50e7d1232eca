"""Countdown: combine 3-4 numbers with + - * / (each used exactly once) to reach a target.

The task of TinyZero and Mini-R1 (seed write-up `mini-r1-blog.md`). Rows are ``{"nums": list[int],
"target": int}``. ``source: hub`` reads TinyZero's ``Jiayi-Pan/Countdown-Tasks-3to4``; ``source:
generated`` builds the same shape offline, every target reachable by construction (drawn by the rule
``generator.target``, see r1lab.tasks.countdown_targets) and re-checked with the exact evaluator;
``test_path`` makes a JSONL file the held-out split. Train and held-out splits never share a number set.
Rewards: ``equation_reward`` (exact, eval-free correctness; the accuracy metric)
and ``format_reward`` (strict think-then-answer layout).
"""

from __future__ import annotations

import itertools
import json
import os
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from r1lab.tasks import answer_format, countdown_targets
from r1lab.tasks.answer_format import completion_text, format_reward, last_answer
from r1lab.tasks.exact_arithmetic import MAX_EXPRESSION_CHARS, evaluate_tokens, tokenize

# The brute-force solver grows like 6^(n-1) * n!(n-1)!/2^(n-1); 5 numbers without a solution take ~0.5 s.
MAX_SOLVER_NUMBERS = 5
# Random expression trees tried per task before declaring that a configuration cannot produce targets.
_MAX_ATTEMPTS_PER_TASK = 1000


# --- prompts -----------------------------------------------------------------------------------


def _numbers(row: Mapping[str, Any]) -> list[int]:
    return [int(n) for n in row["nums"]]


# task.prompt: the seeds' wording, verbatim, or its first sentence alone (r1lab's own tiny bases: the
# seeds' instructions are ~100 tokens, and their example "(1 + 2) / 3" is what a ~1M model copies from).
PROMPTS = ("full", "short")


def _short_question(row: Mapping[str, Any]) -> str:
    """The question's first sentence: the short wording, and the start of the seeds' full one."""
    return f"Using the numbers {_numbers(row)}, create an equation that equals {int(row['target'])}."


def plain_prompt(row: Mapping[str, Any], prompt: str = "full") -> str:
    """TinyZero's base-model prompt, verbatim (``prompt="short"``: the question's first sentence, no preamble)."""
    if prompt == "short":
        return answer_format.bare_prompt(_short_question(row))
    question = _short_question(row) + (
        " You can use basic arithmetic operations (+, -, *, /) and each number can only be used once. "
        "Show your work in <think> </think> tags. And return the final answer in <answer> </answer> tags, "
        "for example <answer> (1 + 2) / 3 </answer>."
    )
    return answer_format.base_prompt(question)


def chat_messages(row: Mapping[str, Any], prompt: str = "full") -> list[dict[str, str]]:
    """Mini-R1's system / user / assistant-prefill messages, verbatim (``prompt="short"``: the first sentence)."""
    if prompt == "short":
        return answer_format.chat_messages(_short_question(row))
    question = _short_question(row) + (
        " You can use basic arithmetic operations (+, -, *, /) and each number can only be used once. "
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


def _uniform_reachable_task(rng: random.Random, count: int, numbers: range, targets: range) -> tuple[list[int], int, str] | None:
    """``count`` fresh numbers and a target drawn uniformly from their distinct reachable integers in range
    (with the solver's expression), or None if they reach none."""
    nums = [rng.choice(numbers) for _ in range(count)]
    reachable = countdown_targets.reachable_targets(tuple(sorted(nums)), targets.start, targets.stop - 1)
    if not reachable:
        return None
    target = rng.choice(reachable)
    return nums, target, solve(nums, target)


_TARGET_DRAWS = {"expression_tree": _random_task, "uniform_reachable": _uniform_reachable_task}


def _generated_stream(cfg: Mapping[str, Any], rng: random.Random) -> Iterator[dict[str, Any]]:
    """Endless generated tasks (repeats possible), each checked against the verifier."""
    sizes = range(int(cfg["min_count"]), int(cfg["max_count"]) + 1)
    numbers = range(int(cfg["min_number"]), int(cfg["max_number"]) + 1)
    targets = range(int(cfg["min_target"]), int(cfg["max_target"]) + 1)
    rule = cfg.get("target", "expression_tree")
    if rule not in _TARGET_DRAWS:
        raise ValueError(f"task.generator.target must be one of {list(_TARGET_DRAWS)}, got {rule!r}")
    draw = _TARGET_DRAWS[rule]
    while True:
        # The count is drawn before the retries, so 3- and 4-number tasks stay equally common.
        size = rng.choice(sizes)
        for _ in range(_MAX_ATTEMPTS_PER_TASK):
            drawn = draw(rng, size, numbers, targets)
            if drawn is not None:
                break
        else:
            raise ValueError(f"countdown generator found no target in range for {size} numbers with {dict(cfg)}")
        nums, target, expression = drawn
        if not is_correct_equation(expression, nums, target):
            raise AssertionError(f"generator and verifier disagree on {expression} = {target}")
        yield {"nums": nums, "target": target}


def number_set(row: Mapping[str, Any]) -> tuple[int, ...]:
    """A task's numbers as a sorted tuple: what the train/held-out split keeps apart."""
    return tuple(sorted(int(n) for n in row["nums"]))


def _key(row: Mapping[str, Any]) -> tuple[tuple[int, ...], int]:
    return number_set(row), int(row["target"])


def _take_distinct(stream: Iterator[dict[str, Any]], count: int, excluded: frozenset = frozenset(),
                   source: str = "the generator", patience: int | None = None) -> list[dict[str, Any]]:
    """The next ``count`` tasks of ``stream`` that are distinct (sorted nums + target) and whose number set
    is not in ``excluded``; ValueError when the stream ends, or skips more than ``patience`` in a row."""
    seen: set[tuple[tuple[int, ...], int]] = set()
    tasks: list[dict[str, Any]] = []
    skipped = 0
    patience = 10 * count + 1000 if patience is None else patience
    for row in stream:
        key = _key(row)
        if key in seen or key[0] in excluded:
            skipped += 1
            if skipped > patience:
                break
            continue
        seen.add(key)
        tasks.append(row)
        if len(tasks) == count:
            return tasks
    held_out = f" whose numbers are not held out ({len(excluded)} number sets)" if excluded else ""
    raise ValueError(f"only {len(tasks)} distinct countdown tasks{held_out} found in {source}; {count} requested")


def generate_tasks(cfg: Mapping[str, Any], count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` distinct Countdown tasks (distinct by sorted numbers + target), each with a verified solution.

    Numbers are drawn uniformly. The target (``cfg.target``, see r1lab.tasks.countdown_targets):
    ``expression_tree`` (default) combines the numbers in a random binary tree with random operators and
    keeps the exact value if it is an integer in [min_target, max_target] (close to uniform over values,
    with extra weight on the sum of all numbers); ``uniform_reachable`` draws it uniformly from the distinct
    integers in range that the numbers can reach. Either way every target is reachable.
    """
    return _take_distinct(_generated_stream(cfg, random.Random(seed)), count)


def _hub_stream(task_cfg: Mapping[str, Any], seed: int) -> Iterator[dict[str, Any]]:
    """The rows of the Hub dataset in a seeded shuffle."""
    import datasets

    shuffled = datasets.load_dataset(task_cfg["hub_id"], split="train").shuffle(seed=seed)
    for batch in shuffled.select_columns(["nums", "target"]).iter(batch_size=4096):
        for nums, target in zip(batch["nums"], batch["target"], strict=True):
            yield {"nums": [int(n) for n in nums], "target": int(target)}


# --- held-out files ----------------------------------------------------------------------------


def read_puzzle_file(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a JSONL file of ``{"nums": [...], "target": N}`` puzzles; ValueError naming file and line
    for the first bad row (not JSON, other keys, non-integers, 2 to MAX_SOLVER_NUMBERS numbers, a repeat)."""
    path = Path(path).expanduser()
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read puzzle file {path}: {error}") from error
    rows: list[dict[str, Any]] = []
    first_line: dict[tuple[tuple[int, ...], int], int] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: not JSON ({error.msg}): {line[:80]!r}") from None
        if not isinstance(row, dict) or set(row) != {"nums", "target"}:
            raise ValueError(f'{where}: expected an object with exactly the keys "nums" and "target", got {line[:80]!r}')
        nums, target = row["nums"], row["target"]
        if not (isinstance(nums, list) and 2 <= len(nums) <= MAX_SOLVER_NUMBERS and all(_is_int(n) for n in nums)):
            raise ValueError(f'{where}: "nums" must be a list of 2 to {MAX_SOLVER_NUMBERS} integers, got {nums!r}')
        if not _is_int(target):
            raise ValueError(f'{where}: "target" must be an integer, got {target!r}')
        key = _key(row)
        if key in first_line:
            raise ValueError(f"{where}: repeats the puzzle of line {first_line[key]}")
        first_line[key] = number
        rows.append({"nums": [int(n) for n in nums], "target": int(target)})
    if not rows:
        raise ValueError(f"puzzle file {path} holds no puzzles")
    return rows


def write_puzzle_file(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write ``rows`` as read_puzzle_file reads them: one ``{"nums": [...], "target": N}`` per line."""
    lines = [json.dumps({"nums": [int(n) for n in row["nums"]], "target": int(row["target"])}) for row in rows]
    Path(path).expanduser().write_text("".join(line + "\n" for line in lines))


def _is_int(value: Any) -> bool:
    # Bounded, so that no baseline or verifier multiplies numbers of unbounded size.
    return type(value) is int and abs(value) <= 10**9


def config_problems(task_cfg: Mapping[str, Any]) -> list[str]:
    """What is wrong with the countdown settings, before any compute (called by r1lab.validation)."""
    found = []
    rule = task_cfg["generator"].get("target", "expression_tree")
    if rule not in _TARGET_DRAWS:
        found.append(f"task.generator.target must be one of {list(_TARGET_DRAWS)}, got {rule!r}")
    if task_cfg.get("test_path"):
        try:
            read_puzzle_file(task_cfg["test_path"])
        except ValueError as error:
            found.append(f"task.test_path: {error}")
    return found


# --- splits ------------------------------------------------------------------------------------


def load_splits(task_cfg: Mapping[str, Any], seed: int):
    """(train, test) ``datasets.Dataset``s with columns nums, target; deterministic in ``seed``.

    The held-out split is ``task.test_path``'s puzzles when set, else the first ``num_test`` distinct
    tasks of the source. Training tasks are the next ``num_train`` distinct ones whose number set (sorted
    nums) occurs nowhere in the held-out split, so a held-out puzzle's numbers are never trained on with
    any target.
    """
    import datasets

    num_train, num_test = int(task_cfg["num_train"]), int(task_cfg["num_test"])
    source = task_cfg["source"]
    if source == "generated":
        stream, name = _generated_stream(task_cfg["generator"], random.Random(seed)), "the generator"
    elif source == "hub":
        stream, name = _hub_stream(task_cfg, seed), task_cfg["hub_id"]
    else:
        raise ValueError(f"task.source must be 'generated' or 'hub', got {source!r}")
    if task_cfg.get("test_path"):
        test = read_puzzle_file(task_cfg["test_path"])
    else:
        test = _take_distinct(stream, num_test, source=name, patience=None if source == "generated" else 10**9)
    train = _take_distinct(stream, num_train, frozenset(map(number_set, test)), source=name,
                           patience=None if source == "generated" else 10**9)
    features = datasets.Features(
        {"nums": datasets.Sequence(datasets.Value("int64")), "target": datasets.Value("int64")}
    )

    def to_dataset(rows: list[dict[str, Any]]):
        return datasets.Dataset.from_dict(
            {"nums": [r["nums"] for r in rows], "target": [r["target"] for r in rows]}, features=features
        )

    return to_dataset(train), to_dataset(test)


# --- measurement hooks (r1lab.data, r1lab.evaluation) ------------------------------------------


def baselines(task_cfg: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> dict[str, float] | None:
    """Exact target-blind, sum-of-all and random-expression accuracies on held-out ``rows`` (countdown_targets.baselines)."""
    return countdown_targets.baselines(rows, task_cfg["generator"])
