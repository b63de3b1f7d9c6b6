"""The benchmark suite of issue 7 (a script, not a test): `make bench` or

    .venv/bin/python bench/run.py [--repeats 3] [--scales 1,4] [--quick] [--out bench/results.json]

Prints a table (target, measured median, pass/fail) and writes every raw sample, the machine, the
date and the git commit to --out. What each figure means: BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    BENCH, REPO, TALK_INSTANCES, git_state, loadavg, machine, median, now_iso, python, run_measured,
    worker_env, write_json_atomic,
)

QUICK_INSTANCES = 3_000  # --quick: the "1x" size of the smoke run
GIB = 1024.0


def _args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None, help="runs per measurement (default 3; 1 with --quick)")
    parser.add_argument("--scales", default=None,
                        help="whole-demo sizes, multiples of the talk's 57,700 evaluators (default 1,4; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: 1x = {QUICK_INSTANCES:,} evaluators")
    parser.add_argument("--out", default=str(BENCH / "results.json"))
    parser.add_argument("--as-of", type=date.fromisoformat, default=None, help="data as of this day (default today, UTC)")
    parser.add_argument("--only", default="demo,incremental,stages", help="subset of demo,incremental,stages")
    parser.add_argument("--large-scale-repeats", type=int, default=None,
                        help="runs of the demo at scales above 1x (default: repeats - 1, at least 1)")
    parser.add_argument("--workdir", default=None, help="where data are simulated (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    return parser.parse_args(argv)


def _demo_steps(stdout: str) -> dict[str, float]:
    """The demo's own step timings from its output ("materialized X in Ys", the simulation)."""
    steps = {}
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("materialized ") and " in " in line:
            label, seconds = line[len("materialized "):].rsplit(" in ", 1)
            steps[label] = float(seconds.rstrip("s"))
        elif " usage rows in " in line:
            steps["simulate"] = float(line.rsplit(" in ", 1)[1].rstrip("s"))
        elif line.startswith("Demo finished in "):
            steps["demo_reported_total"] = float(line.split(" in ", 1)[1].rstrip("s."))
    return steps


def _sample(run, **extra) -> dict:
    return {"seconds": run.seconds, "returncode": run.returncode, "peak_tree_rss_mib": run.peak_tree_rss_mib,
            "peak_rss_by_process_mib": run.peak_rss_by_process_mib, "max_single_rss_mib": run.max_single_rss_mib,
            "loadavg_before": run.loadavg_before, "loadavg_after": run.loadavg_after, "log": run.log, **extra}


def _fail(run, what: str) -> None:
    tail = "\n".join(run.stdout.splitlines()[-30:])
    raise SystemExit(f"{what} failed (exit {run.returncode}); log {run.log}:\n{tail}")


def bench_demo(work: Path, scale: float, instances: int, as_of: date, repeats: int) -> dict:
    samples = []
    for i in range(repeats):
        run_dir = work / f"demo_{scale:g}x_{i}"
        shutil.rmtree(run_dir, ignore_errors=True)
        env = worker_env(run_dir / "data", run_dir / "dagster_home")
        argv = [python(), "-m", "churn_assets.cli", "demo", "--root", str(run_dir / "data"),
                "--as-of", as_of.isoformat(), "--instances", str(instances), "--fresh"]
        run = run_measured(argv, env, run_dir / "demo.log")
        if run.returncode:
            _fail(run, f"demo {scale:g}x")
        samples.append(_sample(run, steps=_demo_steps(run.stdout)))
        print(f"  demo {scale:g}x run {i + 1}/{repeats}: {run.seconds:.1f}s, peak {run.peak_tree_rss_mib / GIB:.2f} GiB "
              f"(load {run.loadavg_before[0]:.2f})", flush=True)
        shutil.rmtree(run_dir / "data", ignore_errors=True)
    return {"scale": scale, "instances": instances, "samples": samples,
            "median_seconds": median([s["seconds"] for s in samples]),
            "median_peak_tree_rss_mib": median([s["peak_tree_rss_mib"] for s in samples]),
            "max_peak_tree_rss_mib": max(s["peak_tree_rss_mib"] for s in samples)}


def bench_incremental(work: Path, instances: int, as_of: date, repeats: int) -> dict:
    run_dir = work / "incremental"
    shutil.rmtree(run_dir, ignore_errors=True)
    env = worker_env(run_dir / "data", run_dir / "dagster_home")
    worker = str(BENCH / "worker.py")
    setup = run_measured([python(), worker, "setup-incremental", "--root", str(run_dir / "data"),
                          "--as-of", as_of.isoformat(), "--instances", str(instances)], env, run_dir / "setup.log")
    if setup.returncode:
        _fail(setup, "incremental setup")
    print(f"  incremental setup (untimed: simulate, graph as of {as_of - timedelta(days=7)}): {setup.seconds:.1f}s", flush=True)
    samples = []
    for i in range(repeats):
        out = run_dir / f"refresh_{i}.json"
        run = run_measured([python(), worker, "refresh", "--root", str(run_dir / "data"), "--as-of", as_of.isoformat(),
                            "--out", str(out)], env, run_dir / f"refresh_{i}.log")
        if run.returncode:
            _fail(run, "incremental refresh")
        samples.append(_sample(run, **json.loads(out.read_text())))
        print(f"  incremental refresh run {i + 1}/{repeats}: {run.seconds:.1f}s (load {run.loadavg_before[0]:.2f})", flush=True)
    return {"instances": instances, "setup_seconds": setup.seconds, "samples": samples,
            "median_seconds": median([s["seconds"] for s in samples]),
            "median_peak_tree_rss_mib": median([s["peak_tree_rss_mib"] for s in samples])}


def bench_stages(work: Path, instances: int, as_of: date, repeats: int) -> dict:
    run_dir = work / "stages"
    shutil.rmtree(run_dir, ignore_errors=True)
    out = run_dir / "stages.json"
    run = run_measured([python(), str(BENCH / "worker.py"), "stages", "--root", str(run_dir), "--as-of", as_of.isoformat(),
                        "--instances", str(instances), "--repeats", str(repeats), "--out", str(out)],
                       worker_env(run_dir / "unused"), run_dir / "stages.log")
    if run.returncode:
        _fail(run, "stages")
    result = json.loads(out.read_text())
    result["process"] = _sample(run)
    medians = {}
    for name, rows in result["samples"].items():
        keys = [k for k, v in rows[0].items() if isinstance(v, (int, float))]
        medians[name] = {k: median([r[k] for r in rows]) for k in keys}
    result["medians"] = medians
    return result


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


def _row(name, target, measured, unit, passed=None, n=None) -> dict:
    return {"measurement": name, "target": target, "median": measured, "unit": unit, "passed": passed, "n": n}


def summarise(results: dict, base_scale_label: str) -> list[dict]:
    rows = []
    demos = results.get("demo", {})
    one = demos.get("1x")
    if one:
        rows.append(_row(f"whole demo {base_scale_label}", "<= 180 s", one["median_seconds"], "s",
                         one["median_seconds"] <= 180, len(one["samples"])))
    for label, demo in demos.items():
        if label == "1x":
            continue
        rows.append(_row(f"whole demo {label}", None, demo["median_seconds"], "s", None, len(demo["samples"])))
        if one and label == "4x":
            ratio = demo["median_seconds"] / one["median_seconds"]
            rows.append(_row("whole demo 4x / 1x", "<= 2.5", ratio, "x", ratio <= 2.5, None))
    if one:
        peak = one["max_peak_tree_rss_mib"] / GIB
        rows.append(_row("peak memory 1x (max of runs)", "<= 4 GiB", peak, "GiB", peak <= 4, len(one["samples"])))
    for label, demo in demos.items():
        if label != "1x":
            rows.append(_row(f"peak memory {label} (max of runs)", None, demo["max_peak_tree_rss_mib"] / GIB, "GiB", None,
                             len(demo["samples"])))
    inc = results.get("incremental")
    if inc:
        rows.append(_row("incremental weekly refresh", "<= 45 s", inc["median_seconds"], "s",
                         inc["median_seconds"] <= 45, len(inc["samples"])))
    st = results.get("stages")
    if st:
        m = st["medians"]
        n = len(st["samples"]["simulate"])
        spark_q, duck_q = m["feature_query_spark"]["seconds"], m["feature_query_duckdb"]["seconds"]
        ratio = spark_q / duck_q
        same = all(c["same_row_count"] for c in st["duckdb_check"].values())
        equal = all(c["equal_values"] for c in st["duckdb_check"].values())
        rows += [
            _row("JVM start (Spark session)", None, st["jvm_start_seconds"], "s", None, 1),
            _row("stage: simulate", None, m["simulate"]["seconds"], "s", None, n),
            _row("stage: feature SQL, all weeks (+CSV)", None, m["features"]["seconds"], "s", None, n),
            _row("stage: preprocessing + training", None, m["train"]["seconds"], "s", None, n),
            _row("stage: evaluation", None, m["evaluation"]["seconds"], "s", None, n),
            _row("stage: behaviour report", None, m["behavior_report"]["seconds"], "s", None, n),
            _row("stage: scoring (unlabelled weeks)", None, m["scoring"]["seconds"], "s", None, n),
            _row("feature query: Spark (warm)", None, spark_q, "s", None, n),
            _row("feature query: DuckDB", None, duck_q, "s", None, n),
            _row("feature query Spark / DuckDB" + ("" if same and equal else " (RESULTS DIFFER)"), "<= 3", ratio, "x",
                 ratio <= 3 and same and equal, n),
            _row("scoring throughput (with reasons)", None, m["scoring_throughput"]["evaluators_per_second"], "evaluators/s",
                 None, n),
            _row("scoring throughput (probability only)", None,
                 m["scoring_throughput"]["evaluators_per_second_without_reasons"], "evaluators/s", None, n),
        ]
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"\n{'measurement':42s} {'target':>10s} {'median':>12s} {'unit':>13s} {'n':>3s}  result")
    print("-" * 92)
    for r in rows:
        value = f"{r['median']:,.0f}" if r["unit"] == "evaluators/s" else f"{r['median']:.2f}"
        verdict = "" if r["passed"] is None else ("PASS" if r["passed"] else "FAIL")
        print(f"{r['measurement']:42s} {r['target'] or '-':>10s} {value:>12s} {r['unit']:>13s} {r['n'] or '':>3}  {verdict}")


def main(argv=None) -> int:
    args = _args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    large_repeats = args.large_scale_repeats or max(1, repeats - 1)
    base = QUICK_INSTANCES if args.quick else TALK_INSTANCES
    scales = [float(s) for s in (args.scales or ("1" if args.quick else "1,4")).split(",") if s.strip()]
    only = set(args.only.split(","))
    as_of = args.as_of or datetime.now(timezone.utc).date()
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="churn-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict = {
        "format": "churn-bench/1",
        "date": now_iso(),
        "git": git_state(),
        "machine": machine(),
        "config": {"repeats": repeats, "large_scale_repeats": large_repeats, "scales": scales, "quick": args.quick,
                   "instances_1x": base, "as_of": as_of.isoformat(), "only": sorted(only), "argv": sys.argv[1:],
                   "workdir": str(work)},
    }
    print(f"churn benchmark: 1x = {base:,} labelled evaluators, as of {as_of}, repeats {repeats} "
          f"(scales above 1x: {large_repeats}), work folder {work}, load {loadavg()}", flush=True)
    try:
        if "demo" in only:
            results["demo"] = {}
            for scale in scales:
                n = repeats if scale <= 1 else large_repeats
                print(f"whole demo at {scale:g}x ({int(base * scale):,} evaluators), {n} run(s):", flush=True)
                results["demo"][f"{scale:g}x"] = bench_demo(work, scale, int(base * scale), as_of, n)
        if "incremental" in only:
            print("incremental weekly refresh:", flush=True)
            results["incremental"] = bench_incremental(work, base, as_of, repeats)
        if "stages" in only:
            print("stages (one process, one Spark session):", flush=True)
            results["stages"] = bench_stages(work, base, as_of, repeats)
    finally:
        results["total_seconds"] = round(time.perf_counter() - started, 1)
        results["machine"]["loadavg_at_end"] = loadavg()
        try:
            results["summary"] = summarise(results, "1x (quick size)" if args.quick else "1x")
        except Exception as exc:  # noqa: BLE001 - a partial run still writes its raw samples
            results["summary"] = []
            print(f"(no summary: {exc!r})")
        write_json_atomic(Path(args.out), results)
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print_table(results["summary"])
    print(f"\n{'QUICK SMOKE RUN: sizes are tiny, the targets are for the full run. ' if args.quick else ''}"
          f"Total {results['total_seconds']:.0f}s; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
