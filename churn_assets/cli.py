"""`churn`: the project's command line.

    churn simulate --root DIR --instances N --weeks W --as-of YYYY-MM-DD --seed S
    churn demo [--root DIR] [--as-of YYYY-MM-DD] [--fresh]
"""

from __future__ import annotations

import argparse
import os
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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.command == "simulate":
        from churn_assets.simulator import simulate

        summary = simulate(args.root, instances=args.instances, weeks=args.weeks, as_of=args.as_of, seed=args.seed)
        print(summary)
        return 0
    os.environ["CHURN_DATA_ROOT"] = args.root
    from churn_assets.demo import run_demo

    return run_demo(root=args.root, as_of=args.as_of, instances=args.instances, fresh=args.fresh)


if __name__ == "__main__":
    sys.exit(main())
