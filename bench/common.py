"""Shared helpers of the benchmark: the machine, process-tree memory, subprocesses, statistics.

Not a test module and not part of the platform: `bench/run.py` and `bench/worker.py` import it.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
MIB = 1024 * 1024
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
TALK_INSTANCES = 57_700  # the talk's labelled evaluators: scale 1x


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# ---------------------------------------------------------------------------------------------
# Peak memory of a process tree: poll /proc every 0.2 s and sum the RSS of the root process and
# every descendant (the Python driver, the spark-submit shell and the JVM it starts, and any
# worker processes: joblib/loky, pyspark daemons). RSS double-counts pages shared between
# processes (shared libraries), so the figure is an upper bound of the tree's real footprint.
# ---------------------------------------------------------------------------------------------


def _parent_map() -> dict[int, int]:
    parents = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses; split after the last ')'
        rest = stat[stat.rfind(b")") + 2 :].split()
        parents[int(name)] = int(rest[1])
    return parents


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, ppid in _parent_map().items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


class TreeMemoryPoller:
    """Peak summed RSS of a process and its descendants, sampled every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.2):
        self.pid, self.interval = pid, interval
        self.peak_bytes = 0
        self.peak_by_name: dict[str, int] = {}  # at the moment of the peak: comm -> RSS
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            sizes = {pid: rss_bytes(pid) for pid in descendants(self.pid)}
            total = sum(sizes.values())
            self.samples += 1
            if total > self.peak_bytes:
                self.peak_bytes = total
                by_name: dict[str, int] = {}
                for pid, size in sizes.items():
                    by_name[_comm(pid)] = by_name.get(_comm(pid), 0) + size
                self.peak_by_name = by_name
            self._stop.wait(self.interval)

    def __enter__(self) -> "TreeMemoryPoller":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class ProcessRun:
    """One measured subprocess: wall time, exit code, memory, captured output."""

    argv: list[str]
    seconds: float
    returncode: int
    peak_tree_rss_mib: float
    peak_rss_by_process_mib: dict[str, float]
    max_single_rss_mib: float  # ru_maxrss of the largest process of the tree that was waited for
    log: str
    loadavg_before: list[float]
    loadavg_after: list[float]
    stdout: str = field(repr=False, default="")


def run_measured(argv: list[str], env: dict[str, str], log_path: Path, timeout: float = 3600) -> ProcessRun:
    """Run argv in a fresh process; time it, poll its tree's memory; stdout+stderr go to log_path."""
    load_before = loadavg()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        started = time.perf_counter()
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        with TreeMemoryPoller(process.pid) as poller:
            deadline = started + timeout
            status, usage = 0, None
            while True:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    process.kill()
                    _, status, usage = os.wait4(process.pid, 0)
                    break
                time.sleep(0.05)
            seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
    text = log_path.read_text(errors="replace")
    return ProcessRun(
        argv=argv,
        seconds=round(seconds, 3),
        returncode=process.returncode,
        peak_tree_rss_mib=round(poller.peak_bytes / MIB, 1),
        peak_rss_by_process_mib={k: round(v / MIB, 1) for k, v in sorted(poller.peak_by_name.items(), key=lambda kv: -kv[1]) if v > 8 * MIB},
        max_single_rss_mib=round((usage.ru_maxrss if usage else 0) / 1024, 1),  # ru_maxrss is in KiB on Linux
        log=str(log_path),
        loadavg_before=load_before,
        loadavg_after=loadavg(),
        stdout=text,
    )


# ---------------------------------------------------------------------------------------------
# The machine and the software.
# ---------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _java_version() -> str:
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
        return (out.stderr or out.stdout).splitlines()[0].strip()
    except Exception as exc:  # noqa: BLE001 - reported as is
        return f"unknown ({exc})"


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except Exception:  # noqa: BLE001
        return None


def machine() -> dict:
    return {
        "hostname": platform.node(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "ram_gib": _mem_total_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "java": _java_version(),
        "versions": {
            name: _version(name)
            for name in ("pyspark", "xgboost", "dagster", "duckdb", "pandas", "numpy", "pyarrow", "sklearn")
        },
        "loadavg_at_start": loadavg(),
    }


def git_state() -> dict:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30).stdout.strip()
        except Exception:  # noqa: BLE001
            return ""

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def worker_env(data_root: Path, dagster_home: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a measured process: local Spark, its own data root and Dagster instance."""
    env = dict(os.environ)
    env.update({"CHURN_ENV": "local", "CHURN_DATA_ROOT": str(data_root), "PYTHONUNBUFFERED": "1"})
    env.pop("DAGSTER_HOME", None)
    if dagster_home is not None:
        dagster_home.mkdir(parents=True, exist_ok=True)
        (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env["DAGSTER_HOME"] = str(dagster_home)
    env.update(extra)
    return env


def python() -> str:
    return sys.executable


def write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)
