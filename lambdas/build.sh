#!/usr/bin/env bash
# Builds the Rust Lambdas with cargo-lambda for provided.al2023 and packages each as
# <out>/<package>/bootstrap.zip. `airflow-stack deploy` runs this script itself when the
# zips are missing and it runs from a checkout; the test command runs it too.
#
#   lambdas/build.sh [--arch arm64|x86_64] [--out DIR] [PACKAGE...]
#
#   --arch  instruction set of the functions (default arm64: the stack's Lambdas run on
#           Graviton, LAMBDA_ARCHITECTURE in src/stack/assets.rs)
#   --out   folder of the zips (default <cargo target dir>/lambda/<arch>, where deploy
#           looks; CARGO_TARGET_DIR and .cargo/config.toml are honoured)
#   PACKAGE default: every Lambda the stack uses
#
# Needs cargo (rustup), cargo-lambda (`pip install cargo-lambda`, which brings zig, the
# cross linker), python3 (zipfile) and readelf (binutils). A missing rustup target is
# added with `rustup target add`.
#
# Why cargo-lambda builds but does not zip: its zips carry the binary's modification
# time and file mode (cargo-lambda-build's archive.rs, `zip_file_options`), so a rebuild
# of identical bytes gives a different zip, a different content-hash asset key
# (src/aws/assets.rs) and a needless Lambda update. The zip here has one entry
# `bootstrap`, mode 0755, a fixed 1980-01-01 timestamp and fixed deflate settings: the
# same binary always gives the same zip bytes.
#
# Checks: the binary is an ELF for the requested architecture, and needs no glibc newer
# than 2.34 (what provided.al2023 ships, on both architectures).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
max_glibc=2.34
arch=arm64
out=""
packages=()
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) arch="${2:?--arch needs arm64 or x86_64}"; shift 2 ;;
        --arch=*) arch="${1#--arch=}"; shift ;;
        --out) out="${2:?--out needs a folder}"; shift 2 ;;
        --out=*) out="${1#--out=}"; shift ;;
        -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "error: unknown option $1 (see lambdas/build.sh --help)" >&2; exit 2 ;;
        *) packages+=("$1"); shift ;;
    esac
done
[ ${#packages[@]} -gt 0 ] || packages=(airflow-secrets airflow-migration airflow-scaler airflow-image-build airflow-streams)
case "$arch" in
    arm64) triple=aarch64-unknown-linux-gnu; elf_machine=AArch64 ;;
    x86_64) triple=x86_64-unknown-linux-gnu; elf_machine="Advanced Micro Devices X86-64" ;;
    *) echo "error: --arch must be arm64 or x86_64, not $arch" >&2; exit 2 ;;
esac

# cargo-lambda on PATH, else in the test command's virtualenv. Its folder goes first on
# PATH: `cargo lambda` finds the subcommand there, and a pip install keeps zig next to it.
cargo_lambda="$(command -v cargo-lambda || true)"
if [ -z "$cargo_lambda" ] && [ -x "${AIRFLOW_STACK_VENV:-}/bin/cargo-lambda" ]; then
    cargo_lambda="$AIRFLOW_STACK_VENV/bin/cargo-lambda"
fi
if [ -z "$cargo_lambda" ]; then
    cat >&2 <<'EOF'
error: cargo-lambda is not installed; it builds the Lambdas (cross-compiled with zig).
Install it, then run the command again:
    pip install cargo-lambda          # brings zig too (use a virtualenv or pipx)
    brew install cargo-lambda/tap/cargo-lambda
See https://www.cargo-lambda.info/guide/installation.html
EOF
    exit 1
fi
export PATH="$(dirname "$cargo_lambda"):$PATH"
for tool in python3 readelf; do
    command -v "$tool" >/dev/null || { echo "error: $tool is needed to package the Lambdas (python3; readelf is in binutils)" >&2; exit 1; }
done
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$triple"; then
    echo "adding the Rust target $triple (rustup target add)" >&2
    rustup target add "$triple" >&2
fi

target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
out="${out:-$target_dir/lambda/$arch}"
staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT

# Zips are kept by a hash of their inputs, in <target dir>/lambda-cache/<arch>, and a
# zip whose inputs have not changed is copied from there instead of built. Why not leave
# it to cargo: cargo decides whether a workspace crate is fresh by file modification
# times, and a fresh checkout (every CI run) gives every file a new one, so each Lambda
# was compiled again and went through its full LTO link: 1.5-2 minutes per Lambda on 2
# cores for identical bytes. The key covers what decides a Lambda's bytes: the target,
# rustc and cargo-lambda (and zig's) versions, RUSTFLAGS, the root Cargo.toml (profiles,
# dependency versions), Cargo.lock, and every file of every workspace crate the Lambda
# depends on (normal and build path dependencies, as `cargo metadata` lists them).
cache="$target_dir/lambda-cache/$arch"
toolchain="$(rustc -vV; cargo lambda --version 2>&1; \
    { command -v zig >/dev/null && zig version; } || { command -v python-zig >/dev/null && python-zig version; } || echo "no zig on PATH")"
declare -A keys=()
while read -r package key; do
    keys[$package]="$key"
done < <(cargo metadata --format-version 1 --no-deps | TOOLCHAIN="$toolchain" TRIPLE="$triple" python3 -c '
import hashlib, json, os, sys
meta = json.load(sys.stdin)
root = meta["workspace_root"]
# --no-deps: the workspace members and their declared dependencies, read without
# resolving (or downloading) anything; a path dependency names its folder.
members = {os.path.dirname(p["manifest_path"]): p for p in meta["packages"]}
SKIP = {"target", ".git", "__pycache__", "node_modules"}

def local_closure(folder):
    """The workspace crates built into the crate in `folder`: itself, and its path
    dependencies (normal and build, not dev), transitively."""
    seen, todo = set(), [folder]
    while todo:
        cur = todo.pop()
        if cur in seen:
            continue
        seen.add(cur)
        for dep in members[cur]["dependencies"]:
            if dep.get("path") and dep["kind"] in (None, "build"):
                todo.append(dep["path"])
    return sorted(seen)

def add_file(h, path):
    h.update(os.path.relpath(path, root).encode() + b"\0")
    with open(path, "rb") as f:
        h.update(hashlib.sha256(f.read()).digest())

for name in sys.argv[1:]:
    (folder,) = [f for f, p in members.items() if p["name"] == name]
    h = hashlib.sha256(b"airflow-stack lambda zip v1\0")
    for part in (os.environ["TRIPLE"], os.environ["TOOLCHAIN"],
                 os.environ.get("RUSTFLAGS", ""), os.environ.get("CARGO_ENCODED_RUSTFLAGS", "")):
        h.update(part.encode() + b"\0")
    for extra in ("Cargo.toml", "Cargo.lock", ".cargo/config.toml", "rust-toolchain.toml", "rust-toolchain"):
        if os.path.isfile(os.path.join(root, extra)):
            add_file(h, os.path.join(root, extra))
    for crate in local_closure(folder):
        for top, dirs, files in os.walk(crate):
            dirs[:] = sorted(d for d in dirs if d not in SKIP)
            for f in sorted(files):
                add_file(h, os.path.join(top, f))
    print(name, h.hexdigest())
' "${packages[@]}")
to_build=()
for package in "${packages[@]}"; do
    [ -n "${keys[$package]:-}" ] || { echo "error: no input hash for $package" >&2; exit 1; }
    [ -f "$cache/$package/${keys[$package]}.zip" ] || to_build+=("$package")
done

# Keeps a built zip under its key (renamed into place: a concurrent build never reads
# half of one) and only the newest few keys per Lambda, so the cache stays small.
store_in_cache() {
    local zip="$1" cached="$2" dir
    dir="$(dirname "$cached")"
    mkdir -p "$dir"
    cp "$zip" "$cached.tmp.$$"
    mv -f "$cached.tmp.$$" "$cached"
    ls -1t "$dir"/*.zip | tail -n +6 | xargs -r rm -f
}

started=$(date +%s)
if [ ${#to_build[@]} -gt 0 ]; then
    echo "building ${to_build[*]} for $arch ($triple) with $(cargo lambda --version 2>/dev/null || echo cargo-lambda)" >&2
fi
for package in "${to_build[@]}"; do
    # One cargo run per package: cargo unifies dependency features over the packages of
    # one run, so building the scaler alongside would change the secrets binary. Alone,
    # a Lambda's bytes depend on its own crate and dependencies only, whichever zips are
    # asked for (deploy asks only for what the template uses).
    # --profile lambda (root Cargo.toml): cargo-lambda adds its own optimisations only
    # with --release, so the profile's opt-level z, LTO and panic=unwind (the panic
    # guard) hold. --lambda-dir: cargo-lambda moves the binary to
    # <dir>/<bin>/bootstrap (cargo hard-links it again next build), a scratch folder.
    cargo lambda build --profile lambda --target "$triple" --lambda-dir "$staging/bin" -p "$package" >&2
done
[ ${#to_build[@]} -eq 0 ] || echo "built in $(( $(date +%s) - started ))s" >&2

mkdir -p "$out"
for package in "${packages[@]}"; do
    cached="$cache/$package/${keys[$package]}.zip"
    if [ -f "$cached" ]; then
        # Written next to its final name, then renamed: a reader never sees half a zip.
        mkdir -p "$out/$package"
        cp "$cached" "$out/$package/bootstrap.zip.tmp"
        mv -f "$out/$package/bootstrap.zip.tmp" "$out/$package/bootstrap.zip"
        zip="$out/$package/bootstrap.zip"
        echo "$package ($arch): unchanged inputs (${keys[$package]:0:12}...), zip $(stat -c %s "$zip") bytes, sha256 $(sha256sum "$zip" | cut -c1-12)... from the cache, at $zip" >&2
        continue
    fi
    binary="$staging/bin/$package-bootstrap/bootstrap"
    [ -x "$binary" ] || { echo "error: $binary was not built" >&2; exit 1; }

    machine="$(readelf -h "$binary" | sed -n 's/^ *Machine: *//p')"
    if [ "$machine" != "$elf_machine" ]; then
        echo "error: $binary is built for $machine, not $arch" >&2
        exit 1
    fi
    # provided.al2023 has glibc 2.34; a newer symbol version would fail at start-up there.
    needed="$(readelf -V -W "$binary" | grep -o 'Name: GLIBC_[0-9.]*' | sed 's/.*GLIBC_//' | sort -V | tail -1)"
    if [ "$(printf '%s\n%s\n' "$needed" "$max_glibc" | sort -V | tail -1)" != "$max_glibc" ]; then
        echo "error: $package needs GLIBC_$needed, provided.al2023 has $max_glibc" >&2
        exit 1
    fi

    mkdir -p "$out/$package"
    # Written next to its final name, then renamed: a reader never sees half a zip.
    python3 - "$binary" "$out/$package/bootstrap.zip.tmp" <<'PY'
import sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
info.external_attr = 0o100755 << 16  # a regular file, rwxr-xr-x: Lambda executes it
info.create_system = 3  # Unix, so the mode is honoured
info.compress_type = zipfile.ZIP_DEFLATED
with open(src, "rb") as f, zipfile.ZipFile(dst, "w") as z:
    z.writestr(info, f.read(), compresslevel=9)
PY
    mv -f "$out/$package/bootstrap.zip.tmp" "$out/$package/bootstrap.zip"
    zip="$out/$package/bootstrap.zip"
    store_in_cache "$zip" "$cached"
    echo "$package ($arch): bootstrap $(stat -c %s "$binary") bytes (needs GLIBC_$needed, limit $max_glibc), zip $(stat -c %s "$zip") bytes, sha256 $(sha256sum "$zip" | cut -c1-12)..., at $zip" >&2
done
