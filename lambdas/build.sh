#!/usr/bin/env bash
# Builds the size-optimised Lambda binaries for provided.al2023 (x86_64) and packages
# each as <cargo target dir>/lambda/<package>/bootstrap.zip (CARGO_TARGET_DIR is
# honoured): one entry `bootstrap`, mode 0755, fixed timestamp, so the same binary
# gives the same zip and the same content-hash asset key.
#
# Usage: lambdas/build.sh [PACKAGE...]   # default: every Lambda the template uses
#
# Each package's binary is `<package>-bootstrap`. Fails if a binary needs a glibc newer
# than 2.34 (what provided.al2023 ships).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
max_glibc=2.34
packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=(airflow-secrets airflow-migration airflow-scaler)

target_dir="${CARGO_TARGET_DIR:-$root/target}"
args=()
for package in "${packages[@]}"; do args+=(-p "$package"); done
cargo build --quiet --profile lambda "${args[@]}"

for package in "${packages[@]}"; do
    binary="$target_dir/lambda/$package-bootstrap"
    out_dir="$target_dir/lambda/$package"
    [ -x "$binary" ] || { echo "error: $binary was not built" >&2; exit 1; }

    # provided.al2023 has glibc 2.34; a newer symbol version would fail at start-up there.
    needed="$(objdump -T "$binary" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)"
    if [ "$(printf '%s\n%s\n' "$needed" "$max_glibc" | sort -V | tail -1)" != "$max_glibc" ]; then
        echo "error: $package needs GLIBC_$needed, provided.al2023 has $max_glibc" >&2
        exit 1
    fi

    mkdir -p "$out_dir"
    rm -f "$out_dir/bootstrap.zip"
    # python3's zipfile (rather than the zip CLI) so the 0755 mode is set explicitly
    # and the archive is reproducible: fixed timestamp, one entry.
    python3 - "$binary" "$out_dir/bootstrap.zip" <<'PY'
import sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
info.external_attr = (0o100755 << 16)
info.create_system = 3  # Unix, so the mode is honoured
info.compress_type = zipfile.ZIP_DEFLATED
with open(src, "rb") as f, zipfile.ZipFile(dst, "w") as z:
    z.writestr(info, f.read(), compresslevel=9)
PY
    echo "$package: bootstrap $(stat -c %s "$binary") bytes (needs GLIBC_$needed, limit $max_glibc), zip $(stat -c %s "$out_dir/bootstrap.zip") bytes at $out_dir/bootstrap.zip"
done
