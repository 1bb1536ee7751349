"""The example tracked function as a user's own Lambda function (issue 16), played locally.

A team deploys its functions with its own tooling; the stack only lists them under
`airflow.lambda_functions`, which grants the worker and triggerer roles what the tracked
operator needs. So the harness, as that team, creates the example function
(crates/tracked-example) in the AWS emulator with the administrator's key: a role that may
write its log group, the debug build as `bootstrap`, a timeout, and the provider README's
`MaximumRetryAttempts: 0` (Airflow owns retries). The emulator runs it the way it runs the
stack's own Lambdas and writes its output to `/aws/lambda/<name>`.
"""

from __future__ import annotations

import io
import json
import os
import platform
import re
import zipfile
from pathlib import Path

# (name, timeout in seconds): the cases use the short one; the load waits on the long one.
FUNCTIONS = (("e2e-tracked-example", 30), ("e2e-tracked-slow", 240))
ROLE = "e2e-tracked-example-role"
ACCOUNT = "123456789012"


def with_tracked_lambdas(stack_file: Path) -> Path:
    """`stack_file` with `airflow.lambda_functions` listing the example functions,
    rewritten in place."""
    text = stack_file.read_text()
    assert "lambda_functions:" not in text, f"{stack_file} already lists lambda_functions"
    names = ", ".join(name for name, _ in FUNCTIONS)
    block = f"  lambda_functions: [{names}]   # e2e: tests/e2e/harness/tracked_lambda.py\n"
    text, n = re.subn(r"^airflow:\n", "airflow:\n" + block, text, count=1, flags=re.M)
    assert n == 1, f"{stack_file} has no airflow block"
    stack_file.write_text(text)
    return stack_file


def example_binary() -> Path:
    """The example's debug build (tests/run-all.sh builds it and sets the variable)."""
    path = os.environ.get("AIRFLOW_STACK_TRACKED_EXAMPLE")
    assert path, ("AIRFLOW_STACK_TRACKED_EXAMPLE is not set: run `bash tests/run-all.sh`, or "
                  "`cargo build -p airflow-tracked-example` and point it at "
                  "$CARGO_TARGET_DIR/debug/airflow-tracked-example-bootstrap")
    binary = Path(path)
    assert binary.is_file(), f"{binary} does not exist: cargo build -p airflow-tracked-example"
    return binary


def _zip_bootstrap(binary: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o100755 << 16
        z.writestr(info, binary.read_bytes())
    return buf.getvalue()


def _role_policy(region: str) -> dict:
    groups = [f"arn:aws:logs:{region}:{ACCOUNT}:log-group:/aws/lambda/{name}"
              for name, _ in FUNCTIONS]
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": [g for group in groups for g in (group, f"{group}:*")]}]}


def create_example_functions(aws) -> list[str]:
    """Creates the example functions (once per emulator); returns their names."""
    lam = aws.client("lambda")
    existing = {f["FunctionName"] for f in lam.list_functions()["Functions"]}
    names = [name for name, _ in FUNCTIONS]
    if set(names) <= existing:
        return names
    iam = aws.client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole"}]}
    role_arn = iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(trust)
                               )["Role"]["Arn"]
    iam.put_role_policy(RoleName=ROLE, PolicyName="logs",
                        PolicyDocument=json.dumps(_role_policy(aws.region)))
    code = _zip_bootstrap(example_binary())
    arch = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
    for name, timeout in FUNCTIONS:
        lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=role_arn,
                            Handler="bootstrap", Code={"ZipFile": code}, Timeout=timeout,
                            MemorySize=128, Architectures=[arch])
        lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    return names


def function_lines(aws, name: str, needle: str) -> list[str]:
    """Every line of `name`'s log group holding `needle`, read as the administrator."""
    logs = aws.client("logs")
    lines, token = [], None
    while True:
        kwargs = {"logGroupName": f"/aws/lambda/{name}", "filterPattern": f'"{needle}"'}
        if token:
            kwargs["nextToken"] = token
        page = logs.filter_log_events(**kwargs)
        lines += [e["message"] for e in page.get("events", [])]
        token = page.get("nextToken")
        if not token:
            return lines
