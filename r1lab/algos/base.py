"""`R1Trainer`: TRL's GRPOTrainer plus what every r1lab algorithm shares.

PPO, PRIME, RLOO and REINFORCE++ subclass it too, so held-out evaluation, the "aha" metrics of the training
completions (`train/aha/*`, r1lab/aha.py) and Mini-R1's completion sample files are written once and
behave the same for every algorithm.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from trl import GRPOTrainer

from r1lab.aha import aha_scores
from r1lab.checkpoints import CompleteCheckpoints
from r1lab.evaluation import HeldOutEvaluation
from r1lab.samples import CompletionSamples


class R1Trainer(CompleteCheckpoints, HeldOutEvaluation, GRPOTrainer):
    """GRPOTrainer with r1lab's complete-only checkpoints, greedy held-out evaluation, aha metrics and
    completion samples."""

    # Set by r1lab.train; None writes no sample files. Only the main process writes.
    completion_samples: CompletionSamples | None = None

    def __init__(self, *args, companion_lora=None, **kwargs):
        """`companion_lora`: the LoraConfig PPO's critic and PRIME's PRM get under an adapter (r1lab/adapters.py);
        None trains them in full. `quantization_config` (TRL's argument) is kept to load them like the policy."""
        self.companion_lora = companion_lora
        self.quantization_config = kwargs.get("quantization_config")
        super().__init__(*args, **kwargs)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        """TRL's rewards, plus the aha metrics and sample files of the same completions.

        Every rank scores its own completions (pure Python over the strings, see r1lab/aha.py), and the
        per-completion scores are gathered like TRL gathers rewards, so the logged means cover the global
        batch. Sample files hold rank 0's completions only: a random subset of the global batch.
        """
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        mode = "train" if self.model.training else "eval"
        held_out = getattr(self, "held_out", None)
        task = held_out.task if held_out is not None else None
        columns = {key: [row[key] for row in inputs] for key in inputs[0] if key not in ("prompt", "completion")}
        scores = aha_scores(completions, task, columns)
        local = torch.tensor(list(zip(*scores.values())), dtype=torch.float32, device=self.accelerator.device)
        for name, mean in zip(scores, self.accelerator.gather(local).mean(dim=0).tolist()):
            self._metrics[mode][f"aha/{name}"].append(mean)
        if self.completion_samples is not None and mode == "train" and self.accelerator.is_main_process:
            # The completions are scored before the optimizer step that uses them: that step is global_step + 1.
            solved = [s == 1.0 for s in scores["accuracy"]] if "accuracy" in scores else [False] * len(completions)
            self.completion_samples.write(self.state.global_step + 1, prompts, completions, solved)
        return rewards_per_func


def clipped_update_fields(algo: Mapping) -> dict[str, Any]:
    """GRPOConfig fields of the PPO-clipped policy update, named alike in every algorithm's config."""
    return {
        "num_generations": int(algo["num_generations"]),
        "loss_type": algo["loss_type"],
        "epsilon": float(algo["epsilon"]),
        "epsilon_high": None if algo["epsilon_high"] is None else float(algo["epsilon_high"]),
        "num_iterations": int(algo["num_iterations"]),
    }
