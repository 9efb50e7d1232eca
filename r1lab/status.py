"""`r1lab status SWEEP_DIR [--watch]`: one row per job of a sweep while it runs, local or on SLURM.

The jobs are the frozen configs the preflight wrote (`<sweep dir>/.r1lab/job_N.yaml`: output dir and
step total); a sweep from another launcher falls back to the run dirs found below it. A job's state
comes from its run files (`summary.json`'s status, else `metrics.jsonl` or Hydra's `.hydra/` meaning it
started) and, for SLURM jobs (`.r1lab/scheduler_ids.json`, written at submission), from `squeue` while
the job is queued or running and `sacct` once it ended: SLURM knows about a queued job, a requeue and
a job killed outside Python (out of memory, cancelled, time limit) that run files cannot show.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from r1lab import tracking
from r1lab.launching.preflight import FROZEN_DIR
from r1lab.launching.summary import SCHEDULER_IDS

# stopped: a local run stopped by SIGTERM or Ctrl-C, saved at the end of its step; running it again resumes.
STATES = ("queued", "running", "finished", "failed", "preempted", "stopped")
# SLURM job states (squeue/sacct) -> r1lab state. Anything not listed counts as ended without success.
SLURM_STATES = {
    "PENDING": "queued", "CONFIGURING": "queued", "REQUEUED": "queued", "REQUEUE_HOLD": "queued",
    "REQUEUE_FED": "queued", "SUSPENDED": "queued", "RESV_DEL_HOLD": "queued",
    "RUNNING": "running", "COMPLETING": "running", "SIGNALING": "running", "STAGE_OUT": "running",
    "RESIZING": "running",
    "COMPLETED": "finished", "PREEMPTED": "preempted",
}
# summary.json's status -> r1lab state.
RUN_STATES = {"finished": "finished", "preempted": "preempted", "crashed": "failed",
              "terminated": "stopped", "interrupted": "stopped"}


@dataclass
class Job:
    num: int
    output_dir: Path
    max_steps: int | None
    scheduler_id: str | None = None


def sweep_jobs(sweep_dir: Path) -> list[Job]:
    """The sweep's jobs from its frozen configs, else from the run dirs below it."""
    sweep_dir = Path(sweep_dir)
    ids_path = sweep_dir / FROZEN_DIR / SCHEDULER_IDS
    ids = json.loads(ids_path.read_text()) if ids_path.exists() else {}
    frozen = sorted((sweep_dir / FROZEN_DIR).glob("job_*.yaml"), key=lambda p: int(p.stem.split("_")[1]))
    if frozen:
        jobs = []
        for path in frozen:
            config = OmegaConf.load(path)
            num = int(config.hydra.job.num)
            jobs.append(Job(num, sweep_dir / str(config.hydra.sweep.subdir), int(config.train.max_steps),
                            ids.get(str(num))))
        return jobs
    from r1lab.runs import find_run_dirs, saved_config

    jobs = []
    for num, run_dir in enumerate(find_run_dirs(sweep_dir)):
        max_steps = (saved_config(run_dir).get("train") or {}).get("max_steps")
        jobs.append(Job(num, run_dir, max_steps if isinstance(max_steps, int) else None))
    return jobs


def _slurm(command: list[str]) -> list[str]:
    """Output lines of a SLURM client command, [] when SLURM is not here or the command fails."""
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return out.stdout.splitlines() if out.returncode == 0 else []


def scheduler_states(ids: list[str]) -> dict[str, str]:
    """SLURM state of each job id: squeue for queued and running jobs (array elements expanded), sacct for the
    rest. Ids SLURM does not know (yet) are left out."""
    if not ids:
        return {}
    states = {}
    for line in _slurm(["squeue", "--me", "-h", "-r", "-o", "%i|%T"]):
        job_id, _, state = line.partition("|")
        if job_id in ids:
            states[job_id] = state
    ended = [i for i in ids if i not in states]
    if ended:
        for line in _slurm(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(ended)]):
            job_id, _, state = line.partition("|")
            state = state.split()[0] if state else state  # "CANCELLED by 0" -> CANCELLED
            # squeue is the authority on live jobs; sacct's records arrive late, so a job that already left
            # the queue may still read RUNNING there: only its end states are taken.
            if job_id in ended and SLURM_STATES.get(state) not in ("queued", "running"):
                states[job_id] = state
    return states


def run_state(output_dir: Path) -> str:
    """The state the run files show: summary.json's status, else running once the job started, else queued."""
    summary, unreadable = tracking.read_summary(output_dir)
    if summary is not None or unreadable:
        return RUN_STATES.get((summary or {}).get("status"), "failed")
    started = (output_dir / tracking.METRICS_FILE).exists() or (output_dir / ".hydra").exists()
    return "running" if started else "queued"


def job_state(files: str, scheduler: str | None) -> str:
    """Combine the run files' state with SLURM's. A summary saying finished or failed is final (r1lab requeues
    only preempted runs; SLURM may show the job RUNNING or COMPLETING for a moment while its process exits).
    Otherwise SLURM wins while the job is queued or running (a requeued job's summary still says preempted),
    and the run files once it ended, unless SLURM ended it without them."""
    if scheduler is None or files in ("finished", "failed"):
        return files
    slurm = SLURM_STATES.get(scheduler, "failed")
    if slurm in ("queued", "running"):
        return slurm
    if files in ("queued", "running"):
        return slurm  # ended outside Python: OOM kill, cancel, time limit, node failure
    return files


def _latest(records: list[dict], key: str) -> float | None:
    return next((r[key] for r in reversed(records) if isinstance(r.get(key), (int, float))), None)


def status_table(sweep_dir: Path) -> pd.DataFrame:
    """One row per job: job, state, step (of total), reward, accuracy, SLURM id and state, output dir."""
    jobs = sweep_jobs(sweep_dir)
    slurm = scheduler_states([job.scheduler_id for job in jobs if job.scheduler_id])
    rows = []
    for job in jobs:
        records = tracking.read_metrics(job.output_dir)
        step = _latest(records, tracking.STEP)
        scheduler = slurm.get(job.scheduler_id) if job.scheduler_id else None
        rows.append({
            "job": job.num,
            "state": job_state(run_state(job.output_dir), scheduler),
            "step": f"{int(step) if step is not None else '-'}/{job.max_steps if job.max_steps is not None else '?'}",
            "reward": _latest(records, "train/reward"),
            "accuracy": _latest(records, "eval/accuracy"),
            "slurm": f"{job.scheduler_id} {scheduler or '?'}" if job.scheduler_id else "-",
            "output_dir": str(job.output_dir),
        })
    return pd.DataFrame(rows, columns=["job", "state", "step", "reward", "accuracy", "slurm", "output_dir"])


def render(sweep_dir: Path, table: pd.DataFrame) -> str:
    counts = table.state.value_counts()
    tally = ", ".join(f"{counts[s]} {s}" for s in STATES if s in counts)
    header = f"r1lab status {sweep_dir}: {len(table)} jobs ({tally or 'none found'}) at {time.strftime('%H:%M:%S')}"
    if table.empty:
        return header
    shown = table.copy()
    for column in ("reward", "accuracy"):
        shown[column] = shown[column].map(lambda v: "-" if pd.isna(v) else f"{v:.3f}")
    return header + "\n" + shown.to_string(index=False)


def show(sweep_dir: Path, watch: float | None = None) -> int:
    """Print the table; with `watch`, redraw every `watch` seconds until no job is queued or running."""
    while True:
        table = status_table(sweep_dir)
        if watch is not None and sys.stdout.isatty():
            print("\033[H\033[J", end="")  # clear the screen between redraws
        print(render(sweep_dir, table), flush=True)
        if watch is None or not table.state.isin(["queued", "running"]).any():
            return 0
        try:
            time.sleep(watch)
        except KeyboardInterrupt:
            return 0
