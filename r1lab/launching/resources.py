"""What one job asks of a cluster, derived from its composed config (model size, rollout engine)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig


@dataclass(frozen=True)
class JobResources:
    gpus: int
    tasks: int
    cpus_per_task: int
    mem_gb: int
    timeout_min: int

    def submitit_parameters(self) -> dict[str, int | None]:
        """hydra-submitit-launcher's queue parameters for this request (one node)."""
        return {
            "gpus_per_node": self.gpus or None,
            "tasks_per_node": self.tasks,
            "cpus_per_task": self.cpus_per_task,
            "mem_gb": self.mem_gb,
            "timeout_min": self.timeout_min,
            "nodes": 1,
        }


def resources_for(cfg: DictConfig) -> JobResources:
    """The request of one run: its model's resources, plus a GPU for a vLLM server when rollout=vllm_server.

    Training ranks are SLURM tasks (one per GPU); the vLLM server, when used, runs beside
    rank 0 on the extra GPU.
    """
    res = cfg.model.resources
    tasks = max(1, int(res.ranks))
    extra_gpu = 1 if cfg.rollout.engine == "vllm" and cfg.rollout.mode == "server" else 0
    return JobResources(
        gpus=int(res.gpus) + extra_gpu,
        tasks=tasks,
        cpus_per_task=max(1, int(res.cpus) // tasks),
        mem_gb=int(res.mem_gb),
        timeout_min=int(res.time_min),
    )


def estimated_gpu_hours(cfg: DictConfig) -> float:
    """GPU-hours of a run from the model's rough step time, capped by its time limit."""
    res = resources_for(cfg)
    hours = min(int(cfg.train.max_steps) * float(cfg.model.resources.est_step_s), res.timeout_min * 60) / 3600
    return res.gpus * hours
