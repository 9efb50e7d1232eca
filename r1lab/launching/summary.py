"""The sweep summary: each job's state, output dir and W&B run, written when the sweep ends."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from r1lab.tracking import read_summary

log = logging.getLogger(__name__)

SWEEP_SUMMARY = "sweep_summary"


@dataclass
class JobOutcome:
    num: int
    overrides: str
    state: str              # the launcher's view: COMPLETED, FAILED, TIMEOUT, CANCELLED, ...
    output_dir: str
    run_status: str | None  # summary.json's status: finished, crashed, preempted, or None
    wandb_run: str | None
    scheduler_id: str | None = None
    error: str | None = None


def outcome(num: int, overrides: str, state: str, output_dir: Path, scheduler_id: str | None = None,
            error: str | None = None) -> JobOutcome:
    """A job's outcome, completed from the run's own summary.json when it wrote one (an unreadable one is named)."""
    run_status = wandb_run = None
    summary, problem = read_summary(Path(output_dir))
    if problem:
        log.warning("job %d: %s", num, problem)
        run_status, error = "unreadable summary.json", "; ".join(filter(None, [error, problem]))
    if summary is not None:
        run_status = summary.get("status")
        wandb = summary.get("wandb") or {}
        wandb_run = wandb.get("url") or (f"{wandb.get('project')}/{wandb.get('id')} ({wandb.get('mode')})" if wandb else None)
    return JobOutcome(num, overrides, state, str(output_dir), run_status, wandb_run, scheduler_id, error)


def write(sweep_dir: str | Path, outcomes: list[JobOutcome]) -> str:
    """Write sweep_summary.json and .md into the sweep dir; return the Markdown table."""
    lines = ["| job | overrides | state | run | output dir | W&B run | scheduler id |",
             "|---:|---|---|---|---|---|---|"]
    for o in sorted(outcomes, key=lambda o: o.num):
        lines.append(f"| {o.num} | {o.overrides} | {o.state} | {o.run_status or '-'} | {o.output_dir} | "
                     f"{o.wandb_run or '-'} | {o.scheduler_id or '-'} |")
    failed = sum(o.state != "COMPLETED" or o.run_status not in ("finished", None) for o in outcomes)
    lines.append(f"\n{len(outcomes) - failed} of {len(outcomes)} jobs finished")
    table = "\n".join(lines)
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / f"{SWEEP_SUMMARY}.md").write_text(table + "\n")
    (sweep_dir / f"{SWEEP_SUMMARY}.json").write_text(json.dumps([asdict(o) for o in outcomes], indent=2) + "\n")
    return table


SCHEDULER_IDS = "scheduler_ids.json"


def record_scheduler_ids(sweep_dir: str | Path, ids: dict[int, str]) -> Path:
    """`<sweep dir>/.r1lab/scheduler_ids.json`: job number -> SLURM job id, written as soon as jobs are queued,
    so `r1lab status` can ask squeue/sacct about jobs that have not started yet."""
    from r1lab.launching.preflight import FROZEN_DIR

    path = Path(sweep_dir) / FROZEN_DIR / SCHEDULER_IDS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({str(num): job_id for num, job_id in sorted(ids.items())}, indent=1) + "\n")
    return path
