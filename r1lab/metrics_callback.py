"""`metrics.jsonl`: one training record per logged step and one eval record per evaluation, keys exactly as
W&B receives them, resume-safe."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import TrainerCallback
from transformers.integrations.integration_utils import rewrite_logs

from r1lab.tracking import SINGLE_VALUE_KEYS, read_metrics


class MetricsJsonlCallback(TrainerCallback):
    """Appends one JSON object per log event to `path` (world rank 0 only).

    Keys go through the same `rewrite_logs` as HF's WandbCallback (`reward` → `train/reward`,
    `eval_accuracy` → `eval/accuracy`) plus `train/global_step`. An eval record is the one with `eval/` keys.
    HF's end-of-training log holds only run totals (kept for summary.json) and the epoch: it adds no
    record. On resume, records logged after the checkpoint's step are dropped first, so no step appears twice.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.single_values: dict[str, float] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or not self.path.exists():
            return
        kept = [r for r in read_metrics(self.path.parent) if r.get("train/global_step", 0) <= state.global_step]
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(self.path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        self.single_values.update({k: v for k, v in logs.items() if k in SINGLE_VALUE_KEYS})
        record = rewrite_logs({k: v for k, v in logs.items() if k not in SINGLE_VALUE_KEYS})
        if not set(record) - {"train/epoch"}:
            return
        record["train/global_step"] = state.global_step
        with self.path.open("a") as f:
            f.write(json.dumps(record, default=float) + "\n")
