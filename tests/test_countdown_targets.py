"""Countdown target rules and baselines: enumeration vs the solver, the generator's distributions, hand-computed baselines."""

import itertools
import random
from collections import Counter
from fractions import Fraction

import pytest
from scipy.stats import chisquare

from r1lab.tasks import countdown
from r1lab.tasks.exact_arithmetic import evaluate
from r1lab.tasks.countdown_targets import (
    baselines,
    expression_tree_target_probabilities,
    expression_values,
    random_expression_accuracy,
    reachable_targets,
)

SMALL = dict(min_count=2, max_count=3, min_number=1, max_number=4, min_target=1, max_target=12)


@pytest.mark.parametrize("nums", [(1, 2, 3), (2, 2, 3), (1, 5, 5, 5), (3, 7, 11, 13)])
def test_reachable_targets_agree_with_the_brute_force_solver(nums):
    assert reachable_targets(nums, 1, 40) == tuple(t for t in range(1, 41) if countdown.solve(list(nums), t))


def _brute_force_tree_values(nums: tuple[int, ...]) -> Counter:
    """Value -> count over every fully bracketed expression string, evaluated by the verifier's evaluator."""

    def trees(leaves):
        if len(leaves) == 1:
            yield str(leaves[0])
            return
        for cut in range(1, len(leaves)):
            for left, right, op in itertools.product(trees(leaves[:cut]), list(trees(leaves[cut:])), "+-*/"):
                yield f"({left} {op} {right})"

    values = (evaluate(tree) for order in set(itertools.permutations(nums)) for tree in trees(order))
    return Counter(Fraction(v) for v in values if v is not None)


@pytest.mark.parametrize("nums", [(2, 2, 3), (1, 2, 3, 4), (3, 3, 8, 8)])
def test_expression_trees_match_every_distinct_bracketed_string(nums):
    counted = {Fraction(n, d): trees for (n, d), trees in expression_values(nums).items()}
    assert counted == _brute_force_tree_values(nums)


def test_expression_tree_counts_by_hand():
    # 2 shapes x 3! orders x 4^2 operators; with 2, 2, 3 only 3 orders, and 3 / (2 - 2) divides by zero.
    assert sum(expression_values((1, 2, 3)).values()) == 192
    assert sum(expression_values((2, 2, 3)).values()) == 3 * 2 * 16 - 1
    # 1 + 2, 2 + 1, 1 - 2, 2 - 1, 1 * 2, 2 * 1, 1 / 2, 2 / 1
    assert random_expression_accuracy([2, 1], 2) == Fraction(3, 8)


def _draws(generator: dict, count: int, seed: int = 0) -> dict[tuple[int, ...], Counter]:
    """Targets drawn by the generator (before deduplication), per sorted number set."""
    stream = countdown._generated_stream(generator, random.Random(seed))
    per_set: dict[tuple[int, ...], Counter] = {}
    for row in itertools.islice(stream, count):
        per_set.setdefault(countdown.number_set(row), Counter())[row["target"]] += 1
    return per_set


@pytest.mark.parametrize("rule", ["uniform_reachable", "expression_tree"])
def test_generated_targets_follow_the_exact_distribution(rule):
    per_set = _draws({**SMALL, "target": rule}, 20000)
    tested = 0
    for nums, counts in per_set.items():
        if rule == "uniform_reachable":
            expected = {t: Fraction(1, len(reachable_targets(nums, 1, 12))) for t in reachable_targets(nums, 1, 12)}
        else:
            expected = expression_tree_target_probabilities(nums, 1, 12)
        assert set(counts) <= set(expected), nums  # every drawn target is reachable and in range
        total = sum(counts.values())
        if total < 200:
            continue
        support = sorted(expected)
        observed = [counts[t] for t in support]
        result = chisquare(observed, [float(expected[t]) * total for t in support])
        assert result.pvalue > 1e-4, (nums, counts, expected)
        tested += 1
    assert tested >= 10


def test_uniform_reachable_is_flatter_than_expression_tree_on_the_sum():
    nums = (3, 5, 7)
    tree = expression_tree_target_probabilities(nums, 1, 100)
    assert max(tree, key=tree.get) == 15  # the random tree favours the sum
    assert tree[15] > 2 / len(reachable_targets(nums, 1, 100))


ROWS = [{"nums": [1, 2], "target": 3}, {"nums": [2, 1], "target": 2}, {"nums": [1, 1], "target": 1}]


def test_baselines_on_a_hand_computed_set():
    # Reachable in 1..100: {1, 2} -> {1, 2, 3}; {1, 1} -> {1, 2}. Random trees over {1, 2}: 8, values
    # 3 3 -1 1 2 2 1/2 2; over {1, 1}: 4, values 2 0 1 1. The generator's tree over {1, 2}, kept in range:
    # P(3) = 1/3, P(2) = 1/2, P(1) = 1/6 (mode 2); over {1, 1}: P(2) = 1/3, P(1) = 2/3 (mode 1).
    generator = dict(min_target=1, max_target=100)
    uniform = baselines(ROWS, {**generator, "target": "uniform_reachable"})
    tree = baselines(ROWS, {**generator, "target": "expression_tree"})
    assert uniform["best_target_blind"] == pytest.approx((1 / 3 + 1 / 3 + 1 / 2) / 3)
    assert tree["best_target_blind"] == pytest.approx((0 + 1 + 1) / 3)
    for result in (uniform, tree):
        assert result["sum_of_all"] == pytest.approx(1 / 3)
        assert result["random_valid_expression"] == pytest.approx((2 / 8 + 3 / 8 + 2 / 4) / 3)


def test_baselines_of_unreachable_targets_and_too_many_numbers():
    unreachable = baselines([{"nums": [1, 1], "target": 7}], dict(min_target=1, max_target=100, target="uniform_reachable"))
    assert unreachable == {"best_target_blind": 0.0, "sum_of_all": 0.0, "random_valid_expression": 0.0}
    assert baselines([{"nums": [1, 2, 3, 4, 5], "target": 15}], dict(min_target=1, max_target=100)) is None
