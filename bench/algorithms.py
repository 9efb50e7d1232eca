"""Algorithm cost benchmark: step time and peak memory of every algorithm on the tiny model, as ratios to GRPO.

Run from the repo root: python bench/algorithms.py  (with r1lab installed, `pip install -e .`, or PYTHONPATH=.);
about 4 minutes on 2 CPU cores. Each algorithm trains `python launch.py algo=<a>` (tiny model, default task,
default batch: 16 completions per optimizer step for all five) for STEPS steps in its own process, one thread,
one run at a time. Step time is TRL's `step_time` (generation + scoring + extra models + update) averaged over
the steps after the first; run CPU s is the run's process CPU time (start-up and final eval included, the same for
all), which other jobs on a shared core do not inflate; peak memory is the process's peak RSS (and peak CUDA
memory on a GPU).
"""

from __future__ import annotations

import json
import os
import resource
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path
from machine_info import machine

REPO = Path(__file__).resolve().parent.parent
ALGORITHMS = ("grpo", "ppo", "prime", "rloo", "reinforce_pp")
STEPS = 12
EXTRA_MODELS = {
    "grpo": "policy + frozen reference (beta 0.001)",
    "ppo": "policy + frozen reference + critic (backbone copy + value head) with its own AdamW",
    "prime": "policy + frozen reference + PRM (policy copy) with its own AdamW",
    "rloo": "policy only (kl_coef 0: no reference)",
    "reinforce_pp": "policy + frozen reference",
}


def run_one(algo: str, run_dir: str) -> None:
    """In a child process: train, then print this process's peak memory as JSON on the last line."""
    sys.argv = ["launch.py", "experiment=none", f"algo={algo}", f"hydra.run.dir={run_dir}", "logger=none",
                f"train.max_steps={STEPS}", "eval.every_steps=0", "eval.num_prompts=8", f"train.save_steps={STEPS}"]
    try:
        runpy.run_path(str(REPO / "launch.py"), run_name="__main__")
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # CPU seconds of the whole run (imports, model build, 12 steps, final eval): unlike wall-clock step times,
    # other jobs on the same core do not inflate it.
    peak = {"rss_mb": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime}
    import torch

    if torch.cuda.is_available():
        peak["cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(peak))


def measure(algo: str, root: Path) -> dict:
    run_dir = root / algo
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    out = subprocess.run([sys.executable, __file__, "--one", algo, str(run_dir)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"{algo} failed:\n{out.stderr[-3000:]}")
    peak = json.loads(out.stdout.strip().splitlines()[-1])
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    step_times = [r["train/step_time"] for r in records if "train/step_time" in r][1:]
    return {"step_s": sum(step_times) / len(step_times), **peak}


def main() -> None:
    print(machine())
    print(f"tiny model, default task and batch, {STEPS} steps per algorithm, one thread, runs one after another\n")
    with tempfile.TemporaryDirectory() as tmp:
        results = {algo: measure(algo, Path(tmp)) for algo in ALGORITHMS}
    base = results["grpo"]
    cuda = "cuda_mb" in base
    header = (f"{'algo':12} {'step s':>7} {'x GRPO':>7} {'run CPU s':>9} {'x GRPO':>7} {'peak RSS MB':>12} "
              f"{'x GRPO':>7}")
    print(header + (f" {'peak CUDA MB':>13} {'x GRPO':>7}" if cuda else "") + "  models held")
    for algo, r in results.items():
        line = (f"{algo:12} {r['step_s']:7.3f} {r['step_s'] / base['step_s']:7.2f} {r['cpu_s']:9.1f} "
                f"{r['cpu_s'] / base['cpu_s']:7.2f} {r['rss_mb']:12.0f} {r['rss_mb'] / base['rss_mb']:7.2f}")
        if cuda:
            line += f" {r['cuda_mb']:13.0f} {r['cuda_mb'] / base['cuda_mb']:7.2f}"
        print(f"{line}  {EXTRA_MODELS[algo]}")
    # On CPU the peak RSS is mostly libraries (the tiny model has ~0.1M parameters); on GPUs what the extra models
    # cost is their state: a trained model holds weights + gradients + 2 AdamW moments (4 copies), a frozen one 1.
    state = {"grpo": 4 + 1, "ppo": 4 + 1 + 4, "prime": 4 + 1 + 4, "rloo": 4, "reinforce_pp": 4 + 1}
    print("\nmodel state in policy-sized copies (trained 4, frozen 1; GRPO with beta 0.001 holds a reference): "
          + ", ".join(f"{algo} {copies} ({copies / state['grpo']:.1f}x GRPO)" for algo, copies in state.items()))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        run_one(sys.argv[2], sys.argv[3])
    else:
        main()
