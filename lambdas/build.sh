#!/usr/bin/env bash
# Builds the size-optimised bootstrap of the airflow-secrets Lambda for provided.al2023
# (x86_64) and packages it as target/lambda/airflow-secrets/bootstrap.zip under the
# cargo target dir (CARGO_TARGET_DIR is honoured).
#
# Usage: lambdas/build.sh            # prints the zip path and size
#
# Fails if the binary needs a glibc newer than 2.34 (what provided.al2023 ships).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
package=airflow-secrets
max_glibc=2.34

cargo build --profile lambda -p "$package" --bin "$package-bootstrap"

target_dir="${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')}"
binary="$target_dir/lambda/$package-bootstrap"
out_dir="$target_dir/lambda/$package"
[ -x "$binary" ] || { echo "error: $binary was not built" >&2; exit 1; }

# provided.al2023 has glibc 2.34; a newer symbol version would fail at start-up there.
needed="$(objdump -T "$binary" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)"
if [ "$(printf '%s\n%s\n' "$needed" "$max_glibc" | sort -V | tail -1)" != "$max_glibc" ]; then
    echo "error: bootstrap needs GLIBC_$needed, provided.al2023 has $max_glibc" >&2
    exit 1
fi

mkdir -p "$out_dir"
staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT
cp "$binary" "$staging/bootstrap"
chmod 0755 "$staging/bootstrap"
rm -f "$out_dir/bootstrap.zip"
# python3's zipfile (rather than the zip CLI) so the 0755 mode is set explicitly and
# the archive is the same on every machine: fixed timestamp, one entry.
python3 - "$staging/bootstrap" "$out_dir/bootstrap.zip" <<'PY'
import sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
info.external_attr = (0o100755 << 16)
info.create_system = 3  # Unix, so the mode is honoured
info.compress_type = zipfile.ZIP_DEFLATED
with open(src, "rb") as f, zipfile.ZipFile(dst, "w") as z:
    z.writestr(info, f.read(), compresslevel=9)
PY

size=$(stat -c %s "$out_dir/bootstrap.zip")
echo "bootstrap: $(stat -c %s "$binary") bytes, needs GLIBC_$needed (limit $max_glibc)"
echo "$out_dir/bootstrap.zip: $size bytes"
