"""rollout=vllm_server inside a job: `trl vllm-serve` on the GPUs after the training ranks.

The job asks for the model's GPUs plus `tensor_parallel_size` more (resources.py). Training rank i
uses the i-th visible GPU (LOCAL_RANK); local rank 0 starts the server on the GPUs after the last
rank before the trainer is built and stops it when training ends. TRL's trainer itself waits up to
`rollout.timeout` s for the server, then pushes weights to it every step. With
`rollout.start_server=false` r1lab starts nothing and the trainer connects to `host:port`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

from omegaconf import DictConfig

from r1lab.trl_args import vllm_serve_command

log = logging.getLogger(__name__)


def starts_server(cfg: DictConfig) -> bool:
    rollout = cfg.rollout
    return rollout.engine == "vllm" and rollout.mode == "server" and bool(rollout.get("start_server", False))


def server_devices(visible: list[str], ranks: int, tensor_parallel: int) -> list[str]:
    """The GPUs left for the server once each training rank has its own."""
    if len(visible) < ranks + tensor_parallel:
        raise RuntimeError(
            f"rollout=vllm_server needs {ranks} GPU(s) for training ranks and {tensor_parallel} for the server, "
            f"but this job sees {len(visible)} ({','.join(visible) or 'none'})"
        )
    return visible[ranks : ranks + tensor_parallel]


@contextlib.contextmanager
def vllm_server(cfg: DictConfig, model: str, output_dir: Path,
                command: Callable[[DictConfig, str], list[str]] = vllm_serve_command) -> Iterator[subprocess.Popen | None]:
    """Run the job's vLLM server (local rank 0 only) for the duration of the block."""
    if not starts_server(cfg) or os.environ.get("LOCAL_RANK", "0") != "0":
        yield None
        return
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        import torch

        visible = ",".join(str(i) for i in range(torch.cuda.device_count()))
    devices = server_devices([d for d in visible.split(",") if d], int(cfg.model.resources.ranks),
                             int(cfg.rollout.tensor_parallel_size))
    argv = command(cfg, model)
    log_path = output_dir / "vllm_server.log"
    log.info("starting the vLLM server on GPU(s) %s: %s (log: %s)", ",".join(devices), " ".join(argv), log_path)
    with log_path.open("ab") as server_log:
        process = subprocess.Popen(argv, env={**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(devices)},
                                   stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        # The server spawns workers of its own: stop its whole process group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
