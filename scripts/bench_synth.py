#!/usr/bin/env python3
"""Times `airflow-stack synth` of the default stack file as a whole process.

Usage: scripts/bench_synth.py [BINARY] [RUNS]

Prints the median and worst wall time and the peak resident memory of the runs
(targets: under 15 ms wall, under 15 MB peak on a 2-core machine). It measures and
prints; it does not fail on a slow machine - the figures go into the README.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_once(cmd):
    """Runs cmd once; returns its wall time in ms (spawn to exit)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        start = time.perf_counter()
        pid = os.posix_spawn(cmd[0], cmd, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1)])
        _, status = os.waitpid(pid, 0)
        wall = (time.perf_counter() - start) * 1000
    finally:
        os.close(devnull)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed")
    return wall


def peak_rss_kib(cmd):
    """Peak RSS of cmd in KiB, by GNU time.

    Linux carries the pre-exec high-water mark into an exec'd child's ru_maxrss, so a
    child spawned from this Python process would report Python's size; GNU time is a
    1 MiB process, so its figure is the binary's own (plus at most that).
    """
    with tempfile.NamedTemporaryFile("r") as out:
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out.name, *cmd], check=True, stdout=subprocess.DEVNULL)
        return int(out.read().strip().splitlines()[-1])


def main() -> int:
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(target, "release", "airflow-stack")
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    if not os.path.exists(binary):
        print(f"error: {binary} not found; build it with cargo build --release", file=sys.stderr)
        return 1
    cmd = [binary, "synth", os.path.join(ROOT, "stacks/dev.yaml")]
    run_once(cmd)  # warm the page cache
    walls = [run_once(cmd) for _ in range(runs)]
    if not os.path.exists("/usr/bin/time"):
        print("error: /usr/bin/time (Debian package `time`) is needed to measure memory", file=sys.stderr)
        return 1
    peak_mib = max(peak_rss_kib(cmd) for _ in range(5)) / 1024
    print(f"synth stacks/dev.yaml, {runs} runs: median {statistics.median(walls):.2f} ms, "
          f"worst {max(walls):.2f} ms wall, peak RSS {peak_mib:.1f} MiB (targets: 15 ms, 15 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
