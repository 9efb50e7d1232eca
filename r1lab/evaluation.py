"""Held-out evaluation with greedy decoding: the accuracy curve every ablation is compared on.

TRL's own eval samples `num_generations` completions per prompt at the training temperature;
the seeds report success on held-out puzzles, so r1lab replaces `Trainer.evaluate` with greedy
decoding on a fixed slice of the test split, scored by the task's verifiers. HF's eval schedule
(`eval_strategy="steps"`) calls it, and it logs through the trainer like any eval, so W&B,
metrics.jsonl and checkpoints' `trainer_state.json` all see `eval/accuracy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import torch
from accelerate.utils import gather_object
from trl.models.utils import unwrap_model_for_generation


@dataclass
class HeldOutSpec:
    task: ModuleType
    num_prompts: int | None
    batch_size: int
    max_new_tokens: int


def score_completions(task: ModuleType, completions: list[str], rows: list[dict]) -> dict[str, float]:
    """Accuracy (the task's CORRECTNESS reward is 1.0) and format rate over completions of `rows`."""
    columns = {key: [row[key] for row in rows] for key in rows[0] if key != "prompt"}
    correct = task.REWARDS[task.CORRECTNESS](completions=completions, **columns)
    metrics = {"accuracy": sum(score == 1.0 for score in correct) / len(rows)}
    if "format_reward" in task.REWARDS:
        formatted = task.REWARDS["format_reward"](completions=completions, **columns)
        metrics["format_rate"] = sum(score == 1.0 for score in formatted) / len(rows)
    return metrics


class HeldOutEvaluation:
    """Mixin for r1lab's trainers: `evaluate()` is greedy held-out accuracy (set `held_out` first)."""

    held_out: HeldOutSpec

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        spec = self.held_out
        if spec.num_prompts is not None:
            dataset = dataset.select(range(min(spec.num_prompts, len(dataset))))
        rows = [dict(row) for row in dataset]
        completions, lengths = self._greedy_completions([row["prompt"] for row in rows])
        metrics = score_completions(spec.task, completions, rows)
        metrics["mean_length"] = sum(lengths) / len(lengths)
        metrics = {f"{metric_key_prefix}_{key}": value for key, value in metrics.items()}

        was_training = self.model.training
        # GRPOTrainer.log merges and clears the pending metrics of the current mode; logging in
        # eval mode leaves the pending train metrics for the next train log.
        self.model.eval()
        self.log(dict(metrics))
        self.model.train(was_training)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    @torch.no_grad()
    def _greedy_completions(self, prompts: list[str]) -> tuple[list[str], list[int]]:
        """Greedy completions of `prompts`, each rank generating a shard, gathered on all ranks."""
        tokenizer = self.processing_class
        spec = self.held_out
        indexed = list(enumerate(prompts))
        results = []
        with self.accelerator.split_between_processes(indexed) as shard, unwrap_model_for_generation(
            self.model_wrapped, self.accelerator, gather_deepspeed3_params=self.args.ds3_gather_for_generation
        ) as model:
            was_training = model.training
            model.eval()
            for start in range(0, len(shard), spec.batch_size):
                batch = shard[start : start + spec.batch_size]
                inputs = tokenizer(
                    [prompt for _, prompt in batch], return_tensors="pt", padding=True,
                    padding_side="left", add_special_tokens=False,
                ).to(self.accelerator.device)
                output = model.generate(
                    **inputs, do_sample=False, max_new_tokens=spec.max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                )
                new_tokens = output[:, inputs["input_ids"].shape[1] :]
                texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
                lengths = (new_tokens != tokenizer.pad_token_id).sum(dim=1).tolist()
                results.extend(zip((index for index, _ in batch), texts, lengths))
            model.train(was_training)
        results = sorted(gather_object(results))
        return [text for _, text, _ in results], [length for _, _, length in results]
