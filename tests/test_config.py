"""The config tree composes, the CLI contract holds, and bad configs fail before any compute."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import yaml
from omegaconf import OmegaConf

from r1lab.validation import ConfigError, problems, validate
from tests.conftest import REPO, compose, group_options, launch

GROUPS = ["model", "variant", "algo", "task", "rollout", "dist", "logger", "launcher"]


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in group_options(g)])
def test_every_group_option_composes_and_resolves(group, option):
    cfg = compose(f"{group}={option}")
    OmegaConf.resolve(cfg)
    assert group == "launcher" or cfg[group] is not None  # launchers set hydra.launcher only


@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_every_experiment_composes_and_validates(experiment):
    cfg = compose(f"experiment={experiment}")
    OmegaConf.resolve(cfg)
    found = problems(cfg)
    # vLLM cannot be installed on a CPU machine; every other problem is a real one.
    assert [p for p in found if "needs vLLM" not in p] == []


def test_default_config_is_the_laptop_run():
    cfg = compose()
    validate(cfg)
    assert cfg.model.size == "tiny" and cfg.rollout.engine == "hf" and cfg.dist.deepspeed is None
    assert cfg.task.source == "generated"
    assert cfg.train.bf16 is False


@pytest.mark.parametrize("size,stem", [("0.5b", "0.5B"), ("1.5b", "1.5B"), ("3b", "3B"), ("7b", "7B")])
@pytest.mark.parametrize("variant,suffix", [("base", ""), ("instruct", "-Instruct")])
def test_hub_id_follows_size_and_variant(size, stem, variant, suffix):
    cfg = compose(f"model=qwen2.5-{size}", f"variant={variant}")
    assert cfg.model.name_or_path == f"Qwen/Qwen2.5-{stem}{suffix}"


def test_prompt_style_follows_variant():
    assert compose("variant=base").variant.prompt_style == "plain"
    assert compose("variant=instruct").variant.prompt_style == "chat"


def test_learning_rate_defaults_come_from_the_model_when_it_sets_one():
    tiny = compose("model=tiny")
    assert tiny.algo.lr == tiny.model.learning_rates.policy != 1e-6
    assert compose("model=qwen2.5-3b").algo.lr == pytest.approx(1e-6)  # DeepSeekMath's default
    assert compose("model=tiny", "algo.lr=3e-4").algo.lr == pytest.approx(3e-4)


def test_mini_r1_experiment_is_the_blog_recipe():
    cfg = compose("experiment=mini_r1_countdown_3b")
    assert cfg.model.name_or_path == "Qwen/Qwen2.5-3B-Instruct"
    assert (cfg.algo.name, cfg.algo.lr, cfg.algo.lr_scheduler, cfg.algo.beta) == ("grpo", 5e-7, "cosine", 0.001)
    assert cfg.algo.num_generations == 8
    assert (cfg.train.max_prompt_length, cfg.train.max_completion_length, cfg.train.max_steps) == (256, 1024, 450)
    assert cfg.train.bf16 and cfg.train.gradient_checkpointing
    assert cfg.rollout.engine == "vllm"


def test_cli_contract_cfg_job_prints_hub_id_and_hparams_without_torch():
    # The exact command of the contract; torch/TRL must stay unimported and it must be fast.
    code = (
        "import atexit, runpy, sys\n"
        "atexit.register(lambda: print('IMPORTED', 'torch' in sys.modules, 'trl' in sys.modules))\n"
        "sys.argv = ['launch.py'] + sys.argv[1:]\n"
        "runpy.run_path('launch.py', run_name='__main__')\n"
    )
    args = ["model=qwen2.5-3b", "variant=instruct", "algo=grpo", "algo.lr=5e-7", "algo.beta=0.001", "--cfg", "job"]
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - started
    assert out.returncode == 0, out.stderr
    body, _, tail = out.stdout.rpartition("IMPORTED")
    printed = yaml.safe_load(body)
    assert printed["model"]["name_or_path"] == "Qwen/Qwen2.5-3B-Instruct"
    assert printed["algo"]["lr"] == 5e-7 and printed["algo"]["beta"] == 0.001
    assert tail.split() == ["False", "False"]
    assert elapsed < 10  # a hang detector; bench/cli.py measures the real figure

    base = launch("model=qwen2.5-3b", "variant=base", "--cfg", "job")
    assert yaml.safe_load(base.stdout)["model"]["name_or_path"] == "Qwen/Qwen2.5-3B"


def test_cli_contract_train_and_seed_overrides():
    cfg = compose("train.max_steps=7", "seed=3")
    assert cfg.train.max_steps == 7 and cfg.seed == 3


def test_mistyped_key_fails_naming_the_key(tmp_path):
    out = launch("algo.lrr=1", f"hydra.run.dir={tmp_path}/run")
    assert out.returncode != 0
    assert "algo.lrr" in out.stderr
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_validation_lists_every_problem():
    cfg = compose("train.per_device_batch_size=6", "+task.rewards.no_such_reward=1.0")
    with pytest.raises(ConfigError) as error:
        validate(cfg)
    message = str(error.value)
    assert "no_such_reward" in message and "equation_reward" in message  # names the known rewards
    assert "multiple of algo.num_generations=8" in message


def test_invalid_config_fails_before_any_model_is_built(tmp_path):
    cache = tmp_path / "cache"
    out = launch("+task.rewards.no_such_reward=1.0", f"hydra.run.dir={tmp_path}/run",
                 f"cache_dir={cache}", "logger=none")
    assert out.returncode != 0
    assert "no_such_reward" in out.stderr
    assert not cache.exists()
