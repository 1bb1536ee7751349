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
# It prints figures; it does not fail on a slow machine.
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
    local start end
    rm -rf "$work/target"
    start=$(date +%s%N)
    (cd "$src" && CARGO_TARGET_DIR="$work/target" CARGO_TERM_COLOR=never "$@" >/dev/null 2>&1)
    end=$(date +%s%N)
    local tenths=$(( (end - start) / 100000000 ))
    printf '%-40s %5d.%d s  (%s)\n' "$name" $((tenths / 10)) $((tenths % 10)) "$label"
}

(cd "$src" && cargo fetch --quiet)
timed "clean release build of the CLI" cargo build --release --locked -p airflow-stack
timed "clean build of the test suite" cargo test --workspace --locked --no-run
