#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs every test.
#
#   bash tests/run-all.sh
#
# It works from a fresh clone: Debian packages (apt-get), a Python virtualenv with
# cfn-lint, moto and cargo-lambda (which brings zig), the Rust toolchain's own cargo and
# the Lambdas' rustup targets. Caches live outside the clone, under
# $AIRFLOW_STACK_CACHE (default ~/.cache/airflow-stack): the cargo target dir and the
# virtualenvs. Nothing here needs an AWS account; every server a test starts binds to
# 127.0.0.1 on a free port and is stopped by the test.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cache="${AIRFLOW_STACK_CACHE:-$HOME/.cache/airflow-stack}"
mkdir -p "$cache"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
export AIRFLOW_STACK_VENV="$cache/venv"
export CARGO_TERM_COLOR=never
# No incremental compilation: every clone has a new path, so the cached target dir
# would keep one incremental copy of the workspace crates per clone (15 GB seen, a full
# disk), and it only speeds up rebuilds, not a first build. Dependencies are never
# incremental, so the cache keeps what matters.
export CARGO_INCREMENTAL=0
started=$(date +%s)

# The cached target dir grows with every clone (about 6 GB each: test binaries and the
# workspace's crates). When the disk runs low, files no build has read for a day are
# removed; cargo rebuilds whatever it then misses. (atime: the root file system is
# mounted relatime, which refreshes a file's atime at least once a day when it is read.)
# AIRFLOW_STACK_MIN_FREE_GB sets the threshold.
prune_target_dir() {
    local min_gb="${AIRFLOW_STACK_MIN_FREE_GB:-20}" free_gb
    [ -d "$CARGO_TARGET_DIR" ] || return 0
    free_gb=$(df -Pk "$CARGO_TARGET_DIR" | awk 'NR==2 {print int($4 / 1048576)}')
    [ "$free_gb" -lt "$min_gb" ] || return 0
    echo "only ${free_gb} GB free (< ${min_gb}): removing files unread for a day from $CARGO_TARGET_DIR"
    find "$CARGO_TARGET_DIR" -type f -amin +1440 -delete
    find "$CARGO_TARGET_DIR" -mindepth 1 -type d -empty -delete
    free_gb=$(df -Pk "$CARGO_TARGET_DIR" | awk 'NR==2 {print int($4 / 1048576)}')
    echo "now ${free_gb} GB free"
    # A cold run writes about 15 GB (target dirs, virtualenvs, the e2e's databases): say
    # so now, with what holds the space, rather than fail later with "No space left".
    if [ "$free_gb" -lt 15 ]; then
        echo "warning: only ${free_gb} GB free; the largest folders of $cache:"
        du -sh "$cache"/* 2>/dev/null | sort -h | tail -n 5
    fi
}
prune_target_dir

phase() { printf '\n== %s (%ss) ==\n' "$1" "$(( $(date +%s) - started ))"; }

# Debian packages the tests use, installed only when missing.
need_apt() {
    local missing=()
    for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

phase "Debian packages"
# binutils: readelf (lambdas/build.sh checks each Lambda's architecture and glibc needs).
# qemu-user-static and libc6-arm64-cross: the emulator runs arm64 Lambdas as Lambda
# would, under qemu-user with the arm64 dynamic loader and glibc
# (tests/aws_emulator/server.py, bootstrap_command). util-linux: `script` (tests/init.rs).
need_apt time binutils python3-venv qemu-user-static libc6-arm64-cross util-linux

phase "Python tools (cfn-lint, moto, cargo-lambda) in $AIRFLOW_STACK_VENV"
[ -x "$AIRFLOW_STACK_VENV/bin/pip" ] || python3 -m venv "$AIRFLOW_STACK_VENV"
"$AIRFLOW_STACK_VENV/bin/pip" install -q --disable-pip-version-check --upgrade -r tests/requirements.txt
"$AIRFLOW_STACK_VENV/bin/cfn-lint" --version
PATH="$AIRFLOW_STACK_VENV/bin:$PATH" cargo lambda --version

phase "Rust targets of the Lambdas (rustup)"
rustup target add aarch64-unknown-linux-gnu x86_64-unknown-linux-gnu

phase "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

phase "Lambda zips (cargo-lambda), for the architecture the stack's functions run on"
# What `deploy` would build itself; built here once for every test that deploys (the
# deploy test also builds them from scratch in a target dir of its own and checks the
# bytes are the same).
#
# Every debug build of this script selects the whole workspace with all its targets, the
# selection `cargo test --workspace` makes, so cargo resolves the dependencies' features
# once and compiles each dependency once. Selecting packages (`-p a -p b`) resolves them
# anew for that selection: each different selection compiled the AWS SDK crates again
# (four copies, 2-3 minutes and several GB each; CI's disk filled up during one of them).
cargo build --quiet --workspace --all-targets
architectures="$(for stack in stacks/dev.yaml stacks/prod.yaml; do
    "$CARGO_TARGET_DIR/debug/airflow-stack" synth "$stack" | python3 -c '
import json, sys
for r in json.load(sys.stdin)["Resources"].values():
    if r["Type"] == "AWS::Lambda::Function":
        print((r["Properties"].get("Architectures") or ["x86_64"])[0])'
done | sort -u)"
[ "$(echo "$architectures" | wc -w)" = 1 ] || { echo "error: the stacks' Lambdas run on several architectures: $architectures" >&2; exit 1; }
bash lambdas/build.sh --arch "$architectures"
# A CLI that carries them (cargo feature bundled-lambdas, build.rs):
# tests/aws_emulator/test_bundled_cli.py deploys with it and no way to build. A debug
# build proves the bundle as well as a release one and reuses the debug dependencies
# just compiled (a release build compiled them all again: about 5 minutes of a cold
# run); the feature adds no dependency, so only this crate and its binary are compiled
# again (the selection is the one above, so no dependency is). Kept aside, because the
# tests' own build of the CLI (without the feature) replaces it.
AIRFLOW_STACK_BUNDLE_DIR="$CARGO_TARGET_DIR/lambda/$architectures" \
    cargo build --quiet --workspace --all-targets --features airflow-stack/bundled-lambdas
mkdir -p "$CARGO_TARGET_DIR/bundled"
cp "$CARGO_TARGET_DIR/debug/airflow-stack" "$CARGO_TARGET_DIR/bundled/airflow-stack"

phase "Rust tests (unit, CLI, cfn-lint, Lambda processes against moto)"
cargo test --workspace --quiet 2>&1 | tee "$cache/cargo-test.log"

phase "security scan (tests/security_scan: checkov on every rendered template, SECURITY.md)"
# checkov (pinned) in a virtualenv of its own: its many pinned dependencies must not move
# those of cfn-lint and moto in $AIRFLOW_STACK_VENV. scan.py renders stacks/*.yaml and
# tests/cfn_lint.rs's variations with the debug CLI, runs checkov once, offline, and fails
# on a finding SECURITY.md does not justify, or a justification that matches nothing.
checkov_venv="$cache/checkov-venv"
[ -x "$checkov_venv/bin/pip" ] || python3 -m venv "$checkov_venv"
"$checkov_venv/bin/pip" install -q --disable-pip-version-check -r tests/security_scan/requirements.txt
cargo build --quiet --workspace --all-targets
"$checkov_venv/bin/python" tests/security_scan/scan.py
# The example tracked function (crates/tracked-example): the emulator's Lambda tests, the
# e2e (created in the emulator as a user's function) and the provider's tests run it.
export AIRFLOW_STACK_TRACKED_EXAMPLE="$CARGO_TARGET_DIR/debug/airflow-tracked-example-bootstrap"

phase "AWS emulator self-tests (tests/aws_emulator: IAM evaluator, strict emulator)"
"$AIRFLOW_STACK_VENV/bin/pip" install -q --disable-pip-version-check pytest
"$AIRFLOW_STACK_VENV/bin/python" -m pytest -q -p no:cacheprovider tests/aws_emulator

phase "network lab self-tests (tests/netlab: namespaces, security groups, cgroups)"
# iproute2 (ip netns, veth, bridge), nftables (security groups), util-linux (nsenter,
# unshare, setpriv); run as root, as CI does.
need_apt nftables iproute2 util-linux
"$AIRFLOW_STACK_VENV/bin/python" -m pytest -q -p no:cacheprovider tests/netlab

phase "worker scale-in protection (tests/worker_protection: a Celery worker, redis-server)"
# src/stack/worker/airflow_stack_worker.py in a real Celery worker against redis-server and
# a fake ECS agent; celery on the 5.5 line (the module also runs on 5.6). Whether Airflow
# imports the module as its Celery config (test_airflow_config.py) needs the Airflow venv
# the e2e installs: that test runs after the e2e, below, on every run, a cold one too.
need_apt redis-server
"$AIRFLOW_STACK_VENV/bin/pip" install -q --disable-pip-version-check pytest "celery[redis]>=5.5,<5.6"
env -u AIRFLOW_STACK_AIRFLOW_PYTHON "$AIRFLOW_STACK_VENV/bin/python" -m pytest -q -p no:cacheprovider \
    tests/worker_protection

# >>> e2e (tests/e2e): the synthesized stack as real local Airflow processes >>>
# Each ECS task in its own network namespace behind the template's security groups, each
# AWS call authorized against its own role by the emulator; PostgreSQL (TLS) and
# redis-server stand in for RDS/Aurora and Redis/ElastiCache. Airflow is installed by the
# harness into a cached venv outside /root, so the image's user (uid 50000) can run it:
# $AIRFLOW_STACK_SHARED_CACHE/airflow-<version> (default /var/cache/airflow-stack).
phase "e2e: Debian packages, CLI and secrets Lambda builds"
need_apt postgresql redis-server curl openssl nftables iproute2 util-linux
cargo build --quiet --workspace --all-targets
"$AIRFLOW_STACK_VENV/bin/pip" install -q --disable-pip-version-check -r tests/e2e/requirements.txt
phase "e2e: Airflow from the synthesized template (tests/e2e), two lanes at once"
# Two pytest processes, each bringing up its lane's shapes one after the other (lanes,
# shapes and each lane's lab CIDR: tests/e2e/conftest.py, LANES). Each lane's output
# goes to its own log, printed whole when both are done; the run fails if either does.
lanes_dir="$(mktemp -d)"
lane_pids=()
# Interrupted (a CI timeout's SIGTERM, Ctrl-C), this script would leave both lanes running
# with their labs. They get SIGTERM, on which the harness closes its labs (servers stopped
# by process id, namespaces deleted: harness/netlab.py, _install_handlers); SIGINT would
# not do: background jobs of a script ignore it.
stop_lanes() {
    trap - INT TERM
    local pid
    for pid in "${lane_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$lanes_dir"
}
trap 'echo "interrupted: stopping the e2e lanes" >&2; stop_lanes; exit 143' INT TERM
for lane in 1 2; do
    AIRFLOW_STACK_E2E_LANE=$lane "$AIRFLOW_STACK_VENV/bin/pytest" -s -p no:cacheprovider tests/e2e \
        >"$lanes_dir/lane-$lane.log" 2>&1 &
    lane_pids+=($!)
done
e2e_failed=0
for i in 0 1; do
    lane=$((i + 1))
    if wait "${lane_pids[$i]}"; then lane_rc=0; else lane_rc=$?; fi
    echo "e2e lane $lane finished (exit $lane_rc) after $(( $(date +%s) - started ))s"
    [ "$lane_rc" = 0 ] || e2e_failed=1
done
for lane in 1 2; do
    printf '\n== e2e lane %s: its output ==\n' "$lane"
    cat "$lanes_dir/lane-$lane.log"
done
trap - INT TERM
rm -rf "$lanes_dir"
[ "$e2e_failed" = 0 ] || { echo "error: an e2e lane failed (its output is above)" >&2; exit 1; }
# <<< e2e <<<

# The Airflow venv the e2e harness made (it fails the run if none).
airflow_python="$(ls -d "${AIRFLOW_STACK_SHARED_CACHE:-/var/cache/airflow-stack}"/airflow-3.*/bin/python | sort -V | tail -n 1)"

phase "worker scale-in protection: Airflow imports the module as its Celery config"
AIRFLOW_STACK_AIRFLOW_PYTHON="$airflow_python" "$AIRFLOW_STACK_VENV/bin/python" -m pytest -q \
    -p no:cacheprovider tests/worker_protection/test_airflow_config.py

phase "providers/airflow-stack-lambda: the tracked Lambda operator in the e2e's Airflow"
# The provider's tests (log follower, operator, trigger, a dag.test() run, and the Rust
# example function's records under a local Lambda Runtime API) in the Airflow venv the
# e2e harness made; pytest goes into a folder of its own, so that venv stays as the e2e
# installed it.
[ -x "$AIRFLOW_STACK_VENV/bin/uv" ] || "$AIRFLOW_STACK_VENV/bin/pip" install -q --disable-pip-version-check uv
"$AIRFLOW_STACK_VENV/bin/uv" pip install -q --target "$cache/provider-pytest" --python "$airflow_python" pytest
PYTHONPATH="$root/providers/airflow-stack-lambda/src:$cache/provider-pytest" \
    "$airflow_python" -m pytest -q -p no:cacheprovider providers/airflow-stack-lambda/tests

phase "done in $(( $(date +%s) - started ))s"
