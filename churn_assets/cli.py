"""`churn`: the project's command line.

    churn simulate --root DIR --instances N --weeks W --as-of YYYY-MM-DD --seed S
    churn demo [--root DIR] [--as-of YYYY-MM-DD] [--fresh]
    churn spark-archive          write the Spark driver's class archive (faster JVM start; make install runs it)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from datetime import date


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="churn", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    simulate = commands.add_parser("simulate", help="write the contract's raw tables from the behavioural simulator")
    simulate.add_argument("--root", default=os.environ.get("CHURN_DATA_ROOT", "data"))
    simulate.add_argument("--instances", type=int, default=57_700, help="labelled evaluators (default: the talk's 57,700)")
    simulate.add_argument("--weeks", type=int, default=13, help="labelled cohort weeks (default 13, ~90 days)")
    simulate.add_argument("--as-of", type=date.fromisoformat, default=None, help="data as of this day (default today, UTC)")
    simulate.add_argument("--seed", type=int, default=27)

    demo = commands.add_parser("demo", help="simulate if needed, materialize the whole graph, print a summary")
    demo.add_argument("--root", default=os.environ.get("CHURN_DATA_ROOT", "data"))
    demo.add_argument("--as-of", type=date.fromisoformat, default=None)
    demo.add_argument("--instances", type=int, default=57_700)
    demo.add_argument("--fresh", action="store_true", help="simulate again even if raw data exists")

    commands.add_parser("spark-archive", help="write the class-data-sharing archive the Spark driver JVM starts from")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.command == "simulate":
        from churn_assets.simulator import simulate

        summary = simulate(args.root, instances=args.instances, weeks=args.weeks, as_of=args.as_of, seed=args.seed)
        print(summary)
        return 0
    if args.command == "spark-archive":
        import time

        from resources.spark import build_class_archive

        started = time.perf_counter()
        try:
            archive = build_class_archive()
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            print(f"churn spark-archive: {exc}", file=sys.stderr)
            return 1
        print(f"Spark class archive {archive} ({archive.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - started:.0f}s")
        return 0
    os.environ["CHURN_DATA_ROOT"] = args.root
    from churn_assets.demo import run_demo

    return run_demo(root=args.root, as_of=args.as_of, instances=args.instances, fresh=args.fresh)


if __name__ == "__main__":
    sys.exit(main())
