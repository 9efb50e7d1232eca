"""Launching sweeps: per-job resources, validation before queueing, frozen configs, preemption.

The Hydra launcher plugins in `hydra_plugins/r1lab_launchers` are thin wrappers over this package:
`launcher=local` (Hydra's basic launcher), `launcher=submitit_local` and `launcher=slurm`
(hydra-submitit-launcher), each extended with the same preflight (`preflight.py`) and sweep
summary (`summary.py`).
"""
