"""Sanity task: digit-share rewards, the solved threshold, and data."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from r1lab.tasks import sanity

CONF = OmegaConf.load(Path(__file__).parents[1] / "conf/task/sanity.yaml")


@pytest.mark.parametrize(
    "completion, share, solved",
    [
        ("", 0.0, 0.0),
        ("abcd", 0.0, 0.0),
        ("12ab", 0.5, 1.0),
        ("123a", 0.75, 1.0),
        ("1abc", 0.25, 0.0),
        ("0123456789", 1.0, 1.0),
        ("١٢٣٤", 0.0, 0.0),  # non-ASCII digits do not count
        ([{"role": "assistant", "content": "99"}], 1.0, 1.0),
    ],
)
def test_rewards(completion, share, solved):
    assert sanity.digit_share_reward([completion], id=[1], instruction=["x"], trainer_state=None) == [share]
    assert sanity.mostly_digits_reward([completion]) == [solved]


def test_correctness_is_the_zero_weight_metric():
    assert sanity.CORRECTNESS == "mostly_digits_reward"
    assert CONF.rewards == {"digit_share_reward": 1.0, "mostly_digits_reward": 0.0}


def test_splits():
    train, test = sanity.load_splits(CONF, seed=0)
    assert (len(train), len(test)) == (CONF.num_train, CONF.num_test)
    assert train.column_names == ["id", "instruction"]
    assert not set(train["id"]) & set(test["id"])
    assert train.to_list() == sanity.load_splits(CONF, seed=0)[0].to_list()
    assert train.to_list() != sanity.load_splits(CONF, seed=1)[0].to_list()
    row = train[0]
    assert sanity.plain_prompt(row).endswith("Let me solve this step by step.\n<think>")
    assert str(row["id"]) in sanity.chat_messages(row)[1]["content"]
