"""The pretraining text of r1lab's own tiny base models: Countdown-format search traces and arithmetic.

Gandhi et al. 2025 ("Cognitive Behaviors that Enable Self-Improving Reasoners", arXiv 2503.01307): RL on
Countdown improves a base that already verifies and backtracks, and a base primed with a few search traces
-- even traces that end in wrong answers -- but not one without. This module writes both corpora, so the
ablation is one config key (`model.pretrain.corpus`).

What a corpus holds (every document ends with the tokenizer's end-of-text token):

- ``arithmetic`` documents (both corpora): lines ``(a o b) p c = x p c = v``, with a, b, c drawn from the
  task's number range (in any order), o and p from + - *, and x, v their exact values -- the arithmetic a candidate
  equation needs, written step by step.
- ``enumeration`` documents (both corpora): the Countdown prompt without a target ("create an equation")
  and a think block listing distinct candidates with their values, no check, answering the last.
  They teach copying the prompt's numbers into candidates.
Candidates in traces and enumerations take the prompt's numbers in the prompt's order by default
(``number_order: prompt``): the search is over the two operators, and copying the numbers is a plain copy,
which a ~1M model learns in minutes (with every ordering, under 3 % of its candidates used the prompt's
numbers after 1,000 steps). They come in the order ``search_order`` says: ``fixed`` (the laptop default)
walks ``candidates``' one order from its first, ``(a + b) + c``, ``(a + b) - c``, ... -- a search that never
repeats and reaches further the longer it goes; ``cyclic`` starts that order at a random candidate;
``random`` shuffles.
- ``primed`` only, ``trace`` documents: a Countdown prompt exactly as r1lab renders it for a base model
  (the task's plain template in its wording, ``task.prompt``) with a target drawn uniformly from the number
  set's reachable values, then a think block of 1 to ``max_candidates`` candidates in the same step-by-step
  form, each followed by its check against the target: ``= 54 (wrong)`` or ``= 34 (this works)``. After a miss the
  trace continues with probability ``continue_prob``, else it gives up and answers its last (wrong)
  candidate; a trace stops at the first candidate that equals the target and answers it. In ``hit_share``
  of the traces the target is the value the search's last candidate reaches (so it ends found, after as
  many misses as the others), so the check and the stop at a hit are not rare events.
- ``primed`` only, ``check`` documents (``check_share``): ``Which of these equals T?`` and candidate lines
  of random number sets, each checked against the one target the document names, exactly as a trace checks
  its lines (``(7 * 8) - 6 = 56 - 6 = 50 (this works)``), half of them hits, the misses often one or two
  away. Equality of two numbers is the one skill a ~1M base did not pick up from traces alone (where nearly
  every check is a miss). Drills of bare values (``54 (wrong)``) taught it only within a few tokens of the
  target: a trace's first check was right, its later ones, a full line further from the prompt, were not;
  drills of full lines teach it at a trace's distances (``check_first_steps`` in r1lab/tiny_base.py).
- ``unprimed``: where the primed corpus has a trace, the unprimed one has another enumeration, and
  arithmetic where it has check drills.

What a corpus never holds: a prompt with a target followed by a solution found by a solver (a trace
reaches a solution only by walking its order and not giving up first: the share of traces ending in a
right answer is what that gives, and the test measures it); any division; the held-out puzzles by
construction (number sets are drawn at random). Tests scan a large sample for both.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from r1lab.tasks import countdown
from r1lab.tasks.answer_format import bare_prompt, base_prompt
from r1lab.tasks.countdown_targets import reachable_targets

# The check written after each candidate's value: Mini-R1's step-200 samples write "(this works)" at a hit.
# A miss is one word, not Mini-R1's "(too high)"/"(too low)": ordering two numbers is what a ~1M model
# gets wrong most (68 % right), and a search in a fixed order has no use for the direction.
WRONG, WORKS = "(wrong)", "(this works)"
CHECKS = (WRONG, WORKS)
OPERATORS = "+-*"
CORPORA = ("primed", "unprimed")


@dataclass(frozen=True)
class CorpusSpec:
    """How a corpus is drawn; every field is part of the base model's cache key."""

    kind: str                  # primed | unprimed
    count: int                 # numbers per puzzle
    min_number: int
    max_number: int
    min_target: int
    max_target: int
    trace_share: float         # share of documents that are search traces (primed only)
    enumeration_share: float   # share of documents that are target-free enumerations (both corpora)
    check_share: float         # share of documents that are check drills (primed only)
    continue_prob: float       # after a missed candidate, probability that a trace tries another
    hit_share: float           # share of traces whose target is their last candidate's value (a found solution)
    enumeration_continue_prob: float  # probability that an enumeration lists one more candidate
    max_candidates: int        # candidates per trace or enumeration at most
    number_order: str          # prompt: candidates keep the prompt's number order; any: every ordering
    search_order: str          # random: shuffled; cyclic: a fixed order from a random start; fixed: from the first
    prompt: str                # the task's wording the prompts are written in (task.prompt: full | short)
    arithmetic_lines: int      # lines per arithmetic document

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> CorpusSpec:
        spec = cls(**{name: cfg[name] for name in cls.__dataclass_fields__})
        if spec.kind not in CORPORA:
            raise ValueError(f"model.pretrain.corpus must be one of {CORPORA}, got {spec.kind!r}")
        if spec.search_order not in ("random", "cyclic", "fixed"):
            raise ValueError(f"model.pretrain.data.search_order must be random, cyclic or fixed, got {spec.search_order!r}")
        if spec.prompt not in countdown.PROMPTS:
            raise ValueError(f"model.pretrain.data.prompt must be one of {countdown.PROMPTS}, got {spec.prompt!r}")
        if spec.count != 3:
            raise ValueError(f"the base corpus writes 3-number puzzles, got count={spec.count}")
        return spec


@dataclass(frozen=True)
class Candidate:
    expression: str            # "(3 + 5) * 7"
    step: str                  # "8 * 7"
    value: int                 # 56

    def line(self) -> str:
        return f"{self.expression} = {self.step} = {self.value}"


def candidates(nums: list[int], number_order: str = "any") -> list[Candidate]:
    """Every distinct ``(a o b) p c`` with o, p in + - *, in a fixed order: a, b, c are ``nums`` in the
    prompt's order (``number_order="prompt"``, 9 candidates) or in any order (``"any"``, up to 54)."""
    if number_order not in ("prompt", "any"):
        raise ValueError(f"number_order must be 'prompt' or 'any', got {number_order!r}")
    return list(_candidates(tuple(nums), number_order == "any"))


@functools.lru_cache(maxsize=65536)
def _candidates(nums: tuple[int, ...], any_order: bool) -> tuple[Candidate, ...]:
    seen: dict[str, Candidate] = {}
    for a, b, c in itertools.permutations(nums) if any_order else (nums,):
        for o, p in itertools.product(OPERATORS, repeat=2):
            x = _apply(a, o, b)
            expression = f"({a} {o} {b}) {p} {c}"
            seen.setdefault(expression, Candidate(expression, f"{x} {p} {c}", _apply(x, p, c)))
    return tuple(seen.values())


def _apply(x: int, op: str, y: int) -> int:
    return x + y if op == "+" else x - y if op == "-" else x * y


def _check(value: int, target: int) -> str:
    """The verdict that follows a value, in traces and drills alike. The target is not copied beside the
    value (``= 54 vs 34 (wrong)``, recipe 7): the check was no better for it, and a base trained on drills
    with a random number there wrote a random number there in its own traces."""
    return WORKS if value == target else WRONG


def _think(lines: list[str], answer: str) -> str:
    return "\n" + "\n".join(lines) + f"\n</think>\n<answer> {answer} </answer>"


def _draw_nums(spec: CorpusSpec, rng: random.Random) -> list[int]:
    return [rng.randint(spec.min_number, spec.max_number) for _ in range(spec.count)]


def _search_pool(spec: CorpusSpec, nums: list[int], rng: random.Random) -> list[Candidate]:
    """The candidates of a search in the order it tries them: shuffled, or the fixed order of `candidates`
    from a random start (cyclic) or from its first (fixed)."""
    pool = candidates(nums, spec.number_order)
    if spec.search_order == "random":
        rng.shuffle(pool)
    elif spec.search_order == "cyclic":
        start = rng.randrange(len(pool))
        pool = pool[start:] + pool[:start]
    return pool


def trace_document(spec: CorpusSpec, rng: random.Random) -> str:
    """A prompt with a target, then a short search that checks each candidate and often gives up.

    How long the search goes is drawn first (after each miss it continues with ``continue_prob``); then in a
    ``hit_share`` of traces the target is the last candidate's value, so the search ends at ``(this works)``,
    else it is uniform over the set's reachable values. Every check is the truth; a found search never gives
    up, so misses are followed by another candidate more often than ``continue_prob`` (0.6 of them at 0.45
    and ``hit_share`` 0.5).
    """
    while True:
        nums = _draw_nums(spec, rng)
        targets = reachable_targets(tuple(sorted(nums)), spec.min_target, spec.max_target)
        if targets:
            break
    pool = _search_pool(spec, nums, rng)[: spec.max_candidates]
    length = 1
    while length < len(pool) and rng.random() < spec.continue_prob:
        length += 1
    last = pool[length - 1].value
    hit = spec.hit_share > 0 and rng.random() < spec.hit_share and spec.min_target <= last <= spec.max_target
    target = last if hit else rng.choice(targets)
    lines = []
    for tried in pool[:length]:
        lines.append(f"{tried.line()} {_check(tried.value, target)}")
        if tried.value == target:
            break
    return countdown.plain_prompt({"nums": nums, "target": target}, spec.prompt) + _think(lines, tried.expression)


ENUMERATION_QUESTION = "Using the numbers {nums}, create an equation. Show your work in <think> </think> tags."
SHORT_ENUMERATION_QUESTION = "Using the numbers {nums}, create an equation."


def enumeration_document(spec: CorpusSpec, rng: random.Random) -> str:
    """A prompt without a target, then candidates with their values, no check, answering the last."""
    nums = _draw_nums(spec, rng)
    pool = _search_pool(spec, nums, rng)
    count = 1
    while count < spec.max_candidates and rng.random() < spec.enumeration_continue_prob:
        count += 1
    shown = pool[:count]
    # The answer is the last candidate, as in a trace that gives up: one rule for where answers come from.
    if spec.prompt == "short":
        prompt = bare_prompt(SHORT_ENUMERATION_QUESTION.format(nums=nums))
    else:
        prompt = base_prompt(ENUMERATION_QUESTION.format(nums=nums))
    return prompt + _think([c.line() for c in shown], shown[-1].expression)


CHECK_QUESTION = "Which of these equals {target}?"


@dataclass(frozen=True)
class _DrillPool:
    by_value: dict[int, tuple[Candidate, ...]]  # every candidate line of every number set, by its value
    values: list[int]                            # the values, in by_value's order
    targets: list[int]                           # the targets in range that some line reaches


@functools.lru_cache(maxsize=8)
def _drill_pool(spec: CorpusSpec) -> _DrillPool:
    """The drills' lines, built once per spec (every drill document draws from the same pool)."""
    found: dict[int, list[Candidate]] = {}
    for nums in itertools.product(range(spec.min_number, spec.max_number + 1), repeat=spec.count):
        for candidate in candidates(list(nums), spec.number_order):
            found.setdefault(candidate.value, []).append(candidate)
    by_value = {value: tuple(lines) for value, lines in found.items()}
    return _DrillPool(by_value, list(by_value),
                      [t for t in range(spec.min_target, spec.max_target + 1) if t in by_value])


def check_document(spec: CorpusSpec, rng: random.Random) -> str:
    """``Which of these equals T?`` and candidate lines of random number sets, each checked against T the way
    a trace checks its lines: a trace's checks alone, half of them hits, the misses often one or two away,
    so the verdict is learnt as equality, not as closeness, and at the distance from the target a trace's
    checks stand at. One target per document, named after "equals" as a trace's prompt names it."""
    pool = _drill_pool(spec)
    by_value, values = pool.by_value, pool.values
    target = rng.choice(pool.targets)
    # Reachable values one or two away (every target 1..100 of 1..9 sets has one), else any other value.
    near = [v for v in (target - 2, target - 1, target + 1, target + 2) if v in by_value]
    near = near or [v for v in values if v != target]
    lines = [CHECK_QUESTION.format(target=target)]
    for _ in range(spec.arithmetic_lines):
        draw = rng.random()
        if draw < 0.5:
            value = target
        else:
            value = target + rng.choice((-2, -1, 1, 2)) if draw < 0.75 else rng.choice(values)
            if value not in by_value:
                value = rng.choice(values)
            if value == target:
                value = rng.choice(near)
        line = rng.choice(by_value[value])
        lines.append(f"{line.line()} {_check(line.value, target)}")
    return "\n".join(lines)


def arithmetic_document(spec: CorpusSpec, rng: random.Random) -> str:
    """Lines of step-by-step arithmetic over random number triples, no prompt, no target."""
    lines = []
    for _ in range(spec.arithmetic_lines):
        nums = _draw_nums(spec, rng)
        lines.append(rng.choice(candidates(nums, "any")).line())
    return "\n".join(lines)


def documents(spec: CorpusSpec, seed: int) -> Iterator[str]:
    """An endless, deterministic stream of documents of the corpus (without end-of-text tokens)."""
    rng = random.Random(seed)
    # The unprimed corpus writes an enumeration wherever the primed one writes a trace.
    traces = trace_document if spec.kind == "primed" else enumeration_document
    while True:
        draw = rng.random()
        if draw < spec.trace_share:
            yield traces(spec, rng)
        elif draw < spec.trace_share + spec.enumeration_share:
            yield enumeration_document(spec, rng)
        elif draw < spec.trace_share + spec.enumeration_share + spec.check_share:
            # The unprimed corpus has no checks: arithmetic stands where the primed one drills them.
            yield check_document(spec, rng) if spec.kind == "primed" else arithmetic_document(spec, rng)
        else:
            yield arithmetic_document(spec, rng)
