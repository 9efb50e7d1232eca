"""What the SLURM cluster can give one job: partitions' per-node limits, read from `sinfo`."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

from r1lab.launching.resources import JobResources


@dataclass(frozen=True)
class Partition:
    name: str
    default: bool
    cpus: int
    mem_mb: int
    gpus: int
    time_limit_min: float  # inf when unlimited

    def refusal(self, request: JobResources) -> str | None:
        """Why this partition cannot run `request` on one node, or None if it can."""
        if request.gpus > self.gpus:
            return f"{request.gpus} GPUs > {self.gpus} per node"
        if request.tasks * request.cpus_per_task > self.cpus:
            return f"{request.tasks * request.cpus_per_task} CPUs > {self.cpus} per node"
        if request.mem_gb * 1024 > self.mem_mb:
            return f"{request.mem_gb} GB memory > {self.mem_mb // 1024} GB per node"
        if request.timeout_min > self.time_limit_min:
            return f"{request.timeout_min} min > time limit {self.time_limit_min:g} min"
        return None


def _minutes(limit: str) -> float:
    """SLURM time limits: 'infinite', 'MM', 'HH:MM:SS', 'D-HH:MM:SS', 'D-HH'."""
    if limit in ("infinite", "UNLIMITED", "n/a"):
        return float("inf")
    days, _, clock = limit.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    if days:
        parts += [0] * (3 - len(parts))
        hours, minutes, seconds = parts
    else:
        hours, minutes, seconds = ([0] * (3 - len(parts)) + parts) if len(parts) > 1 else (0, parts[0], 0)
    return int(days or 0) * 1440 + hours * 60 + minutes + seconds / 60


def _gpus(gres: str) -> int:
    """GPU count of a node's GRES string such as 'gpu:2', 'gpu:a100:8(S:0-1)' or '(null)'."""
    total = 0
    for item in gres.split(","):
        match = re.match(r"gpu(?::[^:(]+)?:(\d+)", item.strip())
        if match:
            total += int(match.group(1))
    return total


def partitions() -> list[Partition]:
    """The cluster's partitions, with the largest node of each."""
    if shutil.which("sinfo") is None:
        raise RuntimeError("launcher=slurm needs SLURM's client tools (sinfo not found on PATH)")
    out = subprocess.run(["sinfo", "--noheader", "--format=%P|%c|%m|%G|%l"],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"sinfo failed: {out.stderr.strip()} (is SLURM_CONF set and slurmctld up?)")
    best: dict[str, Partition] = {}
    for line in out.stdout.splitlines():
        name, cpus, mem, gres, limit = line.strip().split("|")
        default = name.endswith("*")
        name = name.rstrip("*")
        part = Partition(name, default, int(cpus.rstrip("+")), int(mem.rstrip("+")), _gpus(gres), _minutes(limit))
        old = best.get(name)
        if old is None or (part.gpus, part.cpus, part.mem_mb) > (old.gpus, old.cpus, old.mem_mb):
            best[name] = part
    return list(best.values())


def refusal(request: JobResources, partition: str | None, available: list[Partition]) -> str | None:
    """Why the chosen partition (or the cluster's default) cannot run `request`; None if it can."""
    if partition is None:
        defaults = [p for p in available if p.default] or available[:1]
        if not defaults:
            return "the cluster has no partitions"
        partition = defaults[0].name
    chosen = [p for p in available if p.name == partition]
    if not chosen:
        return f"partition {partition!r} does not exist (have: {', '.join(p.name for p in available)})"
    reason = chosen[0].refusal(request)
    if reason is None:
        return None
    others = [p.name for p in available if p.name != partition and p.refusal(request) is None]
    hint = f"; it fits partition(s) {', '.join(others)}" if others else "; no partition of this cluster can run it"
    return f"partition {partition!r}: {reason}{hint}"
