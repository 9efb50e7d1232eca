"""Search metrics of held-out completions on hand-written and hostile completions."""

import time

import pytest

from r1lab.search_metrics import answer_is_sum, holds_solution, search_metrics, value_statements

NUMS, TARGET = [3, 4, 2], 14
SEARCHING = (
    " Let me try 3 + 4 + 2 = 9, too low. 4 * 3 - 2 = 10, no. 8 / 3 = 2.67 hmm."
    " (3 + 4) * 2 = 14 works.</think>\n<answer> (3 + 4) * 2 </answer>"
)
SHORTCUT = " 3 + 4 + 2 = 10</think>\n<answer> 2 + (3 + 4) = 9 </answer>"
RAMBLING = " I am thinking about numbers and such things"


def words(texts):
    return [len(text.split()) for text in texts]


def test_value_statements_judge_each_stated_value_exactly():
    assert value_statements(SEARCHING) == [True, True, False, True]  # 8 / 3 is not 2.67
    assert value_statements(SHORTCUT) == [False, True]  # the think block's 10 is wrong, the answer's 9 right
    # Chains: "84 - 16" follows an "=", but it states its own value; "68 + 1" is no value of 84 - 16.
    assert value_statements("55 + 39 - 16 = 84 - 16 = 68 + 1") == []
    assert value_statements("55 + 39 - 16 = 78 and 84 - 16 = 68") == [True, True]
    assert value_statements("7 × 6 = 42, 9 ÷ 2 = 4.5, 1 − 3 = -2") == [True, True, True]
    # Outside the verifier's grammar: not judged at all.
    assert value_statements("-38 + 34 = -4, 2.5 * 2 = 5, 1 / 0 = 1, 3 + = 3") == []


def test_a_solution_in_the_think_block_must_use_every_number_once_and_hit_the_target():
    assert holds_solution(SEARCHING, NUMS, TARGET)
    assert not holds_solution(SHORTCUT, NUMS, TARGET)
    assert not holds_solution("4 * 3 + 2 = 14", [4, 3, 2, 2], TARGET)  # a number left out
    assert not holds_solution("7 * 2 = 14", NUMS, TARGET)  # 7 is not one of the numbers
    assert holds_solution("so ((3 + 4) * 2)) is it", NUMS, TARGET)  # the scan's extra bracket is dropped


def test_answer_is_sum_only_for_all_numbers_added():
    assert answer_is_sum(SHORTCUT, NUMS)
    assert answer_is_sum("</think><answer>4+3+2</answer>", NUMS)
    assert not answer_is_sum(SEARCHING, NUMS)
    assert not answer_is_sum("</think><answer> 3 + 4 </answer>", NUMS)  # not all numbers
    assert not answer_is_sum("</think><answer> 3 + 4 + 2 + 2 </answer>", NUMS)
    assert not answer_is_sum(RAMBLING, NUMS)


def test_search_metrics_over_a_batch():
    completions = [SEARCHING, SHORTCUT, RAMBLING]
    rows = [{"nums": NUMS, "target": TARGET}] * 3
    metrics = search_metrics(completions, rows, words)
    thinks = [SEARCHING.split("</think>")[0], SHORTCUT.split("</think>")[0], RAMBLING]
    assert metrics["think_tokens"] == pytest.approx(sum(len(t.split()) for t in thinks) / 3)
    # Distinct candidates: 3+4+2, 4*3-2, 8/3, (3+4)*2 in the first; 3+4+2 in the second.
    assert metrics["candidates_tried"] == pytest.approx((4 + 1 + 0) / 3)
    assert metrics["think_value_correct_rate"] == pytest.approx(3 / 5)
    assert metrics["think_has_solution_rate"] == pytest.approx(1 / 3)
    assert metrics["answer_is_sum_rate"] == pytest.approx(1 / 3)
    # No stated value anywhere: the rate is absent, not 0; rows of another task get no countdown metrics.
    assert set(search_metrics([RAMBLING], [{"question": "x"}], words)) == {"think_tokens", "candidates_tried"}


HOSTILE = [
    "1" * 200_000,
    "1+" * 100_000 + "1 = 2",
    "(" * 50_000 + "1 + 2" + ")" * 50_000 + " = 3",
    "1 + 1 = " + "9" * 100_000,
    ("1 + 1 =" + " " * 1000) * 200,
    "= -" * 100_000,
    "1" + ".1" * 100_000,
    "9 * 9 * " * 5_000 + "9 = 1",
    "<answer>" + "1 + " * 50_000 + "1</answer>",
    "<answer></answer>" * 10_000,
    "٣ + ٤ = ٧ and ３ + ４ = ７",  # non-ASCII digits are no numbers of the grammar
]


def test_hostile_completions_are_bounded_and_never_raise():
    rows = [{"nums": [1, 2, 3], "target": 6}] * len(HOSTILE)
    started = time.process_time()
    metrics = search_metrics(HOSTILE, rows, words)
    assert time.process_time() - started < 5
    assert 0.0 <= metrics["think_has_solution_rate"] <= 1.0 and metrics["answer_is_sum_rate"] == 0.0
    assert value_statements("1 + 1 = " + "9" * 100_000) == [False]
