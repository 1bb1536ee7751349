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

started=$(date +%s)
echo "building ${packages[*]} for $arch ($triple) with $(cargo lambda --version 2>/dev/null || echo cargo-lambda)" >&2
for package in "${packages[@]}"; do
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
echo "built in $(( $(date +%s) - started ))s" >&2

mkdir -p "$out"
for package in "${packages[@]}"; do
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
    echo "$package ($arch): bootstrap $(stat -c %s "$binary") bytes (needs GLIBC_$needed, limit $max_glibc), zip $(stat -c %s "$zip") bytes, sha256 $(sha256sum "$zip" | cut -c1-12)..., at $zip" >&2
done
