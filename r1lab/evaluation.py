"""Held-out evaluation with greedy decoding: the accuracy curve every ablation is compared on, and the search metrics.

TRL's own eval samples `num_generations` completions per prompt at the training temperature;
the seeds report success on held-out puzzles, so r1lab replaces `Trainer.evaluate` with greedy
decoding on a fixed slice of the test split, scored by the task's verifiers. HF's eval schedule
(`eval_strategy="steps"`) calls it, and it logs through the trainer like any eval, so W&B,
metrics.jsonl and checkpoints' `trainer_state.json` all see `eval/accuracy`. r1lab.train also runs it
once before the first update (HF's `eval_on_start`), so every curve has its step-0 point.

Every evaluation logs, besides greedy `eval/accuracy`, `eval/format_rate` and `eval/mean_length` (tokens):
`eval/accuracy_sampled` (one completion per prompt sampled as in training: a pre-RL base's greedy
decoding often loops) and the search metrics of the greedy completions (r1lab/search_metrics.py:
`eval/think_tokens`, `eval/candidates_tried`, `eval/think_value_correct_rate`,
`eval/think_has_solution_rate`, `eval/answer_is_sum_rate`).

The final evaluation (`evaluate(pass_k=k)`, called once by r1lab.train after training) also samples k
completions per held-out prompt at the training temperature and logs `eval/pass@1` and `eval/pass@k`
with the unbiased estimator of Chen et al. 2021 (`pass_at_k`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType

import torch
from accelerate.utils import gather_object
from trl.models.utils import unwrap_model_for_generation

from r1lab.search_metrics import search_metrics


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


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k).

    Chen et al. 2021 (Codex), eq. 1, in their numerically stable product form.
    """
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


class HeldOutEvaluation:
    """Mixin for r1lab's trainers: `evaluate()` is greedy held-out accuracy (set `held_out` first)."""

    held_out: HeldOutSpec

    def evaluate(
        self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval", pass_k: int = 0
    ) -> dict[str, float]:
        """Greedy accuracy, format rate, mean length and search metrics, sampled accuracy; with ``pass_k`` > 0
        also pass@1 and pass@k."""
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        spec = self.held_out
        if spec.num_prompts is not None:
            dataset = dataset.select(range(min(spec.num_prompts, len(dataset))))
        rows = [dict(row) for row in dataset]
        prompts = [row["prompt"] for row in rows]
        completions, lengths = self._held_out_completions(prompts)
        metrics = score_completions(spec.task, completions, rows)
        metrics["mean_length"] = sum(lengths) / len(lengths)
        metrics.update(search_metrics(completions, rows, self._token_counts))
        sampled, _ = self._held_out_completions(prompts, samples_per_prompt=1)
        metrics["accuracy_sampled"] = score_completions(spec.task, sampled, rows)["accuracy"]
        if pass_k > 0:
            metrics.update(self._pass_at_k(rows, pass_k))
        metrics = {f"{metric_key_prefix}_{key}": value for key, value in metrics.items()}

        was_training = self.model.training
        # GRPOTrainer.log merges and clears the pending metrics of the current mode; logging in
        # eval mode leaves the pending train metrics for the next train log.
        self.model.eval()
        # TRL's log() also logs (and may print) its table of the latest *training* completions; an evaluation is
        # not a training step, and at step 0 that table is empty, which num_completions_to_print=0 cannot stop
        # from printing (0 >= 0 rows reads as "all rows").
        log_completions, self.log_completions = self.log_completions, False
        try:
            self.log(dict(metrics))
        finally:
            self.log_completions = log_completions
        self.model.train(was_training)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def _pass_at_k(self, rows: list[dict], k: int) -> dict[str, float]:
        """pass@1 and pass@k over `rows`, from k completions per prompt sampled as in training."""
        task = self.held_out.task
        completions, _ = self._held_out_completions([row["prompt"] for row in rows], samples_per_prompt=k)
        columns = {key: [row[key] for row in rows for _ in range(k)] for key in rows[0] if key != "prompt"}
        correct = task.REWARDS[task.CORRECTNESS](completions=completions, **columns)
        counts = [sum(score == 1.0 for score in correct[i * k : (i + 1) * k]) for i in range(len(rows))]
        return {f"pass@{j}": sum(pass_at_k(k, c, j) for c in counts) / len(counts) for j in sorted({1, k})}

    def _token_counts(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self.processing_class(texts, add_special_tokens=False)["input_ids"]]

    def _sampling_kwargs(self) -> dict:
        """`generate` keywords that sample as TRL's training rollouts do (temperature, top-p/k, ...)."""
        args = self.args
        return {
            "do_sample": True, "temperature": args.temperature, "top_p": args.top_p, "top_k": args.top_k,
            "min_p": args.min_p, "repetition_penalty": args.repetition_penalty, **(args.generation_kwargs or {}),
        }

    @torch.no_grad()
    def _held_out_completions(
        self, prompts: list[str], samples_per_prompt: int | None = None
    ) -> tuple[list[str], list[int]]:
        """Completions of `prompts` and their token lengths, each rank generating a shard, gathered on all ranks.

        One greedy completion per prompt, or `samples_per_prompt` sampled ones (prompt-major order).
        """
        tokenizer = self.processing_class
        spec = self.held_out
        if samples_per_prompt is None:
            samples, decoding = 1, {"do_sample": False}
        else:
            samples = samples_per_prompt
            decoding = {**self._sampling_kwargs(), "num_return_sequences": samples}
        # About batch_size sequences per generate call, whatever the samples per prompt.
        prompts_per_batch = max(1, spec.batch_size // samples)
        indexed = list(enumerate(prompts))
        results = []
        with self.accelerator.split_between_processes(indexed) as shard, unwrap_model_for_generation(
            self.model_wrapped, self.accelerator, gather_deepspeed3_params=self.args.ds3_gather_for_generation
        ) as model:
            was_training = model.training
            model.eval()
            for start in range(0, len(shard), prompts_per_batch):
                batch = shard[start : start + prompts_per_batch]
                inputs = tokenizer(
                    [prompt for _, prompt in batch], return_tensors="pt", padding=True,
                    padding_side="left", add_special_tokens=False,
                ).to(self.accelerator.device)
                output = model.generate(
                    **inputs, **decoding, max_new_tokens=spec.max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                )
                new_tokens = output[:, inputs["input_ids"].shape[1] :]
                texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
                lengths = (new_tokens != tokenizer.pad_token_id).sum(dim=1).tolist()
                keys = [(index, sample) for index, _ in batch for sample in range(samples)]
                results.extend(zip(keys, texts, lengths))
            model.train(was_training)
        results = sorted(gather_object(results))
        return [text for _, text, _ in results], [length for _, _, length in results]
