"""Crash-safe checkpoints: a checkpoint counts only once it is complete; resume takes the newest such.

HF's Trainer writes `checkpoint-N/` file by file and deletes old checkpoints (save_total_limit) before
the new one is known to be whole, so a kill or a full disk in a save leaves a partial `checkpoint-N`
that `get_last_checkpoint` picks and cannot load. Here a checkpoint is marked complete last (the file
COMPLETE, fsynced, written once every rank's files are on disk), old ones are rotated out only after
that, and resume takes the newest marked one. Unmarked ones are partial saves of this run (the run dir
is locked, r1lab/run_dir.py): they are removed, with a line saying which and why.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

COMPLETE = "COMPLETE"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_step(path: Path) -> int:
    return int(_CHECKPOINT.match(Path(path).name).group(1))


def checkpoints(run_dir: Path) -> list[Path]:
    """Every `checkpoint-N` dir of `run_dir`, oldest first."""
    found = [p for p in Path(run_dir).iterdir() if _CHECKPOINT.match(p.name) and p.is_dir()] \
        if Path(run_dir).is_dir() else []
    return sorted(found, key=checkpoint_step)


def is_complete(checkpoint: Path) -> bool:
    return (Path(checkpoint) / COMPLETE).is_file()


def mark_complete(checkpoint: Path) -> None:
    """Write the marker, then fsync it and its dir, so that the mark never outlives a lost checkpoint file."""
    marker = Path(checkpoint) / COMPLETE
    with open(marker, "w") as f:
        f.write("every file of this checkpoint was written before this one\n")
        f.flush()
        os.fsync(f.fileno())
    fd = os.open(checkpoint, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def resume_point(run_dir: Path, tidy: bool = True) -> Path | None:
    """The newest complete checkpoint of `run_dir`. With `tidy` (one rank, holding the run dir's lock),
    partial ones are removed, each with a line saying so."""
    chosen = None
    for checkpoint in reversed(checkpoints(run_dir)):
        if chosen is None and is_complete(checkpoint):
            chosen = checkpoint
        elif tidy and not is_complete(checkpoint):
            log.warning("skipping %s: incomplete (no %s marker: its save was interrupted); removed it",
                        checkpoint.name, COMPLETE)
            shutil.rmtree(checkpoint, ignore_errors=True)
    return chosen


class CompleteCheckpoints:
    """Trainer mixin: mark each checkpoint complete after all its files, and only then rotate old ones out."""

    def _save_checkpoint(self, model, trial) -> None:
        from transformers.trainer_utils import rotate_checkpoints

        limit = self.args.save_total_limit
        self.args.save_total_limit = None  # no rotation inside HF's save: the new checkpoint is not whole yet
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = limit
        self.accelerator.wait_for_everyone()  # every rank's shards are written
        if self.args.should_save:
            run_dir = self._get_output_dir(trial=trial)
            mark_complete(Path(run_dir) / f"checkpoint-{self.state.global_step}")
            rotate_checkpoints(output_dir=run_dir, save_total_limit=limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=False)


def save_final(trainer, final_dir: Path) -> None:
    """`trainer.save_model` into `final_dir`, which appears only whole (written aside, then renamed in)."""
    final_dir = Path(final_dir)
    partial = final_dir.with_name(final_dir.name + ".partial")
    if trainer.args.should_save:
        shutil.rmtree(partial, ignore_errors=True)
    trainer.save_model(str(partial))
    trainer.accelerator.wait_for_everyone()
    if trainer.args.should_save:
        shutil.rmtree(final_dir, ignore_errors=True)
        os.rename(partial, final_dir)
