#!/usr/bin/env bash
# Times the two builds a contributor waits for, from cold: a clean release build of the
# CLI, and a clean build of every test target of the workspace (`cargo test --no-run`).
#
# Usage: scripts/bench_build.sh [GIT-REV]   # default: the working tree
#
# A revision is checked out into a temporary worktree, so two revisions can be compared
# on the same machine under the same load (the issue-14 bar: the generated CloudFormation
# layer must not make either build more than 20 % slower). Each build gets a new, empty
# CARGO_TARGET_DIR; the cargo registry cache is shared (downloads are not the build).
# It prints wall time and CPU time (user + system, from /usr/bin/time): on a busy machine
# the CPU time is the fairer comparison. It prints figures; it does not fail on a slow
# machine.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rev="${1:-}"
work="$(mktemp -d)"
cleanup() {
    if [ -n "$rev" ]; then git -C "$root" worktree remove --force "$work/src" >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

if [ -n "$rev" ]; then
    git -C "$root" worktree add --detach "$work/src" "$rev" >/dev/null 2>&1
    src="$work/src"
else
    src="$root"
fi
label="${rev:-working tree}"

timed() {
    local name="$1"
    shift
    rm -rf "$work/target"
    (cd "$src" && CARGO_TARGET_DIR="$work/target" CARGO_TERM_COLOR=never \
        /usr/bin/time -o "$work/time" -f '%e %U %S' "$@" >/dev/null 2>&1)
    read -r wall user sys <"$work/time"
    python3 -c 'import sys; w, u, s = map(float, sys.argv[2:5]); print(f"{sys.argv[1]:<40} wall {w:7.1f} s   cpu {u + s:7.1f} s  ({sys.argv[5]})")' \
        "$name" "$wall" "$user" "$sys" "$label"
}

(cd "$src" && cargo fetch --quiet)
timed "clean release build of the CLI" cargo build --release --locked -p airflow-stack
timed "clean build of the test suite" cargo test --workspace --locked --no-run
