"""A run dir belongs to one run: one writer at a time, the config it was started with, no foreign files.

Everything r1lab keeps about the run dir itself lives in `<run dir>/.r1lab/`:

- `lock`: the writer's lock, created with O_CREAT|O_EXCL (atomic on local filesystems and on NFSv3+,
  Lustre and GPFS, where `flock` is not reliable). It holds the holder's pid, host, process start time
  and SLURM job id. A second launch into the dir fails at once naming the holder. A lock is stale, and
  is taken over with a line saying so, when its holder is gone: on the same host, its pid no longer
  runs (or runs another process); on another host, where a pid cannot be checked, the lock belongs to
  the same SLURM job (a requeue) or its heartbeat (the holder touches the file every HEARTBEAT_S) is
  older than R1LAB_LOCK_STALE_S seconds (default 600).
- `config.yaml`: the resolved training config of the first start. A later start in the same dir must
  train the same thing: any difference outside SAFE_TO_CHANGE fails, listing the keys with old and new
  values.

`metrics.jsonl` and `summary.json` in a dir without `.r1lab/config.yaml` were not written by r1lab
(or by an r1lab older than this record): r1lab refuses the dir rather than rewrite them.

Hand-written: no maintained library offers an O_EXCL lock with cross-host staleness (`filelock`
relies on flock/fcntl, which NFS does not honour consistently, and has no stale takeover).
"""

from __future__ import annotations

import atexit
import fnmatch
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

RECORD_DIR = ".r1lab"
LOCK_FILE = "lock"
CONFIG_FILE = "config.yaml"
HEARTBEAT_S = 60
# Keys that may differ between starts of one run: how long it trains, what it logs, how often it
# evaluates, and where things run. Everything else changes what is trained, and needs a new run dir.
SAFE_TO_CHANGE = (
    "train.max_steps", "train.logging_steps", "train.resume", "train.dataloader_num_workers",
    "eval.every_steps", "eval.batch_size", "logger.*", "samples.*", "run_name", "dry_run", "cache_dir",
    "model.resources.*",
)
# r1lab's own files in a run dir; anything else was not written by r1lab.
OWNED_BY_RUN = ("metrics.jsonl", "summary.json")


class RunDirError(RuntimeError):
    """A run dir that this start must not write into; the message says why and what to do."""


# --- the lock ----------------------------------------------------------------------------------


def _process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (field 22 of /proc/pid/stat), to tell a reused pid; None off Linux."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _holder() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "start": _process_start(os.getpid()),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"), "since": time.strftime("%Y-%m-%d %H:%M:%S")}


def _describe(holder: dict[str, Any]) -> str:
    job = f", SLURM job {holder['slurm_job_id']}" if holder.get("slurm_job_id") else ""
    return f"pid {holder.get('pid')} on {holder.get('host')}{job}, since {holder.get('since')}"


def stale_reason(holder: dict[str, Any], lock_age_s: float) -> str | None:
    """Why the lock of `holder` is stale, or None while its holder may still be writing."""
    me = _holder()
    if holder.get("host") == me["host"]:
        pid = int(holder.get("pid") or 0)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"pid {pid} is no longer running"
        except PermissionError:
            return None  # alive, another user's
        if holder.get("start") and _process_start(pid) not in (None, holder["start"]):
            return f"pid {pid} is now another process"
        return None
    if holder.get("slurm_job_id") and holder["slurm_job_id"] == me["slurm_job_id"]:
        return f"SLURM job {me['slurm_job_id']} was requeued"
    limit = float(os.environ.get("R1LAB_LOCK_STALE_S", 600))
    if lock_age_s > limit:
        return f"no heartbeat for {lock_age_s:.0f} s (R1LAB_LOCK_STALE_S={limit:g})"
    return None


class RunDirLock:
    """The one-writer lock of a run dir, held by this process until `release` (or its exit)."""

    held: dict[Path, RunDirLock] = {}

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir).resolve()
        self.path = self.run_dir / RECORD_DIR / LOCK_FILE
        self._stop = threading.Event()

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = _holder()
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(me) + "\n")
                f.flush()
                os.fsync(f.fileno())
            RunDirLock.held[self.run_dir] = self
            threading.Thread(target=self._heartbeat, daemon=True, name="r1lab-lock-heartbeat").start()
            return
        raise RunDirError(f"{self.run_dir}: could not take {self.path} (other processes keep taking it)")

    def _read(self) -> tuple[str, dict[str, Any], float]:
        """The lock's text, its holder ({} when there is no lock) and its age in seconds."""
        try:
            text, age = self.path.read_text(), time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return "", {}, 0.0
        try:
            return text, json.loads(text), age
        except json.JSONDecodeError:
            # Its creator died between creating and writing it, or is writing it right now.
            return text, {"pid": None, "host": None, "since": "?", "unwritten": True}, age

    def _take_over_if_stale(self) -> None:
        text, holder, age = self._read()
        if not holder:
            return  # released meanwhile: try again
        if holder.get("unwritten"):
            reason = f"the lock was left unwritten {age:.0f} s ago" if age > 10 else None
        else:
            reason = stale_reason(holder, age)
        if reason is None:
            raise RunDirError(
                f"{self.run_dir} is in use by another r1lab run ({_describe(holder)}); one run writes into a run "
                f"dir at a time: wait for it, or choose another hydra.run.dir (lock: {self.path})"
            )
        # Rename, never delete: of several processes taking over at once, exactly one rename succeeds.
        aside = self.path.with_name(f"{LOCK_FILE}.stale-{os.getpid()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        if aside.read_text() != text:
            # Between our read and our rename another process took the stale lock over: give it back.
            os.rename(aside, self.path)
            raise RunDirError(f"{self.run_dir} was just taken by another r1lab run (lock: {self.path})")
        aside.unlink()
        # Printed, not logged: for a single run this happens before Hydra sets up logging.
        print(f"r1lab: taking over the stale lock of {self.run_dir} ({_describe(holder)}): {reason}", flush=True)

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                return

    def release(self) -> None:
        self._stop.set()
        RunDirLock.held.pop(self.run_dir, None)
        _, holder, _ = self._read()
        if holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            self.path.unlink(missing_ok=True)


def hold(run_dir: Path) -> RunDirLock:
    """This process's lock of `run_dir`, taken now unless it already holds it."""
    resolved = Path(run_dir).resolve()
    if resolved not in RunDirLock.held:
        RunDirLock(resolved).acquire()
    return RunDirLock.held[resolved]


def release(run_dir: Path) -> None:
    lock = RunDirLock.held.get(Path(run_dir).resolve())
    if lock is not None:
        lock.release()


@atexit.register
def release_all() -> None:
    for lock in list(RunDirLock.held.values()):
        lock.release()


def _is_rank_zero() -> bool:
    return os.environ.get("RANK", "0") == "0"


class LockRunDir(Callback):
    """Hydra callback (hydra.callbacks in conf/config.yaml): the run dir's lock is taken before Hydra writes
    into it (`.hydra/`, the job log) for a single run, as each job starts in a sweep, and released at its end."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if _is_rank_zero() and not config.get("dry_run"):
            _hold_or_exit(Path(str(config.hydra.run.dir)))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        # A sweep's job: a busy dir fails this job only, when r1lab.train.run_job takes the lock again.
        if _is_rank_zero() and not config.get("dry_run"):
            try:
                hold(Path(str(config.hydra.runtime.output_dir)))
            except RunDirError:
                pass

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        release(Path(str(config.hydra.runtime.output_dir)))


def _hold_or_exit(run_dir: Path) -> None:
    from r1lab.validation import exit_with_message

    try:
        hold(run_dir)
    except RunDirError as error:
        exit_with_message(error)


# --- what the run dir holds ----------------------------------------------------------------------


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict) and tree:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: tree}


def _safe(key: str) -> bool:
    return any(fnmatch.fnmatchcase(key, pattern) or key.startswith(pattern + ".") for pattern in SAFE_TO_CHANGE)


def config_drift(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """`key: old -> new` for every key outside SAFE_TO_CHANGE that differs between two resolved configs."""
    old, new = _flat(recorded), _flat(current)
    missing = object()
    return [f"{key}: {old.get(key, missing)!r} -> {new.get(key, missing)!r}".replace(repr(missing), "(absent)")
            for key in sorted(set(old) | set(new)) if not _safe(key) and old.get(key, missing) != new.get(key, missing)]


def take(run_dir: Path, cfg: DictConfig) -> bool:
    """Lock `run_dir` for this process and claim it for `cfg`; True when this start continues an earlier one."""
    hold(run_dir)
    return claim(run_dir, cfg)


def claim(run_dir: Path, cfg: DictConfig) -> bool:
    """Check that this start may write into `run_dir` (call with its lock held); True when it continues a run.

    A fresh dir gets `.r1lab/config.yaml`. A dir of an earlier start must have been started with the same
    training config (else RunDirError listing the differences); `train.resume=never` there is refused,
    since starting over would mix two runs' records. Files r1lab did not write are refused, untouched.
    """
    run_dir = Path(run_dir)
    record = run_dir / RECORD_DIR / CONFIG_FILE
    current = OmegaConf.to_container(cfg, resolve=True)
    current.pop("hydra", None)
    if not record.exists():
        foreign = [name for name in OWNED_BY_RUN if (run_dir / name).exists()]
        if foreign:
            raise RunDirError(
                f"{run_dir} holds {' and '.join(foreign)} that r1lab did not write for a run there (no "
                f"{RECORD_DIR}/{CONFIG_FILE}: another program's, or an r1lab older than that record); r1lab leaves "
                "them untouched: choose another hydra.run.dir, or move them away"
            )
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_suffix(".tmp")
        tmp.write_text(OmegaConf.to_yaml(OmegaConf.create(current)))
        os.replace(tmp, record)
        return False
    drift = config_drift(OmegaConf.to_container(OmegaConf.load(record), resolve=True), current)
    if drift:
        raise RunDirError(
            f"{run_dir} holds a run started with another training config; resuming it would mix two runs:\n  - "
            + "\n  - ".join(drift)
            + "\nTo extend the run change only train.max_steps (also safe: " + ", ".join(SAFE_TO_CHANGE[1:])
            + "); to start fresh, choose another hydra.run.dir."
        )
    if cfg.train.resume == "never":
        raise RunDirError(f"{run_dir} already holds this run, and train.resume=never would start it over in the "
                          "same files: choose another hydra.run.dir to start fresh")
    return True
