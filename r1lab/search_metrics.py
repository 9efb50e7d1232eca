"""Search metrics of held-out completions: does the policy search, is its arithmetic right, does it shortcut?

The held-out evaluation (r1lab/evaluation.py) logs these at every evaluation, step 0 included, beside
accuracy, so a run shows whether RL grew the search or collapsed it to a target-blind answer (the
laptop-aha spike saw completions shrink to ``a + b + c``):

- ``think_tokens``: mean think-block length in tokens (the think block as r1lab.aha.think_block cuts it).
- ``candidates_tried``: mean number of distinct candidate equations in the think block (r1lab.aha).
- ``think_value_correct_rate``: of all "expression = value" statements in the think blocks, the share whose
  value is exactly right (``value_statements``); absent when no think block states a value.
- ``think_has_solution_rate``: share of completions whose think block holds an expression that uses every
  number once and reaches the target (r1lab.tasks.countdown.is_correct_equation). Countdown rows only.
- ``answer_is_sum_rate``: share of completions whose final answer adds up all the numbers and does
  nothing else (``answer_is_sum``). Countdown rows only.

Model output is hostile input: expressions are found by r1lab.aha's linear-time scan, each is cut to
MAX_EXPRESSION_CHARS before it is touched and evaluated by the exact, eval-free evaluator of
r1lab.tasks.exact_arithmetic; claimed values are parsed only when short. Hand-written because these
metrics are defined by r1lab's own verifier.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from r1lab.aha import candidate_equations, expression_spans, think_block
from r1lab.tasks.answer_format import completion_text, last_answer
from r1lab.tasks.countdown import is_correct_equation
from r1lab.tasks.exact_arithmetic import MAX_EXPRESSION_CHARS, evaluate, tokenize

# "= value" right after an expression: an optionally signed integer or decimal that no operator continues
# (in "84 - 16 = 68 + 1" the 68 is not the value of 84 - 16). Possessive quantifiers: no backtracking.
_CLAIM = re.compile(r" *+= *+(-?\d++(?:\.\d++)?+)(?! *+[-+*/×÷−] *+\(*+\d)")
# A claimed value longer than this cannot equal an expression of MAX_EXPRESSION_CHARS characters.
_MAX_CLAIM_CHARS = 2 * MAX_EXPRESSION_CHARS
_ASCII_OPERATORS = str.maketrans({"×": "*", "÷": "/", "−": "-"})


def _expression(span: str) -> str | None:
    """A scanned span as the verifier's grammar writes it: ASCII operators, brackets the scan cut balanced."""
    if len(span) > MAX_EXPRESSION_CHARS:
        return None
    text = span.translate(_ASCII_OPERATORS)
    # The scan takes brackets hugging numbers, so "(3 + 4) * 2)" ends with one too many and "(3 + 4" opens one.
    excess = text.count(")") - text.count("(")
    if excess > 0 and text.endswith(")" * excess):
        text = text[:-excess]
    elif excess < 0 and text.startswith("(" * -excess):
        text = text[-excess:]
    return text


def value_statements(think: str) -> list[bool]:
    """One entry per "expression = value" statement in ``think``: is the value exactly the expression's?

    The expression is one of r1lab.aha.expression_spans; a statement counts only if the verifier's grammar
    reads the expression (so a signed "-38 + 34 = -4" or "2.5 * 2 = 5" is not judged). "8 / 3 = 2.67" is
    wrong: values are compared exactly.
    """
    verdicts = []
    for start, end in expression_spans(think):
        claim = _CLAIM.match(think, end)
        expression = _expression(think[start:end]) if claim else None
        if expression is None or expression.startswith("-"):
            continue
        value = evaluate(expression)
        if value is None:
            continue
        claimed = claim.group(1)
        verdicts.append(len(claimed) <= _MAX_CLAIM_CHARS and Fraction(claimed) == value)
    return verdicts


def holds_solution(think: str, nums: Sequence[int], target: int) -> bool:
    """True iff an expression in ``think`` uses every number of ``nums`` once and equals ``target`` exactly."""
    for start, end in expression_spans(think):
        expression = _expression(think[start:end])
        if expression is not None and is_correct_equation(expression, nums, target):
            return True
    return False


def answer_is_sum(completion: str, nums: Sequence[int]) -> bool:
    """True iff the last ``<answer>`` is every number of ``nums`` once joined only by ``+`` (brackets and a
    trailing ``= value`` allowed): the target-blind shortcut, whatever the target."""
    answer = last_answer(completion)
    if answer is None or len(answer) > MAX_EXPRESSION_CHARS:
        return False
    tokens = tokenize(answer.partition("=")[0].translate(_ASCII_OPERATORS))
    if tokens is None:
        return False
    numbers = sorted(t for t in tokens if type(t) is int)
    return numbers == sorted(int(n) for n in nums) and all(t in ("+", "(", ")") for t in tokens if type(t) is str)


def search_metrics(
    completions: Sequence[Any], rows: Sequence[Mapping[str, Any]], count_tokens: Callable[[list[str]], list[int]]
) -> dict[str, float]:
    """The module's metrics over ``completions`` of ``rows`` (one each); ``count_tokens`` gives token lengths."""
    texts = [completion_text(c) for c in completions]
    thinks = [think_block(text) for text in texts]
    metrics = {
        "think_tokens": sum(count_tokens(thinks)) / len(thinks),
        "candidates_tried": sum(len(candidate_equations(think)) for think in thinks) / len(thinks),
    }
    verdicts = [verdict for think in thinks for verdict in value_statements(think)]
    if verdicts:
        metrics["think_value_correct_rate"] = sum(verdicts) / len(verdicts)
    if rows and "nums" in rows[0] and "target" in rows[0]:
        puzzles = [([int(n) for n in row["nums"]], int(row["target"])) for row in rows]
        metrics["think_has_solution_rate"] = sum(
            holds_solution(think, nums, target) for think, (nums, target) in zip(thinks, puzzles, strict=True)
        ) / len(thinks)
        metrics["answer_is_sum_rate"] = sum(
            answer_is_sum(text, nums) for text, (nums, _) in zip(texts, puzzles, strict=True)
        ) / len(texts)
    return metrics
