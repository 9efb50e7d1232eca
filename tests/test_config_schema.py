"""Every config value is checked for type and range before any compute, in single runs and sweeps."""

from __future__ import annotations

import os

import pytest

from r1lab.config_schema import SCHEMA, open_map, schema_problems, spec_for
from r1lab.validation import problems
from tests.conftest import compose, group_options, launch

GROUPS = ["model", "variant", "algo", "task", "rollout", "dist", "logger", "launcher", "experiment"]


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in group_options(g)])
def test_every_key_of_every_option_is_in_the_schema(group, option):
    # A key added to conf/ without its line in r1lab/config_schema.py fails here, named.
    assert schema_problems(compose(f"{group}={option}")) == []


@pytest.mark.parametrize("override,message", [
    ("algo.lr=abc", "algo.lr='abc': expected a number > 0"),
    ("seed=x", "seed='x': expected an integer >= 0"),
    ("eval.pass_k=-2", "eval.pass_k=-2: expected an integer >= 0"),
    ("task.num_test=0", "task.num_test=0: expected an integer >= 1"),
    ("train.bf16=maybe", "train.bf16='maybe': expected true or false"),
    ("train.resume=sometimes", "train.resume='sometimes': expected one of auto, never"),
    ("train.max_steps=2.5", "train.max_steps=2.5: expected an integer >= 1"),
    ("task.rewards.format_reward=high", "task.rewards.format_reward='high': expected a number"),
    ("logger.tags=[1]", "logger.tags[0]=1: expected a string"),
    ("+algo.surprise=1", "algo.surprise=1: not a key of r1lab's config"),
    ("rollout=vllm_server", None),
])
def test_wrong_values_are_named_with_what_is_expected(override, message):
    found = problems(compose(override))
    if message is None:
        assert not [p for p in found if "expected" in p or "not a key" in p]
    else:
        assert any(p.startswith(message) for p in found), found


def test_every_problem_is_reported_at_once():
    found = schema_problems(compose("algo.lr=abc", "seed=x", "eval.pass_k=-2"))
    assert len(found) == 3


def test_a_hub_model_in_the_default_laptop_recipe_gets_one_message_naming_the_way_out():
    found = schema_problems(compose("experiment=laptop_aha", "model=qwen2.5-3b", "algo.lr=abc"))
    assert len(found) == 2 and "experiment=none" in found[0] and found[1].startswith("algo.lr='abc'")
    assert schema_problems(compose("experiment=laptop_aha")) == []
    assert schema_problems(compose("experiment=none", "model=qwen2.5-3b")) == []


def test_open_maps_stay_open():
    assert spec_for("dist.deepspeed") == open_map(null=True)
    assert schema_problems(compose("dist=zero3", "+dist.deepspeed.anything_deepspeed_reads.x=1")) == []
    assert schema_problems(compose("+algo.trl.mask_truncated_completions=true")) == []


def test_schema_patterns_are_dotted_keys():
    assert all(k == k.strip(".") and ".." not in k for k in SCHEMA)


def test_a_wrong_type_fails_as_one_message_without_traceback(tmp_path):
    out = launch("algo.lr=abc", "seed=x", "logger=none", f"hydra.run.dir={tmp_path}/run", f"cache_dir={tmp_path}/c")
    assert out.returncode == 2
    assert "algo.lr='abc': expected a number > 0" in out.stderr and "seed='x'" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "c").exists() and not (tmp_path / "run" / "metrics.jsonl").exists()

    full = launch("algo.lr=abc", "logger=none", f"hydra.run.dir={tmp_path}/run2",
                  env={**os.environ, "HYDRA_FULL_ERROR": "1"})
    assert full.returncode != 0 and "Traceback" in full.stderr and "algo.lr='abc'" in full.stderr


def test_sweep_preflight_rejects_a_wrong_type_and_runs_nothing(tmp_path):
    out = launch("-m", "algo.lr=abc,0.01", "train.max_steps=1", "logger=none", f"hydra.sweep.dir={tmp_path}/s")
    assert out.returncode == 2
    assert "1 of 2 jobs cannot run" in out.stderr and "algo.lr='abc': expected a number > 0" in out.stderr
    assert not list((tmp_path / "s").glob("*/metrics.jsonl"))
