"""Task data → TRL-ready datasets: a `prompt` column rendered in the variant's prompt style.

`variant.prompt_style` is the one switch between TinyZero's plain template and the chat template;
this module is the only code that reads it.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def render_prompt(task, row: dict, style: str, tokenizer, prompt: str = "full") -> str:
    """The prompt text for one task row: plain template (base models) or chat template (instruct).

    ``prompt`` is the task's wording (``task.prompt``; only countdown has one other than ``full``).
    """
    # Passed only when it is not the seeds' wording, so a user's task module keeps the documented
    # one-argument ``plain_prompt(row)`` (r1lab/tasks/__init__.py).
    wording = {} if prompt == "full" else {"prompt": prompt}
    if style == "plain":
        return task.plain_prompt(row, **wording)
    if style == "chat":
        # The assistant turn is prefilled ("Let me solve this step by step.\n<think>"), as in Mini-R1,
        # so the template must continue it rather than close it.
        return tokenizer.apply_chat_template(
            task.chat_messages(row, **wording), tokenize=False, continue_final_message=True
        )
    raise ValueError(f"variant.prompt_style must be 'plain' or 'chat', got {style!r}")


def prepare_splits(cfg, tokenizer):
    """Load the task's (train, test) splits and add the rendered `prompt` column to both.

    Prompts longer than `train.max_prompt_length` tokens are dropped, with a count in the log:
    TRL 1.16 has no prompt truncation, and a silently cut prompt would lose the question.
    """
    from r1lab.tasks import task_module

    task = task_module(cfg.task.name)
    train, test = task.load_splits(cfg.task, seed=int(cfg.seed))
    style = cfg.variant.prompt_style
    limit = int(cfg.train.max_prompt_length)

    def add_prompts(batch):
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        prompts = [render_prompt(task, row, style, tokenizer, cfg.task.get("prompt", "full")) for row in rows]
        # One tokenizer call per batch: the fast tokenizer encodes a list in parallel.
        lengths = [len(ids) for ids in tokenizer(prompts)["input_ids"]]
        return {"prompt": prompts, "prompt_tokens": lengths}

    splits = []
    for name, split in (("train", train), ("test", test)):
        split = split.map(add_prompts, batched=True, batch_size=1024, desc=f"rendering {name} prompts")
        kept = split.filter(lambda n: n <= limit, input_columns="prompt_tokens")
        if len(kept) < len(split):
            log.warning(
                "%s: dropped %d of %d prompts longer than train.max_prompt_length=%d tokens",
                name, len(split) - len(kept), len(split), limit,
            )
        if len(kept) == 0:
            raise ValueError(
                f"every {name} prompt is longer than train.max_prompt_length={limit} tokens"
            )
        splits.append(kept.remove_columns("prompt_tokens"))
    return splits[0], splits[1]


def held_out_rows(cfg) -> int | None:
    """How many test rows the held-out evaluation scores: every puzzle of `task.test_path`, else `eval.num_prompts`."""
    return None if cfg.task.get("test_path") else cfg.eval.num_prompts


def record_splits(cfg, train, test, directory) -> dict | None:
    """Write the run's exact data to `directory` and return the held-out baselines (None if the task has none).

    `train.jsonl` and `test.jsonl` hold the task columns of every row (no rendered prompt), so a saved
    `test.jsonl` can be given back as `task.test_path`; `baselines.json` holds the task's exact baselines
    (e.g. countdown's, r1lab.tasks.countdown_targets.baselines) on the rows the evaluation scores.
    """
    import json
    from pathlib import Path

    from r1lab.tasks import task_module

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, split in (("train", train), ("test", test)):
        columns = [c for c in split.column_names if c != "prompt"]
        split.select_columns(columns).to_json(directory / f"{name}.jsonl", lines=True)
    task = task_module(cfg.task.name)
    if not hasattr(task, "baselines"):
        return None
    limit = held_out_rows(cfg)
    scored = test if limit is None else test.select(range(min(int(limit), len(test))))
    baselines = task.baselines(cfg.task, [{k: v for k, v in row.items() if k != "prompt"} for row in scored])
    if baselines is not None:
        (directory / "baselines.json").write_text(json.dumps(baselines, indent=2, sort_keys=True) + "\n")
        log.info("held-out baselines (%d puzzles): %s", len(scored), baselines)
    return baselines
