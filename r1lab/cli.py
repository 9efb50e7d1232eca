"""The `r1lab` command: tools around runs (`r1lab compare ...`); training itself is `python launch.py`.

Each subcommand is a parser built in `main` and a function taking the parsed arguments and returning
the exit code; its logic lives in its own module (compare: r1lab/compare.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _compare(args: argparse.Namespace) -> int:
    from r1lab import compare

    source = Path(args.source)
    if source.is_dir() and args.project is None:
        runs = compare.read_sweep_dir(source)
        title = str(source)
    else:
        if args.project is not None:
            project, group = args.project, args.source
        else:
            parts = args.source.split("/", 2)
            if len(parts) != 3 or not all(parts):
                print(f"r1lab compare: {args.source!r} is neither a directory nor ENTITY/PROJECT/GROUP "
                      "(or give the project with --project ENTITY/PROJECT)", file=sys.stderr)
                return 2
            project, group = "/".join(parts[:2]), parts[2]
        runs = compare.read_wandb_group(project, group)
        title = f"W&B {project}, group {group}"
    if not runs:
        print(f"r1lab compare: no runs found in {args.source} (a run dir holds summary.json or metrics.jsonl)",
              file=sys.stderr)
        return 1
    written = compare.compare(runs, args.out, title)
    print(written[0].read_text(), end="")
    print("wrote " + ", ".join(str(path) for path in written))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="r1lab", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    compare = commands.add_parser(
        "compare",
        help="table and plots of the runs of a sweep dir or a W&B group",
        description="One row per run (axes, status, final/best held-out accuracy, steps to 25%% and 50%%, "
        "final format rate and completion length) in DIR/table.md and DIR/table.csv, and PNG plots of "
        "accuracy, reward and completion length against train/global_step.",
    )
    compare.add_argument("source", metavar="SWEEP_DIR_OR_WANDB_GROUP",
                         help="a directory holding run dirs (searched recursively), or ENTITY/PROJECT/GROUP on W&B")
    compare.add_argument("--out", metavar="DIR", type=Path, required=True, help="where the table and plots go")
    compare.add_argument("--project", metavar="ENTITY/PROJECT",
                         help="read SOURCE as a W&B group name in this project")
    compare.set_defaults(run=_compare)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
