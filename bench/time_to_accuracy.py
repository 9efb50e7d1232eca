"""Time to accuracy: the laptop recipe against Mini-R1's hyperparameter choices on the same tiny base, as a ratio.

Run from the repo root: python bench/time_to_accuracy.py --out DIR  (two full `experiment=laptop_aha` trainings,
one after the other, one thread each; roughly 20 minutes in all on a 2-core machine, an estimate, not a timed run).
`--smoke` runs the same path in seconds on a test-sized base (a test of the script, not a measurement).

Both arms are `python launch.py experiment=laptop_aha logger=none` in their own run dir under DIR, on the same cached
base (`model=tiny-1m`, built once before either arm starts), the same held-out file (`--test-path`, else
`r1lab puzzles --n 100 --seed 2002 experiment=laptop_aha` into DIR), the same `train.max_steps` (60 unless
`--max-steps`) and `eval.every_steps`:

- laptop: the experiment as configured.
- mini-r1: the same plus Mini-R1's choices (its blog post, conf/experiment/mini_r1_countdown_3b.yaml): two 0/1
  rewards summed (`task.rewards.format_reward=1.0 task.rewards.equation_reward=1.0`), 8 completions per prompt
  (`algo.num_generations=8`, with `train.per_device_batch_size` scaled so both arms see as many prompts per step),
  `algo.beta=0.001`, and the learning rate scaled to the tiny model the same way Mini-R1 scaled TinyZero's: the
  laptop lr x (Mini-R1's 5e-7 / TinyZero's 1e-6), i.e. half the laptop lr. Everything else (loss type,
  temperature, completion length) stays the laptop recipe's. The laptop values are read from the composed config.

Time is training time: the sum of TRL's `train/step_time` (wall clock of generation, rewards, loss and backward;
the optimizer step, the same for both arms, is outside it) over the steps up to the first held-out evaluation
whose greedy `eval/accuracy` reaches the threshold. metrics.jsonl holds no wall-clock stamp, and leaving out
start-up and the evaluations themselves (which only measure) keeps the comparison to what each recipe costs to
train. The threshold is the best target-blind
baseline of the held-out puzzles (summary.json `baselines.best_target_blind`) + `--margin`, or `--threshold`.
The ratio is mini-r1 / laptop: above 1, Mini-R1's choices take longer. When only one arm reaches the threshold,
the ratio is a bound ("> x": the other arm's whole training time stands in for its unknown time).

The table goes to stdout and, as JSON, to DIR/time_to_accuracy.json. Running again with the same DIR reuses the
finished runs (r1lab's resume: a larger --max-steps extends them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]

from machine_info import machine  # noqa: E402  (bench/ and the repo, put on the path above)
from r1lab.config_tree import compose  # noqa: E402
from r1lab.tracking import read_metrics, step0_eval  # noqa: E402

EXPERIMENT = "laptop_aha"
# Mini-R1's choices (its blog and grpo-qwen-2.5-3b-deepseek-r1-countdown.yaml) and TinyZero's lr, which Mini-R1 halved.
MINI_R1_REWARDS = {"format_reward": 1.0, "equation_reward": 1.0}
MINI_R1_NUM_GENERATIONS = 8
MINI_R1_BETA = 0.001
MINI_R1_LR, TINYZERO_LR = 5e-7, 1e-6
HELD_OUT_PUZZLES, HELD_OUT_SEED = 100, 2002
# --smoke: tests/conftest.py's TEST_BASE (a base that builds in seconds), short completions, 2 steps.
SMOKE_OVERRIDES = ("model=tiny-0.3m", "model.tiny.hidden_size=32", "model.tiny.intermediate_size=64",
                   "model.tiny.num_hidden_layers=2", "model.pretrain.max_steps=30", "model.pretrain.batch_size=4",
                   "model.pretrain.block_size=128", "model.pretrain.check_first_steps=6",
                   "train.max_completion_length=32")
SMOKE_STEPS, SMOKE_EVAL_EVERY, SMOKE_PUZZLES = 2, 1, 4
# The miniature ablations' length, not the default run's 20: Mini-R1's arm first crossed the threshold at step 30.
DEFAULT_STEPS = 60


def mini_r1_overrides(cfg) -> list[str]:
    """Mini-R1's choices as overrides on top of the laptop config `cfg`, keeping its prompts per optimizer step."""
    generations = int(cfg.algo.num_generations)
    batch = int(cfg.train.per_device_batch_size)
    # Prompts per optimizer step = per_device_batch_size x gradient_accumulation_steps / num_generations; the
    # accumulation is left as it is, so the batch scales with the group size.
    scaled, rest = divmod(batch * MINI_R1_NUM_GENERATIONS, generations)
    if batch % generations or rest:
        raise SystemExit(f"train.per_device_batch_size={batch} is not a whole number of groups of {generations} "
                         f"that rescale to groups of {MINI_R1_NUM_GENERATIONS}")
    lr = float(cfg.algo.lr) * MINI_R1_LR / TINYZERO_LR
    return [*(f"task.rewards.{name}={weight}" for name, weight in MINI_R1_REWARDS.items()),
            f"algo.num_generations={MINI_R1_NUM_GENERATIONS}", f"train.per_device_batch_size={scaled}",
            f"algo.beta={MINI_R1_BETA}", f"algo.lr={lr:g}"]


def run_child(argv: list[str], log: Path) -> None:
    """Run an r1lab command from the repo root, one thread, its output to `log`; stop with its tail on failure."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with log.open("w") as out:
        code = subprocess.run([sys.executable, *argv], cwd=REPO, env=env, stdout=out,
                              stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise SystemExit(f"`{' '.join(argv)}` failed (exit {code}); last lines of {log}:\n"
                         + "\n".join(log.read_text().splitlines()[-30:]))


def time_to_threshold(records: list[dict], threshold: float) -> dict:
    """From a run's metrics.jsonl records: step-0 and final greedy held-out accuracy, the first evaluated step whose
    accuracy reaches `threshold` (None if none does) and the training seconds up to it and in all."""
    evals = sorted((r for r in records if "eval/accuracy" in r), key=lambda r: r["train/global_step"])
    reached = next((r["train/global_step"] for r in evals if r["eval/accuracy"] >= threshold), None)
    return {
        "step0_accuracy": (step0_eval(records) or {}).get("eval/accuracy"),
        "final_accuracy": evals[-1]["eval/accuracy"] if evals else None,
        "final_step": max((r["train/global_step"] for r in records), default=0),
        "threshold_step": reached,
        "train_s_to_threshold": None if reached is None else train_seconds(records, reached),
        "train_s_total": train_seconds(records, None),
    }


def train_seconds(records: list[dict], until_step: int | None) -> float:
    """Sum of TRL's `train/step_time` over the steps up to `until_step` (all when None).

    With logging_steps > 1 a record holds the mean over the steps since the previous one, so it counts that many
    times (the arms are run with logging_steps=1, where this is a plain sum)."""
    steps = sorted((r["train/global_step"], r["train/step_time"]) for r in records if "train/step_time" in r)
    total, previous = 0.0, 0
    for step, seconds in steps:
        if until_step is not None and step > until_step:
            break
        total += seconds * (step - previous)
        previous = step
    return total


def ratio(laptop: dict, mini_r1: dict) -> tuple[str | None, float | None]:
    """mini-r1 / laptop training seconds to the threshold, as (relation, value): "=" when both arms reach it, ">" or
    "<" a bound when one does (the other's whole training time in place of its time), (None, None) otherwise."""
    mine, theirs = mini_r1["train_s_to_threshold"], laptop["train_s_to_threshold"]
    if mine is not None and theirs is not None:
        return ("=", mine / theirs) if theirs > 0 else (None, None)
    if theirs is not None and theirs > 0:
        return ">", mini_r1["train_s_total"] / theirs
    if mine is not None and laptop["train_s_total"] > 0:
        return "<", mine / laptop["train_s_total"]
    return None, None


def format_table(arms: dict[str, dict], relation: str | None, value: float | None) -> str:
    """The printed table: one row per arm, then the ratio."""
    def number(x, digits):
        return "-" if x is None else f"{x:.{digits}f}"

    lines = [f"{'arm':8} {'step-0 acc':>10} {'final acc':>9} {'steps':>5} {'first step >= thr':>17} "
             f"{'train s to thr':>14} {'train s total':>13}"]
    for name, arm in arms.items():
        reached = arm["threshold_step"] is not None
        lines.append(f"{name:8} {number(arm['step0_accuracy'], 3):>10} {number(arm['final_accuracy'], 3):>9} "
                     f"{arm['final_step']:>5} {arm['threshold_step'] if reached else 'not reached':>17} "
                     f"{number(arm['train_s_to_threshold'], 1) if reached else 'not reached':>14} "
                     f"{arm['train_s_total']:>13.1f}")
    shown = "n/a (neither arm reached the threshold, or the laptop arm did at step 0)" if relation is None else (
        f"{value:.2f}" if relation == "=" else f"{relation} {value:.2f} (a bound: one arm never reached it)")
    lines.append(f"time to threshold, mini-r1 / laptop: {shown}")
    return "\n".join(lines)


def threshold_for(opts: argparse.Namespace, run_dir: Path) -> tuple[float, str]:
    """--threshold, else the run's best target-blind baseline + --margin; with a line saying which."""
    if opts.threshold is not None:
        return opts.threshold, f"threshold {opts.threshold:.3f} (--threshold)"
    summary = json.loads((run_dir / "summary.json").read_text())
    baseline = summary["baselines"]["best_target_blind"]
    return baseline + opts.margin, (f"threshold {baseline + opts.margin:.3f} = best target-blind baseline "
                                    f"{baseline:.3f} (summary.json baselines.best_target_blind) + {opts.margin:.2f}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for both run dirs, logs and the JSON table")
    parser.add_argument("--test-path", type=Path, help="held-out puzzle file (default: r1lab puzzles into --out)")
    parser.add_argument("--max-steps", type=int,
                        help=f"train.max_steps of both arms (default {DEFAULT_STEPS}; --smoke: {SMOKE_STEPS})")
    parser.add_argument("--eval-every-steps", type=int, help="eval.every_steps of both arms (default 10)")
    parser.add_argument("--threshold", type=float, help="absolute held-out accuracy to reach")
    parser.add_argument("--margin", type=float, default=0.10,
                        help="without --threshold: reach the best target-blind baseline + this")
    parser.add_argument("--cache-dir", help="cache_dir of both arms (where the tiny base is built and cached)")
    parser.add_argument("--smoke", action="store_true",
                        help="a test-sized base, 4 puzzles, 2 steps evaluated after each: tests the script")
    parser.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="more Hydra overrides for both arms")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    out = opts.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    common = [f"experiment={EXPERIMENT}", *(SMOKE_OVERRIDES if opts.smoke else ()), *opts.overrides]
    if opts.cache_dir:
        common.append(f"cache_dir={opts.cache_dir}")
    cfg = compose(common)
    max_steps = opts.max_steps or (SMOKE_STEPS if opts.smoke else DEFAULT_STEPS)
    every = opts.eval_every_steps or (SMOKE_EVAL_EVERY if opts.smoke else 10)
    test_path = opts.test_path.resolve() if opts.test_path else out / "held_out.jsonl"
    if opts.test_path is None:
        puzzles = SMOKE_PUZZLES if opts.smoke else HELD_OUT_PUZZLES
        run_child(["-m", "r1lab.cli", "puzzles", "--out", str(test_path), "--n", str(puzzles),
                   "--seed", str(HELD_OUT_SEED), *common], out / "puzzles.log")
    print(machine())
    # Built (or found) before either arm, so that neither arm's run includes the base's pretraining.
    run_child(["-m", "r1lab.tiny_base", *common], out / "base.log")
    print(f"base: {(out / 'base.log').read_text().splitlines()[-1]}")
    # logging_steps=1: one train/step_time per step, so the time to any evaluated step is exact.
    shared = [*common, "logger=none", f"task.test_path={test_path}", f"train.max_steps={max_steps}",
              f"eval.every_steps={every}", "train.logging_steps=1"]
    arm_overrides = {"laptop": [], "mini-r1": mini_r1_overrides(cfg)}
    print(f"held-out {test_path}; {max_steps} steps, evaluated every {every}, one thread, one arm after the other")
    for name, extra in arm_overrides.items():
        print(f"{name}: {' '.join(extra) or 'the experiment as configured'} (log: {out / f'{name}.log'})", flush=True)
        run_child(["launch.py", *shared, *extra, f"hydra.run.dir={out / name}"], out / f"{name}.log")
    threshold, source = threshold_for(opts, out / "laptop")
    arms = {name: {"run_dir": str(out / name), "overrides": extra,
                   **time_to_threshold(read_metrics(out / name), threshold)} for name, extra in arm_overrides.items()}
    relation, value = ratio(arms["laptop"], arms["mini-r1"])
    print(source)
    print(format_table(arms, relation, value))
    table = {"machine": machine(), "experiment": EXPERIMENT, "common_overrides": shared, "threshold": threshold,
             "threshold_source": source, "arms": arms, "ratio": value, "ratio_relation": relation}
    (out / "time_to_accuracy.json").write_text(json.dumps(table, indent=2) + "\n")
    print(f"wrote {out / 'time_to_accuracy.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
