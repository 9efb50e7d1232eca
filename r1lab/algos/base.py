"""`R1Trainer`: TRL's GRPOTrainer plus what every r1lab algorithm shares.

PPO and PRIME subclass it too, so held-out evaluation (and anything else r1lab adds to a run)
is written once and behaves the same for the three algorithms.
"""

from __future__ import annotations

from trl import GRPOTrainer

from r1lab.evaluation import HeldOutEvaluation


class R1Trainer(HeldOutEvaluation, GRPOTrainer):
    """GRPOTrainer with r1lab's greedy held-out evaluation."""
