"""checkov on every template the project renders, against SECURITY.md's justifications.

    $AIRFLOW_STACK_CACHE/checkov-venv/bin/python tests/security_scan/scan.py

Run by tests/run-all.sh (phase "security scan") with the python of checkov's own
virtualenv (tests/security_scan/requirements.txt pins the version). It:

1. renders stacks/*.yaml and every variation of tests/cfn_lint.rs (read from that file,
   so the list of variations lives in one place) with `airflow-stack synth`, in the
   format cfn_lint.rs renders each one;
2. runs checkov once over the directory (`--framework cloudformation`, no network:
   `--skip-download`, no update check);
3. compares every failed check (template, resource logical id, check id) with the YAML
   block of SECURITY.md (the one after `<!-- security-scan: justifications -->`).

It prints `security scan: N templates, F failed checks, J justified, U unjustified`
and exits 1 when a finding is not justified, or when a justification (or a resource or
template it names) matches no finding any more: a stale entry would hide the next
regression of a fixed check.

The CLI is $AIRFLOW_STACK_CLI, or $CARGO_TARGET_DIR/debug/airflow-stack (run-all.sh has
built it by then). `--keep DIR` keeps the rendered templates and checkov's report there.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml  # PyYAML, a dependency of checkov

ROOT = Path(__file__).resolve().parents[2]
SECURITY_MD = ROOT / "SECURITY.md"
CFN_LINT_RS = ROOT / "tests" / "cfn_lint.rs"
MARKER = "<!-- security-scan: justifications -->"
STATUSES = {"justified", "accepted-until-fixed"}


# --- what to render ---------------------------------------------------------------

_RUST_STR = r'"((?:[^"\\]|\\.)*)"'


def _unescape(s: str) -> str:
    """A Rust string literal's escapes; cfn_lint.rs uses \\n, \\" and \\\\ only."""
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            nxt = s[i + 1]
            mapped = {"n": "\n", '"': '"', "\\": "\\", "t": "\t", "'": "'"}.get(nxt)
            if mapped is None:
                raise SystemExit(f"error: {CFN_LINT_RS}: unsupported escape \\{nxt} in a variation")
            out.append(mapped)
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def cfn_lint_variations() -> tuple[str, list[tuple[str, str, str]]]:
    """`BASE` and `variations()` of tests/cfn_lint.rs: `(name, stack file additions, format)`.

    Strict: anything inside `vec![...]` that is not a `("..", "..", ".."),` tuple is an
    error, so a change of that file's shape fails here instead of dropping variations.
    """
    text = CFN_LINT_RS.read_text()
    base = re.search(r'const BASE: &str = ' + _RUST_STR + ';', text)
    body = re.search(r"fn variations\(\)[^{]*\{\s*vec!\[(.*?)\n\s*\]\s*\n\}", text, re.S)
    if not base or not body:
        raise SystemExit(f"error: {CFN_LINT_RS}: cannot find BASE and variations(); update scan.py")
    tuple_re = re.compile(r"\(\s*" + r",\s*".join([_RUST_STR] * 3) + r"\s*\),?")
    out, pos, src = [], 0, body.group(1)
    for m in tuple_re.finditer(src):
        if src[pos:m.start()].strip():
            raise SystemExit(f"error: {CFN_LINT_RS}: unparsed text in variations(): {src[pos:m.start()].strip()[:80]!r}")
        out.append(tuple(_unescape(g) for g in m.groups()))
        pos = m.end()
    if src[pos:].strip():
        raise SystemExit(f"error: {CFN_LINT_RS}: unparsed text in variations(): {src[pos:].strip()[:80]!r}")
    if len(out) < 8:
        raise SystemExit(f"error: {CFN_LINT_RS}: only {len(out)} variations parsed")
    return _unescape(base.group(1)), out


def find_cli() -> Path:
    if os.environ.get("AIRFLOW_STACK_CLI"):
        cli = Path(os.environ["AIRFLOW_STACK_CLI"])
    else:
        cache = Path(os.environ.get("AIRFLOW_STACK_CACHE", Path.home() / ".cache" / "airflow-stack"))
        target = Path(os.environ.get("CARGO_TARGET_DIR", cache / "target"))
        cli = target / "debug" / "airflow-stack"
    if not cli.is_file():
        raise SystemExit(f"error: {cli} is missing: build it with `cargo build -p airflow-stack` (tests/run-all.sh does)")
    return cli


def render_all(cli: Path, out: Path, specs: Path) -> list[Path]:
    """Every template tests/cfn_lint.rs lints: the example stacks in JSON and YAML, then
    each variation in its format."""
    jobs: list[tuple[Path, str, Path]] = []
    for fmt in ("json", "yaml"):
        for stack in sorted(glob.glob(str(ROOT / "stacks" / "*.yaml"))):
            jobs.append((Path(stack), fmt, out / f"{Path(stack).stem}.{fmt}"))
    base, variations = cfn_lint_variations()
    for name, extra, fmt in variations:
        spec = specs / f"{name}.stack.yaml"
        spec.write_text(base + extra)
        jobs.append((spec, fmt, out / f"{name}.{fmt}"))
    names = [j[2].name for j in jobs]
    dup = [n for n, c in collections.Counter(names).items() if c > 1]
    if dup:
        raise SystemExit(f"error: two templates would be named {dup}")
    for spec, fmt, path in jobs:
        r = subprocess.run([str(cli), "synth", "--format", fmt, "--out", str(path), str(spec)],
                           cwd=ROOT, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"error: synth {spec} failed (exit {r.returncode}):\n{r.stderr}")
    return [j[2] for j in jobs]


# --- checkov ----------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    template: str  # file name, e.g. dev.json
    resource: str  # logical id
    rtype: str
    check: str
    name: str

    @property
    def stem(self) -> str:
        return Path(self.template).stem


def run_checkov(templates_dir: Path, expected: list[Path], report: Path) -> list[Finding]:
    checkov = Path(sys.executable).parent / "checkov"
    if not checkov.exists():
        raise SystemExit(f"error: {checkov} is missing: run this with the python of the venv of tests/security_scan/requirements.txt")
    env = dict(os.environ, BC_SKIP_MAPPING="TRUE", CKV_SKIP_PACKAGE_UPDATE_CHECK="TRUE", LOG_LEVEL="WARNING")
    cmd = [str(checkov), "--directory", str(templates_dir), "--framework", "cloudformation",
           "--output", "json", "--compact", "--skip-download", "--soft-fail"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    report.write_text(r.stdout)
    if r.returncode != 0:
        raise SystemExit(f"error: checkov exited {r.returncode}:\n{r.stderr[-4000:]}")
    try:
        data = json.loads(r.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"error: checkov printed no JSON report:\n{r.stdout[:2000]}\n{r.stderr[-4000:]}")
    reports = data if isinstance(data, list) else [data]
    reports = [x for x in reports if x.get("check_type") == "cloudformation"]
    if len(reports) != 1:
        raise SystemExit(f"error: expected one cloudformation report from checkov, got {len(reports)}")
    rep = reports[0]
    if rep["summary"].get("parsing_errors") or rep["results"].get("parsing_errors"):
        raise SystemExit(f"error: checkov could not parse: {rep['results'].get('parsing_errors')}")
    # Every template must have been scanned: a file checkov skipped (not recognized as
    # CloudFormation) would pass silently.
    seen = collections.Counter()
    for kind in ("passed_checks", "failed_checks"):
        for c in rep["results"][kind]:
            seen[Path(c["file_path"]).name] += 1
    unscanned = [p.name for p in expected if seen[p.name] == 0]
    if unscanned:
        raise SystemExit(f"error: checkov reported nothing for {unscanned}")
    findings = []
    for c in rep["results"]["failed_checks"]:
        rtype, _, logical = c["resource"].partition(".")
        findings.append(Finding(Path(c["file_path"]).name, logical, rtype, c["check_id"], c["check_name"]))
    return sorted(set(findings), key=lambda f: (f.template, f.resource, f.check))


# --- justifications ---------------------------------------------------------------

@dataclass
class Entry:
    check: str
    resources: list[str] | None  # None: all
    templates: list[str] | None  # None: all (template file stems)
    status: str
    reason: str
    matched: list[Finding] = field(default_factory=list)

    def covers(self, f: Finding) -> bool:
        return (f.check == self.check
                and (self.resources is None or f.resource in self.resources)
                and (self.templates is None or f.stem in self.templates))


def load_justifications(text: str) -> list[Entry]:
    at = text.find(MARKER)
    if at < 0 or text.find(MARKER, at + 1) >= 0:
        raise SystemExit(f"error: {SECURITY_MD} must hold the marker {MARKER} exactly once")
    m = re.match(r"\s*```ya?ml\n(.*?)\n```", text[at + len(MARKER):], re.S)
    if not m:
        raise SystemExit(f"error: {SECURITY_MD}: a ```yaml block must follow {MARKER}")
    raw = yaml.safe_load(m.group(1))
    if not isinstance(raw, list):
        raise SystemExit(f"error: {SECURITY_MD}: the justifications block must be a YAML list")
    entries = []
    for i, e in enumerate(raw):
        where = f"{SECURITY_MD} justification #{i + 1} ({e.get('check') if isinstance(e, dict) else e!r})"
        if not isinstance(e, dict) or set(e) - {"check", "resources", "templates", "status", "reason"}:
            raise SystemExit(f"error: {where}: keys are check, resources, templates, status, reason")
        if not re.fullmatch(r"CKV2?_AWS_\d+", str(e.get("check", ""))):
            raise SystemExit(f"error: {where}: check must be a checkov id such as CKV_AWS_158")
        if e.get("status") not in STATUSES:
            raise SystemExit(f"error: {where}: status must be one of {sorted(STATUSES)}")
        if len(str(e.get("reason", "")).split()) < 8:
            raise SystemExit(f"error: {where}: the reason must say why, in words (8 or more)")

        def names(key: str) -> list[str] | None:
            v = e.get(key, "all")
            if v == "all":
                return None
            if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
                raise SystemExit(f"error: {where}: {key} must be `all` or a list of names")
            return v

        entries.append(Entry(e["check"], names("resources"), names("templates"), e["status"], e["reason"]))
    return entries


def compare(findings: list[Finding], entries: list[Entry]) -> tuple[list[Finding], list[str]]:
    """`(unjustified findings, stale entries)`."""
    for e in entries:
        e.matched = []
    unjustified = []
    for f in findings:
        hits = [e for e in entries if e.covers(f)]
        for e in hits:
            e.matched.append(f)
        if not hits:
            unjustified.append(f)
    stale = []
    for e in entries:
        label = f"{e.check} (resources: {e.resources or 'all'}; templates: {e.templates or 'all'})"
        if not e.matched:
            stale.append(f"{label}: matches no finding")
            continue
        for r in e.resources or []:
            if not any(f.resource == r for f in e.matched):
                stale.append(f"{label}: resource {r} has no such finding")
        for t in e.templates or []:
            if not any(f.stem == t for f in e.matched):
                stale.append(f"{label}: template {t} has no such finding")
    return unjustified, stale


def same_in_both_formats(findings: list[Finding], templates: list[Path]) -> list[str]:
    """A stack rendered as JSON and as YAML must have the same findings: a difference
    means checkov read one of the two formats differently (or not at all)."""
    by_template = collections.defaultdict(set)
    for f in findings:
        by_template[f.template].add((f.resource, f.check))
    stems = {p.stem for p in templates if p.suffix == ".json"} & {p.stem for p in templates if p.suffix == ".yaml"}
    return [f"{stem}.json and {stem}.yaml differ: {sorted(by_template[stem + '.json'] ^ by_template[stem + '.yaml'])}"
            for stem in sorted(stems) if by_template[stem + ".json"] != by_template[stem + ".yaml"]]


def gate_can_fail(findings: list[Finding], entries: list[Entry]) -> None:
    """The comparison itself, proved able to fail on this run's own data: without a
    justification that matches findings, those findings become unjustified, and a
    justification for a check that nothing fails is stale. (compare() is run again
    afterwards: it resets what each entry matched.)"""
    before, _ = compare(findings, entries)
    used = next((e for e in entries if e.matched), None)
    if used is not None:
        after, _ = compare(findings, [e for e in entries if e is not used])
        new = set(after) - set(before)
        assert new and all(used.covers(f) for f in new), "dropping a justification must leave findings unjustified"
    bogus = Entry("CKV_AWS_999999", None, None, "justified", "a check that no template fails")
    _, stale = compare(findings, entries + [bogus])
    assert any(s.startswith("CKV_AWS_999999") for s in stale), "an entry matching nothing must be stale"


# --- main -------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keep", type=Path, help="write the templates and checkov's JSON report here")
    args = ap.parse_args()
    started = time.monotonic()
    entries = load_justifications(SECURITY_MD.read_text())
    cli = find_cli()
    with tempfile.TemporaryDirectory(prefix="security-scan-") as tmp:
        work = args.keep or Path(tmp)
        templates_dir, specs = work / "templates", work / "stacks"
        for d in (templates_dir, specs):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
        templates = render_all(cli, templates_dir, specs)
        rendered = time.monotonic()
        findings = run_checkov(templates_dir, templates, work / "checkov.json")
    scanned = time.monotonic()

    gate_can_fail(findings, entries)
    unjustified, stale = compare(findings, entries)
    mismatched = same_in_both_formats(findings, templates)

    per_check = collections.defaultdict(lambda: [0, set(), ""])
    for f in findings:
        per_check[f.check][0] += 1
        per_check[f.check][1].add(f.template)
        per_check[f.check][2] = f.name
    status = collections.defaultdict(set)
    for e in entries:
        status[e.check].add(e.status)
    missing = collections.Counter(f.check for f in unjustified)
    print(f"checkov findings per check ({len(templates)} templates: {', '.join(t.name for t in templates)}):")
    for check in sorted(per_check, key=lambda c: (-per_check[c][0], c)):
        n, tpls, name = per_check[check]
        label = ", ".join(sorted(status[check]) + ([f"{missing[check]} UNJUSTIFIED"] if missing[check] else []))
        print(f"  {check:<12} {n:>4} in {len(tpls):>2} templates  [{label}]  {name}")
    for f in unjustified:
        print(f"UNJUSTIFIED: {f.template}: {f.rtype} {f.resource}: {f.check} {f.name}")
    for s in stale:
        print(f"STALE JUSTIFICATION in SECURITY.md: {s}")
    for m in mismatched:
        print(f"FORMAT MISMATCH: {m}")
    justified = len(findings) - len(unjustified)
    print(f"(render {rendered - started:.1f}s, checkov {scanned - rendered:.1f}s)")
    print(f"security scan: {len(templates)} templates, {len(findings)} failed checks, "
          f"{justified} justified, {len(unjustified)} unjustified")
    if unjustified or stale or mismatched:
        print("security scan FAILED: fix each finding in the template or justify it in SECURITY.md; "
              "remove justifications that match nothing", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
