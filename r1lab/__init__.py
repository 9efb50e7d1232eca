"""r1lab: a Hydra experiment and ablation framework for R1-Zero-style RL research."""

__version__ = "0.1.0"
