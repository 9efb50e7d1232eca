"""Load a model's tokenizer so that the ids are the ids it was trained with.

transformers 5's `AutoTokenizer` picks the class from the model's `model_type`, and for some types
(qwen2 among them) overrides the class recorded in `tokenizer_config.json` with its own: a tokenizer that
r1lab built from a `tokenizers.Tokenizer` and saved beside a Qwen2 model comes back as `Qwen2Tokenizer`,
whose pre-tokenizer differs, so the same text gets other ids (decoding still round-trips, which hides it).
A local tokenizer saved as the generic tokenizers backend is therefore loaded with that class; everything
else (Hub ids, model-specific classes) keeps `AutoTokenizer`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# Classes that wrap a tokenizer.json as it is, without model-specific rebuilding.
_AS_SAVED = ("TokenizersBackend", "PreTrainedTokenizerFast")


def load_tokenizer(name_or_path: str | os.PathLike, **kwargs):
    """The tokenizer of a Hub id or local model dir; a local generic one exactly as it was saved."""
    from transformers import AutoTokenizer

    config = Path(name_or_path) / "tokenizer_config.json"
    if config.is_file() and json.loads(config.read_text()).get("tokenizer_class") in _AS_SAVED:
        from transformers import TokenizersBackend

        return TokenizersBackend.from_pretrained(name_or_path, **kwargs)
    return AutoTokenizer.from_pretrained(name_or_path, **kwargs)
