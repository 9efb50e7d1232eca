"""adapter=lora|qlora: what each key becomes in peft/transformers/TRL, QLoRA's refusal without CUDA, and (slow) that
LoRA learns task=sanity for every algorithm and resumes from its checkpoints."""

from __future__ import annotations

import json

import pytest

from r1lab.adapters import adapter_hardware_problems, lora_config, quantization_config, trainer_adapter_kwargs
from tests.conftest import compose, launch
from tests.test_algorithms_learn import MIN_RISE, first_and_last_five
from tests.test_ppo import assert_resume_is_exact


def test_lora_keys_become_a_peft_lora_config():
    config = lora_config(compose("adapter=lora", "adapter.rank=8", "adapter.alpha=16", "adapter.dropout=0.1").adapter)
    assert (config.r, config.lora_alpha, config.lora_dropout, config.task_type) == (8, 16, 0.1, "CAUSAL_LM")
    assert config.target_modules == "all-linear"  # [all-linear] in the config: peft's keyword
    assert lora_config(compose().adapter) is None  # adapter=none: full fine-tuning


def test_mini_r1_qlora_recipe_is_its_notebooks_model_config():
    """Mini-R1 section 3: ModelConfig(use_peft=True, load_in_4bit=True): r 16, alpha 32, dropout 0.05, q/v, NF4."""
    cfg = compose("experiment=mini_r1_qlora_1gpu")
    config = lora_config(cfg.adapter)
    assert (config.r, config.lora_alpha, config.lora_dropout) == (16, 32, 0.05)
    assert set(config.target_modules) == {"q_proj", "v_proj"}
    bnb = quantization_config(cfg.adapter, cfg.model.dtype)
    assert bnb.load_in_4bit and bnb.bnb_4bit_quant_type == "nf4" and bnb.bnb_4bit_use_double_quant
    assert str(bnb.bnb_4bit_compute_dtype).endswith("bfloat16")
    assert (cfg.model.name_or_path, cfg.algo.num_generations, cfg.model.resources.gpus) == (
        "Qwen/Qwen2.5-3B-Instruct", 2, 1)
    assert quantization_config(compose("adapter=lora").adapter, "bfloat16") is None


def test_companions_get_their_own_adapter_or_train_in_full():
    assert trainer_adapter_kwargs(compose("adapter=lora", "algo=ppo"))["companion_lora"] is not None
    assert trainer_adapter_kwargs(compose("adapter=lora", "adapter.companions=full"))["companion_lora"] is None
    assert trainer_adapter_kwargs(compose())["peft_config"] is None


def test_vllm_runs_hand_trl_the_adapter_to_merge():
    """With vLLM TRL merges the adapter into the weights it syncs; r1lab only has to pass both (config only here)."""
    from r1lab.trl_args import trainer_kwargs

    cfg = compose("adapter=lora", "rollout=vllm_colocate", "model=qwen2.5-0.5b")
    kwargs = trainer_kwargs(cfg, output_dir="out", run_name="x", report_to=[], reward_weights=[1.0], algo_fields={})
    assert kwargs["use_vllm"] and kwargs["vllm_mode"] == "colocate"
    assert trainer_adapter_kwargs(cfg)["peft_config"] is not None


def test_bad_adapter_keys_are_named():
    from r1lab.validation import problems

    found = problems(compose("adapter=lora", "adapter.rank=0", "adapter.companions=shared"))
    assert [f.split("=")[0] for f in found] == ["adapter.rank", "adapter.companions"]
    assert problems(compose("adapter=lora", "adapter.target_modules=[]"))[0].startswith("adapter.target_modules")
    assert problems(compose("adapter=lora")) == []


def test_qlora_needs_cuda_by_name():
    cfg = compose("adapter=qlora")
    assert "adapter=qlora" in adapter_hardware_problems(cfg, cuda_available=False)[0]
    assert adapter_hardware_problems(cfg, cuda_available=True) == []
    assert adapter_hardware_problems(compose("adapter=lora"), cuda_available=False) == []


def test_qlora_on_this_cpu_is_refused_before_any_model_loads(tmp_path):
    import torch

    from r1lab.train import _check_hardware

    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="adapter=qlora .* needs a CUDA GPU"):
            _check_hardware(compose("adapter=qlora", "task=sanity"))
    out = launch("adapter=qlora", "task=sanity", "logger=none", f"hydra.run.dir={tmp_path}")
    assert out.returncode != 0 and "adapter=qlora" in out.stderr
    assert not (tmp_path / "summary.json").exists()  # refused before the run started


# --- slow: LoRA learns and resumes -----------------------------------------------------------------------------


# Each LoRA run: its overrides and the rise of train/reward (last 5 - first 5 logged steps) it must reach, the bar
# full fine-tuning meets (tests/test_algorithms_learn.py). REINFORCE++ computes its KL to the reference, which
# under an adapter is the policy with the adapter disabled; PRIME's PRM trains its own adapter (adapter.companions).
LORA_RUNS = {
    "grpo": (["algo=grpo"], MIN_RISE),
    "ppo": (["algo=ppo"], MIN_RISE),
    "reinforce_pp": (["algo=reinforce_pp"], MIN_RISE),
    "prime": (["algo=prime"], MIN_RISE),
}


@pytest.fixture(scope="module")
def lora_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    runs = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        for name, (overrides, _) in LORA_RUNS.items():
            run_dir = root / name
            out = launch(*overrides, "adapter=lora", "task=sanity", "logger=none", "eval.pass_k=0",
                         f"hydra.run.dir={run_dir}", timeout=600)
            assert out.returncode == 0, out.stderr[-3000:]
            runs[name] = run_dir
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("name", LORA_RUNS)
def test_lora_learns_like_full_fine_tuning(lora_runs, name):
    run_dir, min_rise = lora_runs[name], LORA_RUNS[name][1]
    first, last = first_and_last_five(run_dir, "train/reward")
    assert last - first >= min_rise, f"{name} with LoRA: train/reward first 5 {first:.3f}, last 5 {last:.3f}"
    summary = json.loads((run_dir / "summary.json").read_text())
    # The tiny model has 107,072 parameters: the adapter (32,768) and its tied embeddings (32,768, conf/model/tiny.yaml).
    assert summary["trainable_params"] == 65_536
    assert (run_dir / "final" / "adapter_model.safetensors").exists()
    if name == "ppo":
        adapter = json.loads((run_dir / "final" / "critic" / "adapter_config.json").read_text())
        assert adapter["task_type"] == "TOKEN_CLS" and "score" in adapter["modules_to_save"]
    if name == "prime":
        assert (run_dir / "final" / "prm" / "adapter_config.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("algo,companion", [("ppo", "critic"), ("prime", "prm")])
def test_lora_resumes_exactly_with_its_companion(tmp_path, algo, companion):
    """Stopped at step 2 and resumed to 4, the policy's adapter and the critic's or PRM's adapter (with its AdamW
    state) end bit for bit where 4 uninterrupted steps end."""
    assert_resume_is_exact(tmp_path, companion, f"algo={algo}", "adapter=lora", weights="adapter_model.safetensors")
