"""The `r1lab` command: tools around runs (compare, status, puzzles); training is `python launch.py`.

Each subcommand is a parser built in `main` and a function taking the parsed arguments and returning
the exit code; its logic lives in its own module (r1lab/compare.py on r1lab/runs.py, r1lab/status.py,
puzzles: r1lab/tasks/countdown.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _compare(args: argparse.Namespace) -> int:
    from r1lab import compare, runs

    try:
        table, curves = runs.load(args.source, args.project)
    except ValueError as error:
        print(f"r1lab compare: {error}", file=sys.stderr)
        return 2
    if table.empty:
        print(f"r1lab compare: no runs found in {args.source} (a run dir holds summary.json or metrics.jsonl)",
              file=sys.stderr)
        return 1
    is_dir = args.project is None and Path(args.source).is_dir()
    title = str(args.source) if is_dir else "W&B {}, group {}".format(*runs.wandb_group(args.source, args.project))
    written = compare.compare(table, curves, args.out, title)
    print(written[0].read_text(), end="")
    print("wrote " + ", ".join(str(path) for path in written))
    return 0


def _puzzles(args: argparse.Namespace) -> int:
    from r1lab.config_tree import compose
    from r1lab.tasks import countdown

    generator_keys = ("min_count", "max_count", "min_number", "max_number", "min_target", "max_target", "target")
    # A bare generator field (max_number=15) is short for task.generator.max_number=15.
    overrides = [f"task.generator.{o}" if o.split("=", 1)[0] in generator_keys else o for o in args.overrides]
    cfg = compose(overrides)
    if cfg.task.name != "countdown":
        print(f"r1lab puzzles: writes countdown puzzles; the config's task is {cfg.task.name!r}", file=sys.stderr)
        return 2
    problems = countdown.config_problems({"generator": cfg.task.generator})
    if problems or args.n < 1:
        print("r1lab puzzles: " + "; ".join(problems or [f"--n must be at least 1, got {args.n}"]), file=sys.stderr)
        return 2
    rows = countdown.generate_tasks(cfg.task.generator, args.n, args.seed)
    countdown.write_puzzle_file(args.out, rows)
    print(f"wrote {len(rows)} puzzles to {args.out} (seed {args.seed}, generator {dict(cfg.task.generator)})")
    return 0


def _status(args: argparse.Namespace) -> int:
    from r1lab import status

    if not args.sweep_dir.is_dir():
        print(f"r1lab status: {args.sweep_dir} is not a directory", file=sys.stderr)
        return 2
    return status.show(args.sweep_dir, watch=args.watch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="r1lab", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    compare = commands.add_parser(
        "compare",
        help="table and plots of the runs of a sweep dir or a W&B group",
        description="One row per configuration (runs differing only in seed aggregated: n, mean ± std, 95%% CI "
        "of final and best held-out accuracy, a Welch t-test verdict against the best) in DIR/table.md and "
        "DIR/table.csv, one row per run in DIR/runs.md and DIR/runs.csv, and PNG plots of accuracy, reward "
        "and completion length against train/global_step (mean over seeds, ±1 std band).",
    )
    compare.add_argument("source", metavar="SWEEP_DIR_OR_WANDB_GROUP",
                         help="a directory holding run dirs (searched recursively), or ENTITY/PROJECT/GROUP on W&B")
    compare.add_argument("--out", metavar="DIR", type=Path, required=True, help="where the table and plots go")
    compare.add_argument("--project", metavar="ENTITY/PROJECT",
                         help="read SOURCE as a W&B group name in this project")
    compare.set_defaults(run=_compare)

    puzzles = commands.add_parser(
        "puzzles",
        help="write a held-out file of countdown puzzles for task.test_path",
        description="N distinct puzzles from the countdown generator, one JSON object {\"nums\": [...], \"target\": N} "
        "per line, for `python launch.py task.test_path=FILE`. The generator is the one `python launch.py "
        "OVERRIDES` would use; a bare generator field (max_number=15, target=uniform_reachable) is short for "
        "task.generator.FIELD=VALUE.",
    )
    puzzles.add_argument("--out", metavar="FILE", type=Path, required=True, help="the JSONL file to write")
    puzzles.add_argument("--n", type=int, required=True, help="how many distinct puzzles")
    puzzles.add_argument("--seed", type=int, required=True, help="generator seed (use another than the runs')")
    puzzles.add_argument("overrides", nargs="*", metavar="OVERRIDE",
                         help="config overrides: experiment=NAME, task.generator.FIELD=VALUE or FIELD=VALUE")
    puzzles.set_defaults(run=_puzzles)

    status = commands.add_parser(
        "status",
        help="one row per job of a sweep: state, step, latest reward and held-out accuracy",
        description="One row per job of SWEEP_DIR (local or SLURM): state (queued, running, finished, failed, "
        "preempted, stopped) from the run files and, for SLURM jobs, squeue/sacct; step of total; latest training reward "
        "and held-out accuracy; output dir.",
    )
    status.add_argument("sweep_dir", metavar="SWEEP_DIR", type=Path, help="the sweep's hydra.sweep.dir")
    status.add_argument("--watch", metavar="SECONDS", type=float, nargs="?", const=10.0, default=None,
                        help="redraw every SECONDS (default 10) until every job has ended; Ctrl-C stops")
    status.set_defaults(run=_status)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
