"""The locally built tiny model: cached, deterministic, and speaking both prompt styles."""

from __future__ import annotations

from r1lab.data import render_prompt
from r1lab.tasks import countdown
from r1lab.tiny_model import ensure_tiny_model, tiny_model_path
from tests.conftest import compose

ROW = {"nums": [19, 36, 55, 7], "target": 65}


def test_tiny_model_is_built_once_and_reused(tmp_path):
    arch = dict(compose().model.tiny)
    path = ensure_tiny_model(arch, tmp_path)
    assert path == tiny_model_path(arch, tmp_path)
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_model(arch, tmp_path) == path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp
    assert not [p for p in tmp_path.iterdir() if "building" in p.name]  # no staging dirs left behind
    assert tiny_model_path({**arch, "hidden_size": 32}, tmp_path) != path


def test_tiny_tokenizer_round_trips_and_renders_both_prompt_styles(tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    path = ensure_tiny_model(dict(compose().model.tiny), tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert tokenizer.padding_side == "left"
    assert AutoConfig.from_pretrained(path).model_type == "qwen2"

    plain = render_prompt(countdown, ROW, "plain", tokenizer)
    chat = render_prompt(countdown, ROW, "chat", tokenizer)
    for text in (plain, chat, "<answer> (55 + 36) - 7 - 19 = 65 </answer> ünïcödé"):
        assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    assert plain.endswith("Assistant: Let me solve this step by step.\n<think>")
    # The prefilled assistant turn is continued, not closed.
    assert chat.startswith("<|im_start|>system\n")
    assert chat.endswith("<|im_start|>assistant\nLet me solve this step by step.\n<think>")
    assert len(tokenizer(plain)["input_ids"]) <= compose().train.max_prompt_length


def test_short_wording_keeps_only_the_question_and_other_tasks_refuse_it(tmp_path):
    from r1lab.validation import problems

    tokenizer = None  # the plain template needs none
    short = render_prompt(countdown, ROW, "plain", tokenizer, "short")
    assert short == ("User: Using the numbers [19, 36, 55, 7], create an equation that equals 65.\n"
                     "Assistant: Let me solve this step by step.\n<think>")
    assert short.split("\n")[0] in render_prompt(countdown, ROW, "plain", tokenizer)  # the seeds' first sentence
    assert [m["content"] for m in countdown.chat_messages(ROW, "short")][1] == short.split("\n")[0][len("User: "):]
    assert not problems(compose("task.prompt=short"))
    assert any("task.prompt=short: only countdown" in p for p in problems(compose("task=sanity", "+task.prompt=short")))
    assert any("task.prompt" in p for p in problems(compose("task.prompt=brief")))
