#!/usr/bin/env bash
# Refreshes codegen/schemas/ from the CloudFormation resource provider schemas that a
# pinned cfn-lint release ships (cfnlint/data/schemas/), for the types listed in
# codegen/resource-types.txt. Then run `cargo run -p cfn-codegen` to regenerate
# src/cfn/l1.
#
#   codegen/refresh-schemas.sh            # the version recorded in codegen/schemas/SOURCE
#   codegen/refresh-schemas.sh 1.59.0     # move to another cfn-lint release
#
# cfn-lint is installed with pip into a temporary venv, so nothing else on the machine
# changes. The schemas are the us-east-1 ones (providers/us-east-1.json maps a type to
# resources/<hash>.json). cfn-lint also ships JSON patches (patches/extensions/all/<type>/)
# that its release process applies to those files; the script checks each patch of a
# listed type against the shipped file and applies it when it is not applied yet, so the
# vendored copy is what cfn-lint validates against either way.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
version=${1:-$(awk '$1 == "cfn-lint" { print $2 }' "$here/schemas/SOURCE")}
if [[ -z "$version" ]]; then
    echo "no cfn-lint version given and none recorded in $here/schemas/SOURCE" >&2
    exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet --disable-pip-version-check "cfn-lint==$version"

"$tmp/venv/bin/python" - "$here" "$version" <<'PY'
import copy
import json
import pathlib
import sys

import cfnlint
import jsonpatch  # a dependency of cfn-lint

codegen, version = pathlib.Path(sys.argv[1]), sys.argv[2]
region = "us-east-1"
data = pathlib.Path(cfnlint.__file__).parent / "data" / "schemas"
providers = json.loads((data / "providers" / f"{region}.json").read_text())

types = []
for line in (codegen / "resource-types.txt").read_text().splitlines():
    words = line.split("#", 1)[0].split()
    if words:
        types.append(words[0])

out = codegen / "schemas"
out.mkdir(exist_ok=True)
wanted = set()
for type_name in types:
    if type_name not in providers:
        sys.exit(f"{type_name} is not in cfn-lint {version}'s {region} schemas")
    raw = (data / "resources" / f"{providers[type_name]}.json").read_bytes()
    schema = json.loads(raw)
    stem = type_name.replace("::", "_").lower()
    for patch_file in sorted((data / "patches" / "extensions").glob(f"*/{stem}/*.json")):
        if patch_file.parent.parent.name not in ("all", region):
            continue
        patched = jsonpatch.JsonPatch(json.loads(patch_file.read_text())).apply(
            copy.deepcopy(schema)
        )
        rel = patch_file.relative_to(data)
        if patched == schema:
            print(f"{type_name}: {rel} is already applied")
        else:
            print(f"{type_name}: applying {rel}")
            schema = patched
            raw = (json.dumps(schema, indent=1, sort_keys=True) + "\n").encode()
    name = f"{stem}.json"
    (out / name).write_bytes(raw)
    wanted.add(name)

for stale in out.glob("*.json"):
    if stale.name not in wanted:
        print(f"removing {stale.name}: no longer listed")
        stale.unlink()

schema_date = json.loads((data / "version.json").read_text()).get("schema_date", "unknown")
(out / "SOURCE").write_text(
    "# Written by codegen/refresh-schemas.sh: where the schemas in this folder come from.\n"
    f"cfn-lint {version}\n"
    f"schema_date {schema_date}\n"
    f"region {region}\n"
)
print(f"{len(wanted)} schemas from cfn-lint {version} (schema date {schema_date})")
PY
