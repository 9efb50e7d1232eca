"""The aha metrics (r1lab/aha.py) on Mini-R1's own successful samples and on hand-made cases.

The eight samples below are the blog's "Successful Reasoning Samples" (seed write-up `mini-r1-blog.md`),
verbatim but for the leading ``<think>`` (the prompt's prefill) and trailing spaces: five in words from
before step 200, three "programmatic" ones from steps 200-450. Expected counts were made by hand.
"""

from __future__ import annotations

import time

import pytest

from r1lab.aha import aha_scores, candidate_equations, has_reflection, reflection_markers, think_block
from r1lab.tasks import countdown, sanity

# --- Mini-R1's samples -------------------------------------------------------------------------

VERBAL_85 = """ First, I need to think about the numbers we have: 14, 70, and 80. To get 85, I think 80 might be a good starting point because it's right in between 85. If I subtract or add 80, it won't lead to 85 easily. Next, 70 seems to be a good intermediate number, especially to use in conjunction with 14.
Now, I can think about different combinations using addition, subtraction and multiplication/division. If I take 80 - 70 = 10, which is not needed. So, I need to find a way to use 14. If I subtract 14 from 80, I get 66, which still isn't 85. If I subtract 70 from 80, I get 10 again, this isn't constructive yet.
Multiplication could create numbers larger than the target 85. Let's consider division: If I divide 70 by 14, I get 5. Then if I add this result to 80, I get 85. This combination seems promising: 80 - (70 / 14) = 80 - 5 = 75, this still isn't quite right. Let me correct my approach: Let's use division and then addition. If I take 80 / (70 / 14) → 80 / 5 = 16, and then 80 - 16 = 64, still incorrect. Let me simplify: 80 / (70 / 14) → 80 / 5 = 16, and then 80 - 16 gives 64 again, let me correct: 80 - (70 / 14) → 80 - 5 = 75, but I need 85. Thus I will use the combinations in a slightly different order to insert numbers: I get 80 + (70 / 14) = 80 + 5 = 85</think>
<answer> 80 + (70 / 14) </answer>
"""

VERBAL_68 = """ First, I need to consider how I can use the numbers 1, 21, and 90 to reach 68. I can try different combinations of operations. Let's try to use subtraction and addition. If I subtract 90 from 21, I get -69, which is too far from 68. Now, if I add 1 to 90, I get 91, which is also not right. Another way is to see what happens if I subtract 21 from 90, which gives me 69. This is closer but still not 68. Let me use multiplication instead of subtraction. 90 * 1 = 90. Now, if I try to reduce this slightly by subtracting 21, I am not getting close to 68.
Now, let's try another multiplication. I'll think of 1 * (larger value) + (smaller value). Let's try 1 * 90 + 21. This evaluates to 90 + 21 = 111, which is too much. Instead, I will try: 90 / 1 + 21 - 7. But this gives a division by 7, which seems complex. Let's re-evaluate: I'll use 1 to divide 21: 21 / 1 = 21. Now, subtract 21 from 90, and add 1, we have 90 - 21 = 69, using one...
Hey, wait on re-evaluating I will subtract 21 from 90, and include 1 to complete the solution: 90 - (21 + 1) which would be 68.</think>
<answer> 90 - (21 + 1) </answer>
"""

VERBAL_45 = """ First, I need to consider the numbers we have: 59, 80, and 66. I need to use these numbers to get 45. Let's try to use subtraction first since it can quickly reduce large numbers.
Let's see if we can get close by subtracting or adding these numbers. If I subtract 66 from 80, I get 14. Then I need to make this 14 equal 45 when combined with 59. That gives me 14 + 59 = 73, which is too high.
Now let's try adding numbers. If I add 59 and 66, I get 125. Then I would need to subtract 80 from 125 to get 45, but 80 is too large to fit well with this.
Let me try a different approach. What if I subtract 66 from 80 first and then add 59? That would be 14 + 59 = 73, which is still not 45.
Hmm, I need to think of another combination. What if I start with 59 and then add 80 and subtract 66? That would be (59 + 80) - 66, let me calculate it. That equals 139 - 66, which is 73.
That's still not 45, so let me try rearranging it slightly: maybe 80 - 66 + 59 would be closer to 45. Calculating again: 80 - 66 is 14, then adding 59 gives 73.
This way doesn't work either. Let's flip this: maybe (59 + 66) - 80. Let me check: that's 125 - 80, which equals 45.</think>
<answer>(59 + 66) - 80</answer>
"""

VERBAL_50 = """ First, I need to find a combination of the numbers 61, 4, 94, and 21 that can be manipulated using basic arithmetic operations to equal 50. One way to approach this is to look for numbers that can be used to reach a target number close to 50 and then adjust with the remaining numbers.
Let's try combining 94 and 21 first:
94 + 21 = 115
Now, we need to get from 115 to 50. We can try subtracting 65:
115 - 65 = 50
Now we need to find a way to get 65 using the remaining numbers 61 and 4. We can try:
61 - 4 = 57
Now we need to get from 57 to 65. Adding 8 would give us that:
57 + 8 = 65
So, we need to find a way to get 8 using 61 and 4. We can try:
61 - 94 = -36
This is negative, so let's try dividing:
61 / 94 = 0.648987...
This is not helping, so let's try multiplication and division in a different way:
(61 - 4) * (94 / 21) = 57 * 4.476... = 254.4
This is not working either. Let's try a different approach:
(94 - 61) = 33
Now we have:
33 + 21 = 54
We need to adjust from 54 to 50, so we can:
54 - 4 = 50
So, the equation becomes:
(94 - 61) + (21 - 4) = 50
</think>
<answer>(94 - 61) + (21 - 4)</answer>
"""

VERBAL_31 = """ First, I'll consider the possibility of directly subtracting two numbers to get close to 31. If I subtract 57 from 63, I get 7. Now, if I subtract this 7 from 25, I get 25 - 7 = 18. Far from 31, so this doesn't work.
Next, let's try adding and subtracting. Dividing 63 by 25 will give a decimal, so that's unlikely to work. Now, let's see if adding and subtracting in another order could work. For example, let's try 63 - 25, and then we see this gets us 38. Now, we need a way to get to 31 from here. Subtracting 7 from 38 would work, but we can't figure out how to create that 7 from the given numbers.
Hmm, let me try to incorporate all numbers by adding and subtracting. If I try 63 + 25, I get 88. This is quite far from 31, but if 88 - 57, I get 31 exactly!
This seems to be the equation: 63 + 25 - 57 equals 31.
</think>
<answer> 63 + 25 - 57 </answer>
"""

PROGRAMMATIC_78 = """ We need to use the numbers 39, 16, and 55 with basic arithmetic operations to get 78. Let's try different combinations:
- 55 + 39 - 16 = 84 - 16 = 68 (too low)
- 55 + 16 - 39 = 71 - 39 = 32 (too low)
- 55 - 16 + 39 = 39 + 39 = 78 (this works)
So, the equation is 55 - 16 + 39 = 78. </think>
<answer> 55 - 16 + 39 </answer>
"""

PROGRAMMATIC_24 = """ We need to use the numbers 21, 5, and 40 with basic arithmetic operations to get 24. Let's try different combinations:
- 21 - 5 - 40 = -15
- 21 - 5 + 40 = 56
- 21 + 5 - 40 = -14
- 21 * 5 / 40 = 2.1 (not an integer, let's try another)
- 40 * 5 / 21 = 9.52 (not 24)
- 40 / 5 - 21 = 9 - 21 = -12
- 5 * 40 / 21 = 100 / 21 ~= 4.76 (not 24)
- 5 + 40 - 21 = 24 ! This works.
</think>
<answer> 5 + 40 - 21 </answer>
"""

PROGRAMMATIC_72 = """ We need to use the numbers 75, 99, 62, and 34 with basic arithmetic operations to get 72. Let's try different combinations:
- 99 - 75 + 62 - 34 = 92 - 34 = 58 (too high)
- 99 - 75 - 62 + 34 = 24 - 62 + 34 = -38 + 34 = -4 (too low)
- 99 + 75 - 62 - 34 = 174 - 96 = 78 (too high)
- 99 + 75 - 62 + 34 = 174 + 34 - 62 = 208 - 62 = 146 (too high)
- 99 - 75 + 62 + 34 = 24 + 96 = 120 (too high)
- 75 + 99 - 62 - 34 = 174 - 96 = 78 (too high)
- 75 + 99 - 62 + 34 = 174 + 34 - 62 = 208 - 62 = 146 (too high)
- 75 + 62 - 99 + 34 = 137 - 99 + 34 = 38 + 34 = 72
So, 75 + 62 - 99 + 34 equals 72.
</think>
<answer> 75 + 62 - 99 + 34 </answer>
"""


# The blog's reward-function examples.
ONE_GUESS = """We need to find an equation using the numbers 19, 36, 55, and 7
exactly once, with basic arithmetic operations, that equals 65. One possible
combination is 55 + 36 - 19 + 7... </think>

<answer> 55 + 36 - 7 - 19 </answer>"""
NO_THINKING = """User: Using the numbers [19, 36, 55, 7], create an equation that equals 65."""


# --- candidate equations -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        (VERBAL_85, ["80-70", "80-(70/14)", "80/(70/14)", "80-16", "80+(70/14)"]),
        (VERBAL_68, ["90*1", "1*90+21", "90+21", "90/1+21-7", "21/1", "90-21", "90-(21+1)"]),
        (VERBAL_45, ["14+59", "(59+80)-66", "139-66", "80-66+59", "80-66", "(59+66)-80", "125-80"]),
        (VERBAL_50, ["94+21", "115-65", "61-4", "57+8", "61-94", "61/94", "(61-4)*(94/21)", "(94-61)", "33+21",
                     "54-4", "(94-61)+(21-4)"]),
        (VERBAL_31, ["25-7", "63-25", "63+25", "88-57", "63+25-57"]),
        # "55 + 39 - 16 = 84 - 16 = 68" is one candidate; the closing restatement is not a new one.
        (PROGRAMMATIC_78, ["55+39-16", "55+16-39", "55-16+39"]),
        (PROGRAMMATIC_24, ["21-5-40", "21-5+40", "21+5-40", "21*5/40", "40*5/21", "40/5-21", "5*40/21", "5+40-21"]),
        (PROGRAMMATIC_72, ["99-75+62-34", "99-75-62+34", "99+75-62-34", "99+75-62+34", "99-75+62+34",
                           "75+99-62-34", "75+99-62+34", "75+62-99+34"]),
        (ONE_GUESS, ["55+36-19+7"]),
        (NO_THINKING, []),
    ],
)
def test_candidate_equations_in_mini_r1_samples(completion, expected):
    assert candidate_equations(think_block(completion)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("55 + 36 - 7 = 84", ["55+36-7"]),
        # A chain is one candidate, whatever links its steps (=, ->, ~=, a negative intermediate).
        ("99 - 75 - 62 + 34 = 24 - 62 + 34 = -38 + 34 = -4", ["99-75-62+34"]),
        ("80 / (70 / 14) → 80 / 5 = 16", ["80/(70/14)"]),
        ("5 * 40 / 21 = 100 / 21 ~= 4.76", ["5*40/21"]),
        # Bullets are not minus signs; × and ÷ are operators; decimals are numbers.
        ("- 21 - 5 - 40 = -15\n- 3 × 4 ÷ 2.5", ["21-5-40", "3×4÷2.5"]),
        # Repeats count once; spacing does not make a new candidate.
        ("1 + 2, then 1+2, then 1 +  2 = 3", ["1+2"]),
        # A single number, a list of numbers, numbers in words or with unknowns are not candidates.
        ("the numbers [19, 36, 55, 7] and the target 65; 7 from 38; 1 * (larger value) + x", []),
        ("", []),
    ],
)
def test_candidate_equation_cases(text, expected):
    assert candidate_equations(text) == expected


def test_think_block_is_everything_before_the_first_close_tag():
    assert think_block("a 1 + 2 </think> <answer> 3 + 4 </answer>") == "a 1 + 2 "
    assert think_block("no tag 1 + 2") == "no tag 1 + 2"
    assert candidate_equations(think_block(ONE_GUESS)) == ["55+36-19+7"]  # not the answer's 55 + 36 - 7 - 19


# --- reflection markers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        (VERBAL_85, ["still isn't", "still isn't", "let me correct", "still incorrect", "let me correct"]),
        (VERBAL_68, ["too far", "still not", "try another", "too much", "re-evaluate", "wait", "re-evaluating"]),
        (VERBAL_45, ["too high", "too large", "try a different", "still not", "hmm", "let me calculate", "still not",
                     "doesn't work", "let me check"]),
        (VERBAL_50, ["not helping", "not working", "try a different"]),
        (VERBAL_31, ["doesn't work", "hmm"]),
        (PROGRAMMATIC_78, ["too low", "too low", "this works"]),
        (PROGRAMMATIC_24, ["try another", "this works"]),
        (PROGRAMMATIC_72, ["too high", "too low"] + ["too high"] * 5),
        (ONE_GUESS, []),
        (NO_THINKING, []),
    ],
)
def test_reflection_markers_in_mini_r1_samples(completion, expected):
    assert reflection_markers(think_block(completion)) == expected


@pytest.mark.parametrize(
    "text",
    ["Wait, that's wrong", "HMMM.", "let me verify", "self-verification", "Let me double-check: 3 + 4",
     "it didn’t work", "that does not work", "Let me re-evaluate", "reevaluating", "try something else"],
)
def test_reflection_marker_variants(text):
    assert has_reflection(text)


@pytest.mark.parametrize(
    "text",
    # Whole words only: "await" is not "wait", "hmmx" is not "hmm"; plain statements are not reflection.
    ["await the result", "waiter", "hmmx", "I add 3 and 4 to get 7", "this is correct", ""],
)
def test_no_reflection(text):
    assert not has_reflection(text)


# --- per-completion scores ---------------------------------------------------------------------


def test_aha_scores_with_the_countdown_task():
    completions = [
        VERBAL_31,  # solved, well formatted, reflects, 5 candidates
        " 1 + 2 = 3 </think>\n<answer> 1 + 2 </answer>",  # formatted but wrong
        " hmm </think> <answer> 63 + 25 - 57 </answer> trailing",  # right answer, bad format
        " Wait </think> <answer> 3 </answer>",  # the marker is in the think block
    ]
    columns = {"nums": [[63, 25, 57], [63, 25, 57], [63, 25, 57], [1, 2]], "target": [31, 31, 31, 3]}
    scores = aha_scores(completions, countdown, columns)
    assert scores == {
        "reflection_rate": [1.0, 0.0, 1.0, 1.0],
        "equations_tried": [5.0, 1.0, 0.0, 0.0],
        "accuracy": [1.0, 0.0, 1.0, 0.0],
        "format_rate": [1.0, 1.0, 0.0, 1.0],
    }


def test_aha_scores_without_format_reward_or_task():
    # The sanity task has no format_reward: no format_rate. Without a task, only the text metrics.
    assert set(aha_scores(["12345 wait"], sanity, {"id": [1], "instruction": ["x"]})) == {
        "reflection_rate", "equations_tried", "accuracy"}
    assert aha_scores([[{"role": "assistant", "content": "hmm 1 + 2"}]]) == {
        "reflection_rate": [1.0], "equations_tried": [1.0]}


HOSTILE = {
    "digits": "1" * 400_000,
    "brackets": "(" * 400_000,
    "one long sum": "1 + " * 100_000,
    "spaces": " " * 400_000,
    "dotted digits": "1." * 200_000,
    "a long chain": "= " * 200_000 + "1 + 2",
    "signs and brackets": "-(" * 200_000,
    "almost a marker": "wai " * 100_000,
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_completions_take_linear_time(text):
    # Model output is hostile input: 400 kB of pathological text must cost about what prose costs.
    started = time.perf_counter()
    aha_scores([text], countdown, {"nums": [[1, 2]], "target": [3]})
    assert time.perf_counter() - started < 1.0
