"""The "aha" metrics: does the policy start to verify, revise and search inside its think block?

TinyZero's thread describes the behaviour RL should bring out on Countdown: the model "propose[s] a
solution, self-verif[ies], and iteratively revise[s] it until it works", and Mini-R1's samples show it
as phrases ("Let me check", "Hmm", "this doesn't work") and later as lists of candidate equations
(the seed write-ups `mini-r1-blog.md`, `tinyzero-thread.txt`). These functions measure both on raw completion
strings; `R1Trainer` logs the batch means every logging step as `train/aha/<name>`:

- `reflection_rate`: share of completions whose think block holds a self-verification or revision
  marker (`REFLECTION_MARKERS`, case-insensitive, whole words).
- `equations_tried`: mean number of distinct candidate equations in the think block
  (`candidate_equations`).
- `format_rate`, `accuracy`: share of completions that the task's `format_reward` and `CORRECTNESS`
  reward score 1.0, whatever weights the run trains with.

Model output is hostile input: every scan here is linear in the text (a regex match can start only
once per run of digits and never backtracks further than one number), so a megabyte of digits,
brackets or operators costs what a megabyte of prose costs. 512 completions of ~1,000 tokens take
about 0.1 s on one CPU core.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from types import ModuleType
from typing import Any

from r1lab.tasks.answer_format import THINK_CLOSE, completion_text

# Phrases of checking a candidate against the target or abandoning it for another, each with where the
# seeds show it. Mini-R1 #1-#5 = the blog's "Successful Reasoning Samples up to step 200" in order,
# "step 200-450 #n" = those between steps 200 and 450; TinyZero = its announcement thread.
REFLECTION_MARKERS = {
    # TinyZero: "the model propose a solution, self-verify, and iteratively revise it".
    "verify": r"verif(?:y|ies|ied|ying|ication)",
    # Mini-R1 #3: "let me check: that's 125 - 80"; #3: "(59 + 80) - 66, let me calculate it".
    "let me check": r"let me (?:check|double[- ]check|recheck|calculate)",
    # Mini-R1 #2: "Let's re-evaluate", "Hey, wait on re-evaluating".
    "re-evaluate": r"re-?evaluat\w*",
    # Mini-R1 #2: "Hey, wait on re-evaluating" (the revision that finds 90 - (21 + 1)).
    "wait": r"wait",
    # Mini-R1 #3: "Hmm, I need to think of another combination"; #5: "Hmm, let me try".
    "hmm": r"hmm+",
    # Mini-R1 #1: "Let me correct my approach", "let me correct: 80 - (70 / 14)".
    "let me correct": r"let me correct",
    # Mini-R1 #3: "This way doesn't work either"; #5: "so this doesn't work".
    "doesn't work": r"(?:doesn'?t|does not|didn'?t|won'?t) work",
    # Mini-R1 #4: "This is not working either", "This is not helping".
    "not working": r"not (?:working|helping)",
    # Mini-R1 #1: "still isn't quite right", "still incorrect"; #3: "which is still not 45".
    "still not": r"still (?:not|isn'?t|incorrect|wrong)",
    # Mini-R1 #2: "too far from 68", "too much"; #3: "too high"; step 200-450 #1: "(too low)".
    "too high/low": r"too (?:high|low|far|much|large|small|big)",
    # Mini-R1 #2: "let's try another multiplication"; #3, #4: "Let me try a different approach";
    # step 200-450 #2: "(not an integer, let's try another)".
    "try another": r"try (?:another|a different|something else)|different approach",
    # Mini-R1 step 200-450 #1: "(this works)"; #2: "= 24 ! This works." -- the check that ends the search.
    "this works": r"this works",
}
_MARKERS = re.compile(r"\b(?:" + "|".join(REFLECTION_MARKERS.values()) + r")\b")

# A candidate equation: two or more numbers joined by binary operators, brackets hugging the numbers
# ("80 + (70 / 14)"). A match starts at the first digit of a number (the look-behind), so a long digit
# run is tried once, not once per character, and re's fast scan for a digit finds the starts; its
# opening brackets and sign are added in candidate_equations.
_NUMBER = r"\(*\d+(?:\.\d+)?\)*"
_EXPRESSION = re.compile(rf"\d(?<![\d.)]\d)\d*(?:\.\d+)?\)*(?: *[-+*/×÷−] *{_NUMBER})+")
# After one of these, an expression is a step of the equation before it ("84 - 16" in
# "55 + 39 - 16 = 84 - 16 = 68", "80 / 5" in "80 / (70 / 14) → 80 / 5 = 16"), not a new candidate.
_CHAIN = ("=", "→", "≈")


def think_block(completion: str) -> str:
    """The reasoning part of a completion: everything before the first ``</think>`` (all of it if none).

    Prompts end with the ``<think>`` prefill, so a completion starts inside the think block.
    """
    end = completion.find(THINK_CLOSE)
    return completion if end < 0 else completion[:end]


def reflection_markers(text: str) -> list[str]:
    """The reflection markers in ``text``, lower-cased, in order (see REFLECTION_MARKERS)."""
    return [match.group(0) for match in _MARKERS.finditer(_normalized(text))]


def has_reflection(text: str) -> bool:
    """True iff ``text`` holds at least one self-verification or revision marker."""
    return _MARKERS.search(_normalized(text)) is not None


def _normalized(text: str) -> str:
    """Lower case with typographic apostrophes made plain, as the markers are written."""
    return text.lower().replace("\u2019", "'")


def expression_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of every maximal arithmetic expression of two or more numbers in ``text``, in order.

    Numbers joined by + - * / × ÷ −, with brackets hugging the numbers; the span takes in the opening
    brackets before the first number and a ``-`` sign right before them ("= -38 + 34"), not a bullet dash
    ("- 21 - 5 - 40" starts at 21). Linear in the text (see the module docstring).
    """
    for match in _EXPRESSION.finditer(text):
        start = match.start()
        while start > 0 and text[start - 1] == "(":
            start -= 1
        if start > 0 and text[start - 1] == "-":  # a sign, as in "= -38 + 34"; "- 21" is a bullet
            start -= 1
        yield start, match.end()


def candidate_equations(text: str) -> list[str]:
    """The distinct candidate equations in ``text``, spaces removed, in order of first appearance.

    A candidate is an expression of ``expression_spans`` that does not continue an equation (is not right
    after ``=``, ``→`` or ``≈``). So ``55 + 39 - 16 = 84 - 16 = 68`` is one candidate (``55+39-16``); a bullet
    dash before a line ("- 21 - 5 - 40") is not part of it; an equation restated later ("So, the equation is
    55 - 16 + 39 = 78") is not counted again. Expressions in words ("subtract 66 from 80") are not seen.
    """
    seen: dict[str, None] = {}
    for start, end in expression_spans(text):
        before = start
        while before > 0 and text[before - 1] in " \t":
            before -= 1
        if before > 0 and text[before - 1] in _CHAIN:
            continue
        seen.setdefault(text[start:end].replace(" ", ""), None)
    return list(seen)


def aha_scores(
    completions: Sequence[Any], task: ModuleType | None = None, columns: Mapping[str, Sequence[Any]] | None = None
) -> dict[str, list[float]]:
    """Per-completion scores, metric name -> one value per completion; their mean is the logged metric.

    ``reflection_rate`` (0/1) and ``equations_tried`` (a count) read the think block. With a task (and the
    dataset ``columns`` of each completion's row, as TRL passes them to rewards), ``accuracy`` is its
    CORRECTNESS reward == 1.0 and ``format_rate`` its ``format_reward`` == 1.0 (when it has one).
    """
    thinks = [think_block(completion_text(c)) for c in completions]
    scores = {
        "reflection_rate": [float(has_reflection(t)) for t in thinks],
        "equations_tried": [float(len(candidate_equations(t))) for t in thinks],
    }
    if task is not None:
        columns = dict(columns or {})
        scores["accuracy"] = _solved(task.REWARDS[task.CORRECTNESS], completions, columns)
        if "format_reward" in task.REWARDS:
            scores["format_rate"] = _solved(task.REWARDS["format_reward"], completions, columns)
    return scores


def _solved(reward, completions: Sequence[Any], columns: Mapping[str, Sequence[Any]]) -> list[float]:
    return [1.0 if score == 1.0 else 0.0 for score in reward(completions=list(completions), **columns)]
