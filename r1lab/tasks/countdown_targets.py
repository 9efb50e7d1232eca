"""Which targets a Countdown number set can reach, how likely each target rule makes each, and the baselines.

Two target rules (``task.generator.target``):

- ``expression_tree``: the generator's random expression tree (r1lab.tasks.countdown._random_task); its
  value, when an integer in range, is the target. It favours some values (the sum of all numbers above all).
- ``uniform_reachable``: the target is drawn uniformly from the distinct integers in [min_target, max_target]
  that some expression over the number set reaches, so no target-blind answer is worth much.

An *expression* over a number set is what r1lab's verifier accepts (r1lab.tasks.countdown.is_correct_equation):
every number used exactly once, binary + - * / and brackets, exact rational arithmetic (intermediate
fractions and negatives allowed), no division by zero. Everything here is exhaustive enumeration with
exact rationals (int numerator/denominator pairs), cached per sorted number set.

Hand-written because no library enumerates Countdown expressions; the enumeration is checked against the
independent brute-force solver (``countdown.solve``) in tests/test_countdown_targets.py.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from functools import lru_cache
from math import gcd
from typing import Any

TARGET_RULES = ("expression_tree", "uniform_reachable")
# An exact rational value as (numerator, denominator) in lowest terms, denominator > 0: hashing and
# arithmetic on int pairs is several times faster than on Fraction, and 4-number sets make ~10^4 values.
Value = tuple[int, int]
# Largest number set the baselines enumerate: 4 numbers take ~40 ms, 5 would take seconds each.
MAX_BASELINE_NUMBERS = 4


def _key(nums: Iterable[int]) -> tuple[int, ...]:
    return tuple(sorted(int(n) for n in nums))


def _sub_multisets(nums: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The distinct non-empty proper sub-multisets of sorted ``nums``, each sorted."""
    found = {tuple(nums[i] for i in picked) for size in range(1, len(nums))
             for picked in itertools.combinations(range(len(nums)), size)}
    return sorted(found)


def _without(nums: tuple[int, ...], part: tuple[int, ...]) -> tuple[int, ...]:
    rest = Counter(nums)
    rest.subtract(part)
    return tuple(sorted(rest.elements()))


def _ratio(numerator: int, denominator: int) -> Value:
    """numerator / denominator in lowest terms with a positive denominator (denominator != 0)."""
    g = gcd(numerator, denominator)
    if denominator < 0:
        g = -g
    return (numerator // g, denominator // g)


def _results(x: Value, y: Value) -> list[Value]:
    """x + y, x - y, x * y and (unless y is 0) x / y, exactly."""
    (a, b), (c, d) = x, y
    if b == 1 and d == 1:  # the common case: two integers
        values = [(a + c, 1), (a - c, 1), (a * c, 1)]
        if c:
            values.append(_ratio(a, c))
        return values
    values = [_ratio(a * d + c * b, b * d), _ratio(a * d - c * b, b * d), _ratio(a * c, b * d)]
    if c:
        values.append(_ratio(a * d, b * c))
    return values


@lru_cache(maxsize=4096)
def expression_values(nums: tuple[int, ...]) -> Mapping[Value, int]:
    """Value -> number of distinct expression trees over sorted ``nums`` with that value.

    A tree is an ordered binary tree whose leaves are the numbers (each once; trees differing only by
    swapping two equal numbers are one tree) and whose inner nodes carry + - * or /; trees that divide by
    zero are not counted. 3 distinct numbers have 2 shapes x 3! orders x 4^2 operators = 192 trees.
    """
    if len(nums) == 1:
        return {(nums[0], 1): 1}
    counts: dict[Value, int] = {}
    # The root splits the numbers into a left and a right sub-multiset; ordered splits give ordered trees.
    for left in _sub_multisets(nums):
        right = expression_values(_without(nums, left)).items()
        for x, x_trees in expression_values(left).items():
            for y, y_trees in right:
                trees = x_trees * y_trees
                for value in _results(x, y):
                    counts[value] = counts.get(value, 0) + trees
    return counts


@lru_cache(maxsize=65536)
def reachable_targets(nums: tuple[int, ...], min_target: int, max_target: int) -> tuple[int, ...]:
    """The distinct integers in [min_target, max_target] that some expression over sorted ``nums`` equals."""
    return tuple(sorted(n for n, d in expression_values(nums) if d == 1 and min_target <= n <= max_target))


@lru_cache(maxsize=4096)
def _tree_values(pool: tuple[Value, ...]) -> tuple[Mapping[Value, int], int]:
    """(value -> weight, total weight) of the generator's random tree over the multiset ``pool`` (sorted).

    As _random_task: an ordered pair (x, y) of pool entries uniformly, then an operator uniformly from
    + - * / (+ - * when y is zero); the result replaces the pair. Weights are integers over a common
    denominator (12 is divisible by both 3 and 4 operators), so no Fraction is multiplied.
    """
    if len(pool) == 1:
        return {pool[0]: 1}, 1
    weights: dict[Value, int] = {}
    if len(pool) == 2:  # the last step, unrolled: most of the work of 3-4 numbers happens here
        for x, y in ((pool[0], pool[1]), (pool[1], pool[0])):
            values = _results(x, y)
            for value in values:
                weights[value] = weights.get(value, 0) + 12 // len(values)
        return weights, 2 * 12
    for i, j in itertools.permutations(range(len(pool)), 2):
        rest = [v for k, v in enumerate(pool) if k not in (i, j)]
        values = _results(pool[i], pool[j])
        for value in values:
            below, total = _tree_values(tuple(sorted(rest + [value])))
            share = 12 // len(values)
            for final, weight in below.items():
                weights[final] = weights.get(final, 0) + share * weight
    return weights, len(pool) * (len(pool) - 1) * 12 * total


@lru_cache(maxsize=65536)
def expression_tree_target_probabilities(nums: tuple[int, ...], min_target: int, max_target: int) -> Mapping[int, Fraction]:
    """P(target | sorted ``nums``) under the ``expression_tree`` rule, exactly.

    The generator draws a random tree over the numbers and keeps it iff its value is an integer in range,
    so this is the tree's value distribution restricted to those integers and renormalized. (Its draw
    before deduplication: a tiny held-out set of distinct puzzles is close to it, a near-exhaustive one is not.)
    """
    weights, _ = _tree_values(tuple((n, 1) for n in nums))
    kept = {n: w for (n, d), w in weights.items() if d == 1 and min_target <= n <= max_target}
    total = sum(kept.values())
    return {t: Fraction(w, total) for t, w in kept.items()}


def target_probabilities(rule: str, nums: tuple[int, ...], min_target: int, max_target: int) -> Mapping[int, Fraction]:
    """P(target | sorted ``nums``) under target rule ``rule``."""
    if rule == "uniform_reachable":
        reachable = reachable_targets(nums, min_target, max_target)
        return {t: Fraction(1, len(reachable)) for t in reachable}
    if rule == "expression_tree":
        return expression_tree_target_probabilities(nums, min_target, max_target)
    raise ValueError(f"task.generator.target must be one of {list(TARGET_RULES)}, got {rule!r}")


def best_target_blind_accuracy(probabilities: Mapping[int, Fraction], target: int) -> Fraction:
    """The Bayes-optimal target-blind policy's expected accuracy on one puzzle with this ``target``.

    That policy answers an expression whose value is a most probable target given the numbers, ties broken
    uniformly at random: it scores 1/|modes| when the true target is one of the modes, else 0.
    """
    if not probabilities:
        return Fraction(0)
    top = max(probabilities.values())
    modes = [t for t, p in probabilities.items() if p == top]
    return Fraction(1, len(modes)) if target in modes else Fraction(0)


def random_expression_accuracy(nums: Sequence[int], target: int) -> Fraction:
    """Exact probability that a uniformly random expression tree over ``nums`` (see expression_values) equals ``target``."""
    values = expression_values(_key(nums))
    return Fraction(values.get((int(target), 1), 0), sum(values.values()))


def baselines(rows: Sequence[Mapping[str, Any]], generator: Mapping[str, Any]) -> dict[str, float] | None:
    """Exact accuracies of three policies that ignore what RL should learn, on the held-out ``rows``.

    - ``best_target_blind``: the Bayes-optimal policy that sees the numbers but not the target: it answers a
      most probable target of P(target | numbers) under the configured rule (``generator.target`` and target
      range), ties broken at random; the mean over rows of its expected accuracy (best_target_blind_accuracy).
      For ``uniform_reachable`` that is the mean of 1/|reachable targets| (0 for a row whose target is unreachable).
    - ``sum_of_all``: the share of rows whose target is the sum of all their numbers (what ``a + b + c`` scores).
    - ``random_valid_expression``: the mean over rows of the exact probability that a uniformly random valid
      expression tree over the numbers (random_expression_accuracy) equals the target.

    None when a row has more than MAX_BASELINE_NUMBERS numbers (the enumeration would be too slow).
    """
    if not rows or any(len(row["nums"]) > MAX_BASELINE_NUMBERS for row in rows):
        return None
    rule = generator.get("target", "expression_tree")
    low, high = int(generator["min_target"]), int(generator["max_target"])
    blind, sums, random_expression = Fraction(0), 0, Fraction(0)
    for row in rows:
        nums, target = _key(row["nums"]), int(row["target"])
        blind += best_target_blind_accuracy(target_probabilities(rule, nums, low, high), target)
        sums += sum(nums) == target
        random_expression += random_expression_accuracy(nums, target)
    return {
        "best_target_blind": float(blind / len(rows)),
        "sum_of_all": sums / len(rows),
        "random_valid_expression": float(random_expression / len(rows)),
    }
