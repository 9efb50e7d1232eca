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
    """The request of one run: its model's resources, plus the GPUs of the vLLM server the job starts
    (rollout=vllm_server, `tensor_parallel_size` of them). Training ranks are SLURM tasks, one per GPU.
    """
    res = cfg.model.resources
    tasks = max(1, int(res.ranks))
    from r1lab.launching.vllm_server import starts_server

    server_gpus = int(cfg.rollout.tensor_parallel_size) if starts_server(cfg) else 0
    return JobResources(
        gpus=int(res.gpus) + server_gpus,
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
