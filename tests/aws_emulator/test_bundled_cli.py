"""A CLI built with the Lambda zips inside (cargo feature `bundled-lambdas`, build.rs)
deploys with nothing else: no zips in its target dir, no cargo-lambda, so no build is
possible, and none is attempted. tests/run-all.sh builds that CLI (a debug build: the
bundle is the same in a release build) and keeps it aside:

    AIRFLOW_STACK_BUNDLE_DIR=$CARGO_TARGET_DIR/lambda/<architecture> \\
        cargo build -p airflow-stack --features bundled-lambdas
    cp $CARGO_TARGET_DIR/debug/airflow-stack $CARGO_TARGET_DIR/bundled/airflow-stack

    $AIRFLOW_STACK_VENV/bin/python -m pytest -q -p no:cacheprovider \\
        tests/aws_emulator/test_bundled_cli.py
"""

import hashlib
import os
import subprocess

from test_template_mutations import (ASSET_LAMBDAS, ROOT, TARGET, architecture, aws,
                                     reset, synth, zip_path)

BUNDLED_CLI = os.path.join(TARGET, "bundled", "airflow-stack")


def test_a_cli_with_bundled_zips_deploys_without_a_build(endpoint, tmp_path):
    assert os.access(BUNDLED_CLI, os.X_OK), (
        f"{BUNDLED_CLI} is missing: AIRFLOW_STACK_BUNDLE_DIR={TARGET}/lambda/<arch> cargo build "
        "-p airflow-stack --features bundled-lambdas, then copy target/debug/airflow-stack "
        "there (tests/run-all.sh does)")
    reset(endpoint)
    empty_target = tmp_path / "target"
    empty_target.mkdir()
    path = [d for d in os.environ["PATH"].split(os.pathsep)
            if not os.path.exists(os.path.join(d, "cargo-lambda"))]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k not in ("AIRFLOW_STACK_VENV",
                                                      "AIRFLOW_STACK_ASSETS_DIR")}
    env.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                "CARGO_TARGET_DIR": str(empty_target), "PATH": os.pathsep.join(path)})

    def cli(*args):
        out = subprocess.run([BUNDLED_CLI, *args], cwd=ROOT, env=env,
                             stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=180)
        print(f"$ airflow-stack {' '.join(args)}\n{out.stdout}{out.stderr}")
        return out

    assert cli("bootstrap", "stacks/dev.yaml").returncode == 0
    out = cli("deploy", "stacks/dev.yaml", "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Lambda zips missing" not in out.stderr
    assert not any(empty_target.iterdir()), "deploy wrote into the target dir"

    # What it uploaded are the bytes lambdas/build.sh wrote (same content-hash keys).
    template = synth("stacks/dev.yaml")
    s3 = aws(endpoint, "s3", "us-east-1")
    bootstrap = aws(endpoint, "cloudformation", "us-east-1").describe_stacks(
        StackName="airflow-stack-bootstrap")["Stacks"][0]
    (bucket,) = [o["OutputValue"] for o in bootstrap["Outputs"]
                 if o["OutputKey"] == "AssetsBucket"]
    uploaded = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="assets/")
                .get("Contents", [])}
    for parameter in ASSET_LAMBDAS:
        if parameter in template["Parameters"]:
            with open(zip_path(template, parameter), "rb") as f:
                key = f"assets/{hashlib.sha256(f.read()).hexdigest()}.zip"
            assert key in uploaded, (parameter, architecture(template), uploaded)
