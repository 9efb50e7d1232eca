"""A locally built tokenizer comes back with the ids it was built with (transformers 5's AutoTokenizer
would rebuild r1lab's tiny tokenizer as a Qwen2Tokenizer with another pre-tokenizer)."""

from r1lab.data import render_prompt
from r1lab.tasks import countdown
from r1lab.tiny_model import build_tokenizer, ensure_tiny_model
from r1lab.tokenizer_loading import load_tokenizer
from tests.conftest import compose

SAMPLES = [
    render_prompt(countdown, {"nums": [19, 36, 55, 7], "target": 65}, "plain", None),
    " 55 + 36 = 91, 91 - 7 - 19 = 65 </think>\n<answer> (55 + 36) - 7 - 19 </answer>",
    "<|im_start|>user\nünïcödé 12345 ((1+2)*3)<|im_end|>",
]


def test_local_tokenizer_ids_equal_the_built_tokenizers():
    cfg = compose()
    path = ensure_tiny_model(dict(cfg.model.tiny), cfg.cache_dir)
    built = build_tokenizer(int(cfg.model.tiny.vocab_size))
    loaded = load_tokenizer(path, padding_side="left")
    assert type(loaded) is type(built)
    for text in SAMPLES:
        assert loaded(text)["input_ids"] == built(text)["input_ids"], text
    assert (loaded.eos_token, loaded.pad_token, loaded.padding_side) == ("<|im_end|>", "<|endoftext|>", "left")
    assert loaded.chat_template == built.chat_template
