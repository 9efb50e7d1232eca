"""Countdown verifier: Mini-R1's samples, the answer grammar case by case, hostile inputs, and a property test."""

import time
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r1lab.tasks.answer_format import last_answer
from r1lab.tasks.countdown import equation_reward, format_reward, is_correct_equation

NUMS = [19, 36, 55, 7]

# Mini-R1's test samples, verbatim from the blog (seed write-up `mini-r1-blog.md`).
CORRECT_SAMPLE_1 = """We need to find an equation using the numbers 19, 36, 55, and 7
exactly once, with basic arithmetic operations, that equals 65. One possible
combination is 55 + 36 - 19 + 7... </think>

<answer> 55 + 36 - 7 - 19 </answer>"""
CORRECT_SAMPLE_2 = """ ... </think>

<answer> 55 + 36 - 7 - 19 </answer>"""
WRONG_FORMAT = """User: Using the numbers [19, 36, 55, 7], create an equation that equals 65."""
WRONG_FORMAT_2 = """To find the equation that equals 79 using the numbers 95, 78, 6, 88, I'll start by adding 88 and 95:
95 + 88 = 183
Now, let's subtract 104 from 183 to get 79:
183 - 104 = 79
<think> 183 - 104 = 79 </think><think> 183 - 104 = 79 </think><answer> 183 - 104 = 79 </answer>"""
WRONG_RESULT = """ ... </think>

<answer> 55 + 36 - 7 - 18 </answer>"""
BLOG_SAMPLES = [CORRECT_SAMPLE_1, CORRECT_SAMPLE_2, WRONG_FORMAT, WRONG_FORMAT_2, WRONG_RESULT]


def score(answer_block: str, nums=NUMS, target=65) -> float:
    """equation_reward of a completion whose answer block holds ``answer_block``."""
    return equation_reward([f"thinking </think>\n<answer>{answer_block}</answer>"], nums=[nums], target=[target])[0]


def test_blog_samples_score_as_the_blog_asserts():
    kwargs = dict(target=["65"] * 5, nums=[NUMS] * 5)
    assert format_reward(BLOG_SAMPLES, **kwargs) == [1.0, 1.0, 0.0, 0.0, 1.0]
    assert equation_reward(BLOG_SAMPLES, **kwargs) == [1.0, 1.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    "answer, expected",
    [
        (" 55 + 36 - 7 - 19 ", 1.0),
        ("55+36-7-19", 1.0),
        ("(55 + 36) - (7 + 19)", 1.0),
        ("((((55 + 36))) - 7) - 19", 1.0),
        ("\n55 + 36 - 7 - 19\n", 1.0),
        ("55 + 36 - 7 - 19 = 65", 1.0),
        ("55 + 36 - 7 - 19 =65", 1.0),
        ("55 + 36 - 7 - 19 = 64", 0.0),  # claimed result is not the target
        ("55 + 36 - 7 - 19 = 65 = 65", 0.0),
        ("55 + 36 - 7 - 19 = 65.0", 0.0),
        ("55 + 36 - 7 - 19 = 60 + 5", 0.0),
        ("55 + 36 - 7 - 19 =", 0.0),
        ("= 65", 0.0),
        ("55 + 36 - 7 - 18", 0.0),  # wrong number
        ("55 + 36 - 7", 0.0),  # missing number
        ("55 + 36 - 7 - 19 + 0", 0.0),  # extra number
        ("55 + 55 - 7 - 19", 0.0),  # reuse instead of 36
        ("55 + 36 - 7 - 19 + 19 - 19", 0.0),  # reuse that keeps the value
        ("55 + 36 - 7 - 19 * 1", 0.0),
        ("-19 + 55 + 36 - 7", 0.0),  # unary minus
        ("55 + 36 + -7 - 19 + 14", 0.0),
        ("+55 + 36 - 7 - 19", 0.0),
        ("55 + 36 - 7 ** 1 - 19", 0.0),
        ("55 + 36 - 7.0 - 19", 0.0),  # decimals
        ("55 + 36 - 7 - 19.", 0.0),
        ("55 + 36 − 7 − 19", 0.0),  # Unicode minus sign
        ("55 + 36 - 7 - 1 9", 0.0),
        ("55 + 36 - 7 - (19)()", 0.0),
        ("55 + 36 - 7 - (19", 0.0),
        ("55 + 36 - 7 - 19)", 0.0),
        ("55 + 36 - 7 - 19 +", 0.0),
        ("", 0.0),
        ("   ", 0.0),
        ("55 + 36 - 7 - 19 # comment", 0.0),
        ("__import__('os')", 0.0),
        ("55 + 36 - 7 - ١٩", 0.0),  # Arabic-Indic digits: str.isdigit() is true for them
        ("55 + 36 - 7 - １９", 0.0),  # fullwidth digits
        ("55 + 36 - 7 - 19\x00", 0.0),
    ],
)
def test_answer_grammar(answer, expected):
    assert score(answer) == expected


def test_last_answer_block_wins():
    first_right = "</think><answer>55 + 36 - 7 - 19</answer> no wait <answer>55 + 36</answer>"
    last_right = "</think><answer>55 + 36</answer> no wait <answer>55 + 36 - 7 - 19</answer>"
    truncated_after = "</think><answer>55 + 36 - 7 - 19</answer> hmm <answer>55 +"
    kwargs = dict(nums=[NUMS] * 3, target=[65] * 3)
    assert equation_reward([first_right, last_right, truncated_after], **kwargs) == [0.0, 1.0, 1.0]


def test_exact_rational_arithmetic():
    assert score("(1 + 2) / 3", nums=[1, 2, 3], target=1) == 1.0
    assert score("1 / 3 * 3", nums=[1, 3, 3], target=1) == 1.0
    assert score("6 / 4 * 2", nums=[6, 4, 2], target=3) == 1.0
    assert score("1 / 3 + 1", nums=[1, 3, 1], target=1) == 0.0  # 4/3 is not an integer target
    assert score("(1 / 3 + 1 / 3 + 1 / 3) * 7", nums=[1, 3, 1, 3, 1, 3, 7], target=7) == 1.0
    assert score("(10 - 10 / 3) * 3", nums=[10, 10, 3, 3], target=20) == 1.0
    # Mini-R1's float check (|x - target| < 1e-5) accepts this; its exact value is 97 + 1/1000000.
    assert score("97 + 1 / 1000000", nums=[97, 1, 1000000], target=97) == 0.0


def test_division_by_zero_is_wrong_not_an_error():
    assert score("5 / (3 - 3) + 1", nums=[5, 3, 3, 1], target=1) == 0.0
    assert score("0 / 5", nums=[0, 5], target=0) == 1.0
    assert score("5 / 0 * 0", nums=[5, 0, 0], target=0) == 0.0


def test_precedence_and_associativity():
    assert score("2 + 3 * 4", nums=[2, 3, 4], target=14) == 1.0
    assert score("10 - 4 - 3", nums=[10, 4, 3], target=3) == 1.0
    assert score("64 / 8 / 2", nums=[64, 8, 2], target=4) == 1.0
    assert score("64 / (8 / 2)", nums=[64, 8, 2], target=16) == 1.0


def test_target_and_nums_types_and_chat_completions():
    chat = [[{"role": "assistant", "content": "x </think><answer>55 + 36 - 7 - 19</answer>"}]]
    assert equation_reward(chat, nums=[NUMS], target=[65]) == [1.0]
    assert equation_reward(chat, nums=[["19", "36", "55", "7"]], target=["65"]) == [1.0]
    assert equation_reward(chat, nums=[NUMS], target=["64"]) == [0.0]
    assert format_reward(chat) == [1.0]
    assert equation_reward([[]], nums=[NUMS], target=[65]) == [0.0]
    assert equation_reward([None], nums=[NUMS], target=[65]) == [0.0]
    assert equation_reward(["<answer>55 + 36 - 7 - 19</answer>"], nums=[NUMS], target=["not a number"]) == [0.0]


def test_accepts_trl_keyword_arguments():
    rewards = equation_reward(
        prompts=["p"],
        completions=["</think><answer>55 + 36 - 7 - 19</answer>"],
        completion_ids=[[1, 2]],
        nums=[NUMS],
        target=[65],
        trainer_state=None,
        log_extra=lambda *a: None,
        log_metric=lambda *a: None,
    )
    assert rewards == [1.0]


@pytest.mark.parametrize(
    "completion, expected",
    [
        (" reasoning </think><answer> 1 </answer>", 1.0),
        (" reasoning </think>\n\n<answer> 1 </answer>\n", 1.0),
        (" reasoning </think><answer> 1 </answer> trailing", 0.0),
        (" reasoning </think> text <answer> 1 </answer>", 0.0),
        ("<think> reasoning </think><answer> 1 </answer>", 0.0),  # second <think>
        (" a </think> b </think><answer> 1 </answer>", 0.0),
        (" a </think><answer> 1 </answer><answer> 2 </answer>", 0.0),
        (" a </think><answer> 1 <answer> 2 </answer>", 0.0),
        (" a </think><answer> 1 </answer></answer>", 0.0),
        (" a <answer> 1 </answer></think>", 0.0),
        (" a </think></answer> 1 <answer>", 0.0),
        (" a </think>", 0.0),
        ("", 0.0),
    ],
)
def test_format_rule(completion, expected):
    assert format_reward([completion]) == [expected]


# name -> (completion, equation_reward, format_reward)
HOSTILE = {
    "1 MB of text": ("x" * 1_000_000, 0.0, 0.0),
    "1 MB of tags": ("<answer></think><think>" * 45_000, 0.0, 0.0),
    "1 MB answer": ("</think><answer>" + "1 + " * 250_000 + "1</answer>", 0.0, 1.0),
    "1 MB of open answer tags": ("<answer>" * 125_000 + "</answer>", 0.0, 0.0),
    "10,000 nested parentheses": (
        "</think><answer>" + "(" * 10_000 + "55 + 36 - 7 - 19" + ")" * 10_000 + "</answer>",
        0.0,
        1.0,
    ),
    "power tower": ("</think><answer>9**9**9**9</answer>", 0.0, 1.0),
    "power tower with the numbers": ("</think><answer>55**36**7**19</answer>", 0.0, 1.0),
    "100,000-digit number": ("</think><answer>" + "9" * 100_000 + " + 36 - 7 - 19</answer>", 0.0, 1.0),
    "huge product within the length cap": ("</think><answer>" + " * ".join(["99999999"] * 28) + "</answer>", 0.0, 1.0),
    "NUL bytes": ("</think><answer>55 + 36\x00 - 7 - 19</answer>\x00" * 1000, 0.0, 0.0),
    "unbalanced tags": ("</answer><answer><answer></think></answer>" * 1000, 0.0, 0.0),
    "unclosed answer": ("</think><answer>" + "55 + 36 - 7 - 19 " * 50_000, 0.0, 0.0),
    "surrogates and emoji": ("</think><answer>\udcff55 + 36 - 7 - 19 \U0001f600</answer>", 0.0, 1.0),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_inputs_score_without_error_or_hang(name):
    completion, equation, layout = HOSTILE[name]
    start = time.perf_counter()
    assert equation_reward([completion], nums=[NUMS], target=[65]) == [equation]
    assert format_reward([completion]) == [layout]
    assert time.perf_counter() - start < 2.0  # a hang detector, not a speed goal


def test_deep_but_short_parentheses_still_count():
    assert score("(" * 100 + "55 + 36 - 7 - 19" + ")" * 100) == 1.0


def test_verifier_never_evaluates_code(monkeypatch):
    import builtins

    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec called")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    assert score("55 + 36 - 7 - 19") == 1.0
    assert score("__import__('os').system('true')") == 0.0


# --- property test against an independent evaluator ----------------------------------------------

numbers = st.integers(min_value=0, max_value=120)


PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


@st.composite
def expression_trees(draw, depth=3):
    """(text, exact value or None on division by zero, numbers used, top operator or None) of a random
    expression with random spacing, and parentheses either always or only where precedence needs them."""
    if depth == 0 or draw(st.booleans()):
        n = draw(numbers)
        text, value, used, top = str(n), Fraction(n), [n], None
    else:
        left = draw(expression_trees(depth=depth - 1))
        right = draw(expression_trees(depth=depth - 1))
        op = draw(st.sampled_from("+-*/"))
        space = draw(st.sampled_from(["", " ", "  ", "\t"]))
        # A child may go bare if it is atomic, binds tighter, or is a left operand of equal precedence.
        bare_left = left[3] is None or PRECEDENCE[left[3]] >= PRECEDENCE[op]
        bare_right = right[3] is None or PRECEDENCE[right[3]] > PRECEDENCE[op]
        left_text = left[0] if bare_left and draw(st.booleans()) else f"({left[0]})"
        right_text = right[0] if bare_right and draw(st.booleans()) else f"({right[0]})"
        text, used, top = f"{left_text}{space}{op}{space}{right_text}", left[2] + right[2], op
        if left[1] is None or right[1] is None or (op == "/" and right[1] == 0):
            value = None
        elif op == "/":
            value = left[1] / right[1]
        else:
            value = {"+": left[1] + right[1], "-": left[1] - right[1], "*": left[1] * right[1]}[op]
    if draw(st.booleans()):
        text, top = f"({text})", None
    return text, value, used, top


@settings(max_examples=300, deadline=None)
@given(
    tree=expression_trees(),
    target=st.integers(min_value=-50, max_value=200),
    use_true_target=st.booleans(),
    perturb_nums=st.sampled_from(["same", "shuffled", "drop", "add"]),
    suffix=st.booleans(),
)
def test_reward_matches_independent_exact_evaluator(tree, target, use_true_target, perturb_nums, suffix):
    text, value, used, _ = tree
    if use_true_target and value is not None and value.denominator == 1 and value >= 0:
        target = int(value)
    nums = {"same": used, "shuffled": used[::-1], "drop": used[1:], "add": used + [7]}[perturb_nums]
    answer = f"{text} = {target}" if suffix and target >= 0 else text
    expected = 1.0 if (value is not None and value == target and sorted(nums) == sorted(used)) else 0.0
    assert score(answer, nums=nums, target=target) == expected


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_inputs_need_no_exception_handler(name):
    """The reward's try/except is a last line of defence; the verifier itself must not raise."""
    answer = last_answer(HOSTILE[name][0])
    assert answer is None or is_correct_equation(answer, NUMS, 65) is False
