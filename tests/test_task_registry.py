"""Task registry: every task meets the interface, rewards resolve by name or dotted path, errors name the options."""

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from r1lab.tasks import TASKS, resolve_reward, task_module
from r1lab.tasks.countdown import equation_reward

CONF_DIR = Path(__file__).parents[1] / "conf/task"


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_config_matches_its_module(name):
    cfg = OmegaConf.load(CONF_DIR / f"{name}.yaml")
    module = task_module(name)
    assert cfg.name == name
    assert module.CORRECTNESS in module.REWARDS
    for reward_name in cfg.rewards:
        assert resolve_reward(name, reward_name) is module.REWARDS[reward_name]
    train, test = module.load_splits(OmegaConf.merge(cfg, {"num_train": 8, "num_test": 4}), seed=0)
    assert "prompt" not in train.column_names
    row = test[0]
    assert module.plain_prompt(row).endswith("Let me solve this step by step.\n<think>")
    messages = module.chat_messages(row)
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert messages[-1]["content"] == "Let me solve this step by step.\n<think>"
    completions = ["</think><answer>1</answer>", [{"role": "assistant", "content": "x"}]]
    columns = {column: [row[column]] * 2 for column in test.column_names}
    for reward in module.REWARDS.values():
        rewards = reward(
            prompts=["p", "p"],
            completions=completions,
            completion_ids=[[1], [2]],
            **columns,
            trainer_state=None,
            log_extra=None,
            log_metric=None,
        )
        assert len(rewards) == 2 and all(isinstance(r, float) and 0.0 <= r <= 1.0 for r in rewards)


def test_dotted_paths():
    assert task_module("r1lab.tasks.countdown") is task_module("countdown")
    assert resolve_reward("countdown", "r1lab.tasks.countdown.equation_reward") is equation_reward
    assert resolve_reward("sanity", "r1lab.tasks.countdown.equation_reward") is equation_reward


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown task 'chess'.*countdown.*multiplication.*sanity"):
        task_module("chess")
    with pytest.raises(ValueError, match=r"lacks"):
        task_module("r1lab.tasks.answer_format")
    with pytest.raises(ValueError, match=r"'accuracy_reward'.*'countdown'.*\['equation_reward', 'format_reward'\]"):
        resolve_reward("countdown", "accuracy_reward")
    with pytest.raises(ValueError, match=r"'r1lab.tasks.countdown.nope'.*\['equation_reward', 'format_reward'\]"):
        resolve_reward("countdown", "r1lab.tasks.countdown.nope")
    with pytest.raises(ValueError, match=r"no_such_package"):
        resolve_reward("countdown", "no_such_package.reward")
    with pytest.raises(ValueError, match="not callable"):
        resolve_reward("countdown", "r1lab.tasks.countdown.CORRECTNESS")


def test_importing_tasks_loads_no_heavy_libraries():
    code = (
        "import sys, r1lab.tasks, r1lab.tasks.countdown, r1lab.tasks.multiplication, r1lab.tasks.sanity; "
        "print(sorted(m for m in ('torch', 'transformers', 'trl', 'datasets') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1]
    )
    assert result.stdout.strip() == "[]"
