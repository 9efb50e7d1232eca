"""What r1lab costs on top of TRL: the same GRPO run through `launch.py` and through a plain GRPOTrainer script.

Run from the repo root: python bench/overhead.py [--rounds 4] [--steps 30]  (about 3 minutes on 2 CPU cores).

Both sides train the tiny random-init Qwen2 of `model=tiny` (r1lab.tiny_model.ensure_tiny_model) on the same
Countdown rows, with the same reward functions and the same GRPOConfig values (batch 16, 8 generations, 48
completion tokens, beta 0.001, so a reference model too), no evaluation during training, no checkpoint
during training, logging every step, no tracker (report_to none), one thread, CPU.

- r1lab side: `python launch.py logger=none eval.every_steps=0 ...`, run with runpy exactly as a user runs it,
  with every per-step extra r1lab adds switched on: the aha metrics of each batch, Mini-R1's completion sample
  files (`samples.per_step=4`), `metrics.jsonl`, and the StopOnSignal callback with its signal handlers
  installed as on SLURM.
- plain side: a GRPOTrainer built by hand from TRL's own classes. r1lab is used only to build its inputs
  before training starts (the model path, the data rows, the reward functions, and the GRPOConfig keyword
  arguments from r1lab.trl_args, so that both sides train with identical values); no r1lab code runs inside
  its training loop.

The two sides run as two subprocesses (so neither inherits the other's warm caches or allocator state) that
take turns one optimizer step at a time: a TrainerCallback added to both (by wrapping
`transformers.Trainer.__init__` in each child) blocks at every `on_step_begin` until this script passes it
the turn, and reports the time from getting the turn to its next `on_step_begin`: one full step (generation,
rewards, loss, backward, optimizer, callbacks, logging) run while the other side waits. So the sides alternate
step by step (r1lab step k, plain step k, r1lab step k+1, ...), each step runs alone, and a burst of load
from other processes, which lasts seconds, hits both sides alike. Process start-up is not in these times
(bench/cli.py measures it). The first WARMUP steps of each run are dropped; each round is a fresh pair of
processes, and the side that goes first alternates between rounds. Steps k of the two runs are a pair: the
same work (same seed, same completions), adjacent in time. The last line is the median over all pairs of the
r1lab step's time over the plain step's: `overhead ratio: X.XX`; the goal is <= 1.05. The ratio of the two
sides' median step times is printed above it; when the load changes between rounds it moves more than the
paired figure, since each side's median then mixes rounds run under different loads.
"""

from __future__ import annotations

import argparse
import os
import runpy
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from machine_info import machine

REPO = Path(__file__).resolve().parent.parent
WARMUP = 3
# Identical for both sides: no eval or checkpoint inside the measured steps, logging every step, no tracker.
COMMON = ["experiment=none", "logger=none", "eval.every_steps=0", "eval.num_prompts=8", "eval.pass_k=0",
          "train.logging_steps=1", "train.save_steps=100000", "train.resume=never"]


def install_lock_step(token_fd: int, report_fd: int) -> None:
    """In a child: every Trainer built from now on waits for the turn at each step and reports the step's time."""
    from transformers import Trainer, TrainerCallback

    class LockStep(TrainerCallback):
        def __init__(self):
            self.started: float | None = None

        def on_step_begin(self, args, state, control, **kwargs):
            elapsed = None if self.started is None else time.perf_counter() - self.started
            os.write(report_fd, (f"step {state.global_step} {elapsed}\n" if elapsed else "ready\n").encode())
            os.read(token_fd, 1)
            self.started = time.perf_counter()

        def on_train_end(self, args, state, control, **kwargs):
            os.write(report_fd, b"end\n")

    original = Trainer.__init__

    def init_with_lock_step(self, *args, callbacks=None, **kwargs):
        original(self, *args, callbacks=[*(callbacks or []), LockStep()], **kwargs)

    Trainer.__init__ = init_with_lock_step


def run_r1lab(steps: int, run_dir: Path) -> None:
    """`python launch.py ...` in this process, as a user runs it, with StopOnSignal's handlers installed."""
    from r1lab.launching import preemption

    preemption.install()
    sys.argv = ["launch.py", *COMMON, f"train.max_steps={steps}", f"hydra.run.dir={run_dir}"]
    try:
        runpy.run_path(str(REPO / "launch.py"), run_name="__main__")
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise


def run_plain(steps: int, run_dir: Path) -> None:
    """A plain TRL GRPOTrainer with the inputs and GRPOConfig values r1lab's run uses; nothing of r1lab in the loop."""
    import torch
    from hydra import compose, initialize_config_dir
    from transformers import set_seed
    from trl import GRPOConfig, GRPOTrainer

    from r1lab.algos.grpo import config_fields
    from r1lab.data import prepare_splits
    from r1lab.tasks import resolve_reward
    from r1lab.tiny_model import ensure_tiny_model
    from r1lab.tokenizer_loading import load_tokenizer
    from r1lab.trl_args import trainer_kwargs

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*COMMON, f"train.max_steps={steps}"])
    set_seed(int(cfg.seed))
    model_path = str(ensure_tiny_model(cfg.model.tiny, cfg.cache_dir))
    tokenizer = load_tokenizer(model_path, padding_side="left")
    train_split, _ = prepare_splits(cfg, tokenizer)
    rewards = dict(cfg.task.rewards)
    kwargs = trainer_kwargs(cfg, output_dir=str(run_dir), run_name="plain", report_to=[],
                            reward_weights=[float(w) for w in rewards.values()], algo_fields=config_fields(cfg.algo))
    args = GRPOConfig(**kwargs, use_cpu=not torch.cuda.is_available())
    trainer = GRPOTrainer(model=model_path, reward_funcs=[resolve_reward(cfg.task.name, n) for n in rewards],
                          args=args, train_dataset=train_split, processing_class=tokenizer)
    trainer.train()


class Child:
    """One side's training subprocess, driven a step at a time through two pipes."""

    def __init__(self, side: str, steps: int, run_dir: Path):
        self.side, self.run_dir = side, run_dir
        token_read, self.token_write = os.pipe()
        report_read, report_write = os.pipe()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO)}
        self.log = (run_dir.parent / f"{run_dir.name}.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--child", side, str(steps), str(run_dir), str(token_read), str(report_write)],
            cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT, pass_fds=(token_read, report_write))
        os.close(token_read)
        os.close(report_write)
        self.reports = os.fdopen(report_read)
        self.times: dict[int, float] = {}
        self.running = True

    def report(self) -> str:
        line = self.reports.readline().strip()
        if not line:
            self.running = False
            raise RuntimeError(f"{self.side} run stopped early; see {self.log.name}:\n"
                               + Path(self.log.name).read_text()[-3000:])
        if line == "end":
            self.running = False
        elif line.startswith("step"):
            _, step, seconds = line.split()
            self.times[int(step)] = float(seconds)
        return line

    def take_turn(self) -> None:
        """Run one step of this side (the others wait)."""
        os.write(self.token_write, b"x")
        self.report()

    def finish(self) -> None:
        if self.process.wait(timeout=900) != 0:
            raise RuntimeError(f"{self.side} run failed; see {self.log.name}")
        self.log.close()


def run_round(steps: int, root: Path, index: int, order: tuple[str, str]) -> dict[str, list[float]]:
    """One r1lab run and one plain run, taking turns step by step; their step times after warm-up."""
    children = [Child(side, steps, root / f"{side}-{index}") for side in order]
    for child in children:  # both loaded and waiting at step 0 before any step is timed
        assert child.report() == "ready", f"{child.side}: unexpected first report"
    while any(child.running for child in children):
        for child in children:
            if child.running:
                child.take_turn()
    for child in children:
        child.finish()
    r1lab = next(c for c in children if c.side == "r1lab")
    if not (r1lab.run_dir / "completion_samples" / "completion_samples.txt").exists():
        raise RuntimeError("the r1lab run wrote no completion samples: the extras were not on")
    return {c.side: [t for step, t in sorted(c.times.items()) if step >= WARMUP] for c in children}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="fresh pairs of runs")
    parser.add_argument("--steps", type=int, default=30, help="GRPO steps per run (>= 20 measured after warm-up)")
    opts = parser.parse_args()
    print(machine())
    print(f"tiny model, batch 16 (2 prompts x 8 generations), 48 completion tokens, beta 0.001, one thread; "
          f"{opts.rounds} alternated rounds of {opts.steps} steps per side, first {WARMUP} steps of each run dropped\n")
    pooled: dict[str, list[float]] = {"r1lab": [], "plain": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(opts.rounds):
            order = ("r1lab", "plain") if round_ % 2 == 0 else ("plain", "r1lab")
            times = run_round(opts.steps, Path(tmp), round_, order)
            medians = {side: statistics.median(t) for side, t in times.items()}
            for side in pooled:
                pooled[side].extend(times[side])
            ratios = [a / b for a, b in zip(times["r1lab"], times["plain"])]
            print(f"round {round_} ({order[0]} first): r1lab {medians['r1lab'] * 1000:6.1f} ms/step, "
                  f"plain {medians['plain'] * 1000:6.1f} ms/step, median paired ratio {statistics.median(ratios):.3f} "
                  f"(load avg {os.getloadavg()[0]:.1f})", flush=True)
    r1lab, plain = statistics.median(pooled["r1lab"]), statistics.median(pooled["plain"])
    paired = statistics.median(a / b for a, b in zip(pooled["r1lab"], pooled["plain"]))
    print(f"\nsteps measured: r1lab {len(pooled['r1lab'])}, plain {len(pooled['plain'])}")
    print(f"median step: r1lab {r1lab * 1000:.1f} ms, plain TRL {plain * 1000:.1f} ms (ratio {r1lab / plain:.3f})")
    print(f"overhead ratio: {paired:.2f}")


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--child":
        _, _, side, steps, run_dir, token_fd, report_fd = sys.argv
        install_lock_step(int(token_fd), int(report_fd))
        (run_r1lab if side == "r1lab" else run_plain)(int(steps), Path(run_dir))
    else:
        main()
