"""Multiplication: the product verifier case by case, hostile inputs, data generation and prompts."""

import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from r1lab.tasks import multiplication
from r1lab.tasks.multiplication import format_reward, product_reward

CONF = OmegaConf.load(Path(__file__).parents[1] / "conf/task/multiplication.yaml")
A, B, PRODUCT = 1234, 5678, 7006652


def score(answer_block: str, a=A, b=B) -> float:
    completion = f" 1234 * 5678 ... </think>\n<answer>{answer_block}</answer>"
    return product_reward([completion], a=[a], b=[b], product=[a * b])[0]


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("7006652", 1.0),
        (" 7006652 ", 1.0),
        ("\n7006652\n", 1.0),
        ("7,006,652", 1.0),
        ("1234 * 5678 = 7006652", 1.0),
        ("5678*1234=7,006,652", 1.0),
        ("1234 * 5679 = 7006652", 0.0),  # prefix must name the row's factors
        ("1234 x 5678 = 7006652", 0.0),
        ("7006653", 0.0),
        ("07006652", 0.0),
        ("700,6652", 0.0),  # wrong digit grouping
        ("7,006,65,2", 0.0),
        ("7006652.0", 0.0),
        ("+7006652", 0.0),
        ("7 006 652", 0.0),
        ("７００６６５２", 0.0),  # fullwidth digits
        ("٧٠٠٦٦٥٢", 0.0),  # Arabic-Indic digits
        ("7006652\x00", 0.0),
        ("The answer is 7006652", 0.0),
        ("", 0.0),
    ],
)
def test_product_answers(answer, expected):
    assert score(answer) == expected


def test_last_answer_block_and_chat_and_str_columns():
    completions = [
        "</think><answer>7006652</answer> wait <answer>7006651</answer>",
        "</think><answer>7006651</answer> wait <answer>7006652</answer>",
        [{"role": "assistant", "content": "</think><answer>7006652</answer>"}],
    ]
    assert product_reward(completions, a=[A] * 3, b=[B] * 3, product=[PRODUCT] * 3) == [0.0, 1.0, 1.0]
    assert product_reward(completions[1:2], a=["1234"], b=["5678"], product=["7006652"]) == [1.0]
    assert format_reward(completions) == [0.0, 0.0, 1.0]


@pytest.mark.parametrize(
    "completion",
    [
        "</think><answer>" + "7" * 100_000 + "</answer>",
        "</think><answer>" + "1," * 300_000 + "000</answer>",
        "</think><answer>" + " " * 1_000_000 + "7006652x</answer>",
        "<answer>" * 125_000 + "</answer>",
        "x" * 1_000_000,
        "</think><answer>9**9**9**9</answer>",
    ],
)
def test_hostile_inputs(completion):
    start = time.perf_counter()
    assert product_reward([completion], a=[A], b=[B], product=[PRODUCT]) == [0.0]
    assert multiplication.is_correct_product(completion, A, B, PRODUCT) is False
    assert time.perf_counter() - start < 2.0  # a hang detector, not a speed goal


def test_splits_ranges_disjoint_and_seeded():
    cfg = OmegaConf.merge(CONF, {"num_train": 300, "num_test": 40})
    train, test = multiplication.load_splits(cfg, seed=0)
    assert (len(train), len(test)) == (300, 40)
    assert train.column_names == ["a", "b", "product"]
    low, high = 10 ** (CONF.min_digits - 1), 10**CONF.max_digits - 1
    for row in list(train) + list(test):
        assert low <= row["a"] <= high and low <= row["b"] <= high and row["product"] == row["a"] * row["b"]
    pairs = lambda ds: {tuple(sorted((r["a"], r["b"]))) for r in ds}  # noqa: E731
    assert not pairs(train) & pairs(test) and len(pairs(train)) == 300
    assert train.to_list() == multiplication.load_splits(cfg, seed=0)[0].to_list()
    assert train.to_list() != multiplication.load_splits(cfg, seed=1)[0].to_list()


def test_digit_limits_are_checked():
    with pytest.raises(ValueError, match="max_digits"):
        multiplication.generate_tasks({"min_digits": 2, "max_digits": 10}, 5, 0)
    with pytest.raises(ValueError, match="distinct"):
        multiplication.generate_tasks({"min_digits": 1, "max_digits": 1}, 100, 0)


def test_prompts():
    row = {"a": A, "b": B, "product": PRODUCT}
    prompt = multiplication.plain_prompt(row)
    assert "1234 * 5678" in prompt and prompt.endswith("Assistant: Let me solve this step by step.\n<think>")
    messages = multiplication.chat_messages(row)
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert "1234 * 5678" in messages[1]["content"]
    assert messages[2]["content"] == "Let me solve this step by step.\n<think>"
