#!/usr/bin/env python3
"""Bounded work on any stack file: times `airflow-stack validate` on the largest stack
file it accepts and on the largest ones it refuses, each of a different shape.

Usage: scripts/bench_stack_file.py [BINARY] [RUNS]

Prints, per file, its size, the exit code, the median and worst wall time and the peak
resident memory (targets, issue 13: under 1 s and under 50 MB for any file under
1 MiB; larger files are refused before they are read). It measures and prints; it does
not fail on a slow machine - the figures go into the README.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1024 * 1024
BASE = "name: a\nregion: us-east-1\n"


def pad_with_comments(text, size):
    """Fills text up to exactly size bytes with comment lines."""
    line = "# " + "x" * 97 + "\n"
    while len(text) + len(line) <= size:
        text += line
    return text + "#" * (size - len(text) - 1) + "\n" if size - len(text) > 1 else text


def largest_accepted():
    """Every bounded list and map at its largest, then comments up to 1 MiB."""
    tags = "".join(f"  tag{i:02}: {'v' * 200}\n" for i in range(48))
    env = "".join(f"    AIRFLOW__CORE__X{i:02}: {'v' * 500}\n" for i in range(31))
    subnets = ", ".join(f"subnet-{i:08x}" for i in range(16))
    text = (BASE + "tags:\n" + tags + "airflow:\n  extra_env:\n" + env
            + f"network:\n  vpc_id: vpc-12345678\n  subnet_ids: [{subnets}]\n")
    return pad_with_comments(text, MIB)


def refused_files():
    """(what, text) of the largest refused files, one per shape of work."""
    many_entries = BASE + "airflow:\n  extra_env:\n"
    i = 0
    while len(many_entries) < MIB - 64:
        many_entries += f"    AIRFLOW__CORE__X{i:07}: v\n"
        i += 1
    just_under_node_limit = BASE + "airflow:\n  extra_env:\n" + "".join(
        f"    AIRFLOW__CORE__Y{i:04}: {'v' * 90}\n" for i in range(4990))
    one_long_value = BASE + "airflow:\n  extra_env:\n    AIRFLOW__CORE__X: " + "v" * (MIB - 80) + "\n"
    laughs = BASE + "tags:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9))
    deep = BASE + "tags: " + "[" * 5000 + "]" * 5000 + "\n"
    return [
        ("1 MiB + 1 byte (refused before reading)", pad_with_comments(BASE, MIB + 1)),
        ("1 MiB of small extra_env entries (key-and-value bound)", many_entries[:MIB]),
        ("extra_env just under the key-and-value bound (size bound)", just_under_node_limit),
        ("one 1 MiB extra_env value", one_long_value),
        ("aliases nested 9 deep (a billion values if expanded)", pad_with_comments(laughs, MIB)),
        ("5000 nested lists", pad_with_comments(deep, MIB)),
    ]


def run_once(cmd):
    """(wall ms, exit code) of one run."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000, proc.returncode


def peak_rss_mib(cmd):
    """Peak RSS by GNU time (a small process, so the figure is the binary's own)."""
    with tempfile.NamedTemporaryFile("r") as out:
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out.name, *cmd],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return int(out.read().strip().splitlines()[-1]) / 1024


def measure(binary, path, runs):
    cmd = [binary, "validate", path]
    run_once(cmd)  # warm the page cache
    results = [run_once(cmd) for _ in range(runs)]
    walls = [w for w, _ in results]
    return results[0][1], statistics.median(walls), max(walls), max(peak_rss_mib(cmd) for _ in range(3))


def main():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(target, "release", "airflow-stack")
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    if not os.path.exists(binary):
        print(f"error: {binary} not found; build it with cargo build --release", file=sys.stderr)
        return 1
    if not os.path.exists("/usr/bin/time"):
        print("error: /usr/bin/time (Debian package `time`) is needed to measure memory", file=sys.stderr)
        return 1
    files = [("largest accepted: every bound at its largest, comments to 1 MiB", largest_accepted())]
    files += refused_files()
    print(f"airflow-stack validate, {runs} runs each (targets: < 1000 ms, < 50 MiB)")
    worst = (0.0, 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (what, text) in enumerate(files):
            path = os.path.join(tmp, f"{i}.yaml")
            with open(path, "w") as f:
                f.write(text)
            code, median, slowest, rss = measure(binary, path, runs)
            worst = (max(worst[0], slowest), max(worst[1], rss))
            print(f"  {what}: {len(text.encode())} bytes, exit {code}, "
                  f"median {median:.1f} ms, worst {slowest:.1f} ms, peak RSS {rss:.1f} MiB")
    print(f"worst of all: {worst[0]:.1f} ms, {worst[1]:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
