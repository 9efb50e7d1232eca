"""Countdown data: generated tasks are solvable, in range, seeded and split without overlap; prompts; the hub path."""

import itertools
from pathlib import Path

import datasets
import pytest
from omegaconf import OmegaConf

from r1lab.tasks import countdown

# The real config, as the trainer passes it (a DictConfig).
CONF = OmegaConf.load(Path(__file__).parents[1] / "conf/task/countdown.yaml")


def small_cfg(**overrides):
    return OmegaConf.merge(CONF, {"num_train": 200, "num_test": 50, **overrides})


def keys(dataset):
    return {(tuple(sorted(row["nums"])), row["target"]) for row in dataset}


def test_generated_splits_shapes_ranges_and_solvability():
    train, test = countdown.load_splits(small_cfg(), seed=0)
    assert (len(train), len(test)) == (200, 50)
    assert train.column_names == test.column_names == ["nums", "target"]
    generator = CONF["generator"]
    for row in itertools.chain(train, test):
        assert generator["min_count"] <= len(row["nums"]) <= generator["max_count"]
        assert all(generator["min_number"] <= n <= generator["max_number"] for n in row["nums"])
        assert generator["min_target"] <= row["target"] <= generator["max_target"]
        solution = countdown.solve(row["nums"], row["target"])
        assert solution is not None
        completion = f" ok </think>\n<answer> {solution} </answer>"
        assert countdown.equation_reward([completion], nums=[row["nums"]], target=[row["target"]]) == [1.0]


def test_generated_splits_are_disjoint_deduplicated_and_seeded():
    train, test = countdown.load_splits(small_cfg(), seed=1)
    assert not keys(train) & keys(test)
    assert len(keys(train)) == len(train) and len(keys(test)) == len(test)
    again_train, again_test = countdown.load_splits(small_cfg(), seed=1)
    assert train.to_list() == again_train.to_list() and test.to_list() == again_test.to_list()
    other_train, _ = countdown.load_splits(small_cfg(), seed=2)
    assert train.to_list() != other_train.to_list()


def test_both_task_sizes_are_common():
    tasks = countdown.generate_tasks(CONF["generator"], 1000, seed=0)
    sizes = [len(t["nums"]) for t in tasks]
    assert 350 < sizes.count(3) < 650 and 350 < sizes.count(4) < 650


def test_generator_configuration_is_respected():
    generator = dict(min_count=2, max_count=2, min_number=1, max_number=9, min_target=10, max_target=20)
    for task in countdown.generate_tasks(generator, 30, seed=0):
        assert len(task["nums"]) == 2 and all(1 <= n <= 9 for n in task["nums"])
        assert 10 <= task["target"] <= 20 and countdown.solve(task["nums"], task["target"])


def test_impossible_generator_configuration_fails_loudly():
    with pytest.raises(ValueError):
        countdown.generate_tasks(
            dict(min_count=1, max_count=1, min_number=1, max_number=3, min_target=1, max_target=3), 10, 0
        )


def test_unknown_source_fails_loudly():
    with pytest.raises(ValueError, match="source"):
        countdown.load_splits(small_cfg(source="generatd"), seed=0)


def test_solve():
    assert countdown.solve([1, 2, 3], 1000) is None
    assert countdown.solve([5], 5) == "5"
    for nums, target in [([19, 36, 55, 7], 65), ([3, 3, 8, 8], 24), ([1, 5, 5, 5], 24)]:
        solution = countdown.solve(nums, target)
        assert countdown.is_correct_equation(solution, nums, target), solution


def test_hub_source_uses_the_seeded_shuffle_and_dedupes(monkeypatch):
    rows = [{"nums": [i % 50, 2, 3], "target": i % 50} for i in range(400)]  # 50 distinct tasks, each 8 times
    calls = []

    def fake_load_dataset(path, split):
        calls.append((path, split))
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    cfg = small_cfg(source="hub", num_train=40, num_test=10)
    train, test = countdown.load_splits(cfg, seed=3)
    assert calls == [(CONF["hub_id"], "train")]
    assert (len(train), len(test)) == (40, 10)
    assert not keys(train) & keys(test) and len(keys(train)) == 40
    assert train.to_list() == countdown.load_splits(cfg, seed=3)[0].to_list()
    assert train.to_list() != countdown.load_splits(cfg, seed=4)[0].to_list()
    with pytest.raises(ValueError, match="distinct"):
        countdown.load_splits(small_cfg(source="hub", num_train=45, num_test=10), seed=3)


def test_prompts_match_tinyzero_and_mini_r1():
    row = {"nums": [19, 36, 55, 7], "target": 65}
    assert countdown.plain_prompt(row) == (
        "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
        "The assistant first thinks about the reasoning process in the mind "
        "and then provides the user with the answer.\n"
        "User: Using the numbers [19, 36, 55, 7], create an equation that equals 65. You can use basic arithmetic "
        "operations (+, -, *, /) and each number can only be used once. Show your work in <think> </think> tags. "
        "And return the final answer in <answer> </answer> tags, for example <answer> (1 + 2) / 3 </answer>.\n"
        "Assistant: Let me solve this step by step.\n<think>"
    )
    assert countdown.chat_messages(row) == [
        {
            "role": "system",
            "content": "You are a helpful assistant. You first thinks about the reasoning process in the mind "
            "and then provides the user with the answer.",
        },
        {
            "role": "user",
            "content": "Using the numbers [19, 36, 55, 7], create an equation that equals 65. You can use basic "
            "arithmetic operations (+, -, *, /) and each number can only be used once. Show your work in "
            "<think> </think> tags. And return the final equation and answer in <answer> </answer> tags, "
            "for example <answer> (1 + 2) / 3 = 1 </answer>.",
        },
        {"role": "assistant", "content": "Let me solve this step by step.\n<think>"},
    ]
