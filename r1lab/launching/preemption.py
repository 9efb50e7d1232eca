"""Preemption, time limits, kill and Ctrl-C: finish the step, save a checkpoint, then let submitit requeue.

submitit's own handler runs `checkpoint()` and requeues from inside the signal handler, i.e. in
the middle of a training step, where nothing consistent can be saved. r1lab defers it: the
signal only sets a flag; at the end of the current step every rank agrees to stop (one all-reduce
when the job has several ranks), the Trainer saves a checkpoint, and only then is submitit's
handler called, which requeues the job. The requeued job re-runs the same frozen config in the
same output dir and resumes from that checkpoint (train.resume=auto) into the same W&B run.
A local run takes the same path on SIGTERM (`terminated`) and on Ctrl-C (`interrupted`; a second
Ctrl-C stops at once), and exits with 128 + the signal's number once its summary is written.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable

from transformers import TrainerCallback

# The signal submitit asks SLURM to send before the time limit (sbatch --signal=USR2@delay);
# submitit's preemption test sends SIGTERM then USR2.
REQUEUE_SIGNAL = signal.SIGUSR2
STOP_SIGNALS = (signal.SIGUSR2, signal.SIGTERM, signal.SIGINT)
# The run's status in summary.json after each way of stopping.
STOPPED = ("preempted", "terminated", "interrupted")

_received: list[int] = []
_submitit_handlers: dict[int, Callable | int | None] = {}
_on_terminate: list[Callable[[], None]] = []


def install() -> None:
    """Take over the stop signals in this (main-thread) job process, remembering submitit's handlers."""
    if threading.current_thread() is not threading.main_thread():
        return  # Python takes signals in the main thread only
    for sig in STOP_SIGNALS:
        _submitit_handlers[sig] = signal.getsignal(sig)
        signal.signal(sig, _record)


def _record(signum, frame) -> None:
    if signum == signal.SIGINT and signal.SIGINT in _received:
        raise KeyboardInterrupt  # the second Ctrl-C: stop now, unsaved
    _received.append(signum)
    if signum == signal.SIGTERM:
        for hook in _on_terminate:
            hook()


def on_terminate(hook: Callable[[], None]) -> None:
    """Run `hook` (quick, signal-safe) as soon as SIGTERM arrives.

    SLURM sends SIGTERM to every process of the job (preemption, `scontrol requeue`), helpers such as
    W&B's service process included, so what depends on them must let go before the step ends.
    """
    _on_terminate.append(hook)


def installed() -> bool:
    return bool(_submitit_handlers)


def stop_requested() -> bool:
    return bool(_received)


def _requeues() -> bool:
    """Whether submitit takes over after the save (SLURM's warning signal, or its SIGTERM handler)."""
    return any(sig in _received and callable(_submitit_handlers.get(sig)) for sig in (REQUEUE_SIGNAL, signal.SIGTERM))


def stop_status() -> str:
    """summary.json's status of a run stopped by a signal: preempted (requeued), terminated or interrupted."""
    if _requeues() or REQUEUE_SIGNAL in _received:
        return "preempted"
    return "interrupted" if signal.SIGINT in _received else "terminated"


def hand_over() -> None:
    """After the checkpoint is saved: requeue through submitit, or exit so SLURM can requeue.

    Rank 0 never returns from here: submitit requeues and exits (SIGUSR2), or the process exits
    without a result so the launcher does not mistake the stopped run for a finished one.
    """
    handler = _submitit_handlers.get(REQUEUE_SIGNAL)
    if REQUEUE_SIGNAL in _received and callable(handler):
        handler(REQUEUE_SIGNAL, None)  # submitit: checkpoint() + scontrol requeue + sys.exit on rank 0
    if stop_status() == "preempted":
        sys.exit(-1)
    sys.exit(128 + int(_received[-1]))


class StopOnSignal(TrainerCallback):
    """At the end of a step after a stop signal: save a checkpoint and stop training, on every rank together."""

    def on_step_end(self, args, state, control, **kwargs):
        if not installed():
            return
        stop = stop_requested()
        if args.world_size > 1:
            import torch
            import torch.distributed as dist

            flag = torch.tensor([1.0 if stop else 0.0], device=args.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = bool(flag.item())
        if stop:
            control.should_save = True
            control.should_training_stop = True
