"""Issue 11, defect 7 ("ordering races"): the real synthesized templates against the
strict emulator.

1. stacks/dev.yaml and stacks/prod.yaml deployed by the CLI itself (`bootstrap`, then
   `deploy --yes`) reach CREATE_COMPLETE with the real Rust Lambdas, and no call of any
   identity the emulator ran (the Lambdas' roles, the task execution role) was denied.
2. Mutations that re-introduce defect 7: one dependency group removed from the DependsOn
   of `Migration` (the Custom::AirflowMigration that runs `airflow db migrate` as a
   one-off ECS task). The emulator runs custom resources as early as their dependencies
   allow (server.dependency_order), and checks the task's network path when it starts
   (tasks.py: the default route of each subnet, the NAT gateway's own route, the
   database's ingress rule from the task's security group). So a missing DependsOn fails
   here every time, where on AWS it fails sometimes: "CloudFormation creates, updates, and
   deletes resources in parallel when it can"
   (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-attribute-dependson.html).
   Each test first deploys the template unmutated the same way, so it is the mutation
   that fails the stack.

ECS services are not covered the same way: the emulator starts no service tasks (only
RunTask's one-off tasks are emulated), so a service's DependsOn on its routes and ingress
rules cannot fail here.

    $AIRFLOW_STACK_VENV/bin/python -m pytest -q -p no:cacheprovider \
        tests/aws_emulator/test_template_mutations.py
"""

import collections
import copy
import functools
import hashlib
import json
import os
import subprocess
import time
import urllib.request

import boto3
import pytest
import yaml
from botocore.config import Config

from harness import calls, events, wait

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.environ.get("AIRFLOW_STACK_CACHE", os.path.expanduser("~/.cache/airflow-stack"))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(CACHE, "target"))
CLI = os.path.join(TARGET, "debug", "airflow-stack")
# lambdas/build.sh writes <target>/lambda/<architecture>/<crate>/bootstrap.zip; deploy
# takes each zip for the architecture of the function using it (src/aws/assets.rs).
ASSETS_ROOT = os.path.join(TARGET, "lambda")
# Template parameter -> Lambda crate, as ASSET_LAMBDAS in src/stack/assets.rs; deploy
# passes the bucket and `assets/<sha256 of the zip>.zip` for each one the template
# declares (src/aws/assets.rs `parameters`, src/cli/deploy.rs `prepare`).
ASSET_LAMBDAS = {"SecretsFunctionCodeKey": "airflow-secrets",
                 "MigrationFunctionCodeKey": "airflow-migration",
                 "ScalerFunctionCodeKey": "airflow-scaler"}
# CloudFormation's TemplateBody limit; above it the CLI passes a TemplateURL
# (MAX_INLINE_TEMPLATE_BYTES in src/cfn/mod.rs; "Quotas", CloudFormation User Guide).
MAX_INLINE_TEMPLATE_BYTES = 51_200
DEPLOY_TIMEOUT_S = 180


@pytest.fixture(scope="module", autouse=True)
def built():
    """The CLI and the Lambda zips are build products: missing ones fail (never skip)
    with the command that builds them."""
    assert os.access(CLI, os.X_OK), (
        f"{CLI} is missing: `CARGO_TARGET_DIR={TARGET} cargo build -p airflow-stack`")
    for stack_file in ("stacks/dev.yaml", "stacks/prod.yaml"):
        template = synth(stack_file)
        for parameter in asset_keys_needed(template):
            path = zip_path(template, parameter)
            assert os.path.exists(path), (
                f"{path} is missing: `bash lambdas/build.sh --arch {architecture(template)}`")


def architecture(template) -> str:
    """The one architecture of the template's Lambda functions (default x86_64)."""
    found = {(r["Properties"].get("Architectures") or ["x86_64"])[0]
             for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"}
    assert len(found) == 1, f"the template's functions run on {found}"
    return found.pop()


def asset_keys_needed(template) -> list:
    return [p for p in ASSET_LAMBDAS if p in template["Parameters"]]


def zip_path(template, parameter) -> str:
    return os.path.join(ASSETS_ROOT, architecture(template), ASSET_LAMBDAS[parameter],
                        "bootstrap.zip")


def reset(endpoint):
    """moto's state and the emulator's identities, calls, task and schema state."""
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset",
                                                  method="POST")).read()


def aws(endpoint, service, region):
    """An operator client (the unregistered key `testing`: not restricted)."""
    return boto3.client(service, endpoint_url=endpoint, region_name=region,
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(s3={"addressing_style": "path"},
                                      retries={"total_max_attempts": 1}))


@functools.lru_cache(maxsize=None)
def spec(stack_file):
    with open(os.path.join(ROOT, stack_file)) as f:
        return yaml.safe_load(f)


@functools.lru_cache(maxsize=None)
def _synth(stack_file) -> str:
    out = subprocess.run([CLI, "synth", stack_file], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, f"synth {stack_file}: {out.stderr}"
    return out.stdout


def synth(stack_file) -> dict:
    """A fresh copy of the synthesized template (the tests mutate it)."""
    return json.loads(_synth(stack_file))


def version_parameter(key_parameter: str) -> str:
    """The version parameter of an asset (src/stack/assets.rs ASSET_LAMBDAS)."""
    return key_parameter.removesuffix("CodeKey") + "CodeVersion"


def asset_keys(template) -> dict:
    """The asset parameters deploy passes for this template (bucket excepted)."""
    keys = {}
    for parameter in asset_keys_needed(template):
        with open(zip_path(template, parameter), "rb") as f:
            keys[parameter] = f"assets/{hashlib.sha256(f.read()).hexdigest()}.zip"
    return keys


def stack_tags(stack_file) -> dict:
    """src/cli/deploy.rs `stack_tags`: the spec's tags and airflow-stack:stack."""
    s = spec(stack_file)
    return {**(s.get("tags") or {}), "airflow-stack:stack": s["name"]}


def run_cli(endpoint, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                # deploy's default: <target>/lambda/<architecture>; never a build here
                # (the `built` fixture checked the zips are there)
                "CARGO_TARGET_DIR": TARGET})
    env.pop("AIRFLOW_STACK_ASSETS_DIR", None)
    return subprocess.run([CLI, *args], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=DEPLOY_TIMEOUT_S)


def users_hosted_zone(endpoint, stack_file):
    """`access.hosted_zone_id` names the user's zone, which exists before the stack (the
    certificate is validated and the alias record written in it). Here the zone is made
    for the domain's parent and its id returned with the one the stack file names:
    (named, real), or None for a stack file without one."""
    access = spec(stack_file).get("access") or {}
    if not access.get("hosted_zone_id"):
        return None
    parent = access["domain"].split(".", 1)[1]
    zone = aws(endpoint, "route53", spec(stack_file)["region"]).create_hosted_zone(
        Name=parent, CallerReference=f"{stack_file}-{time.time()}")
    return access["hosted_zone_id"], zone["HostedZone"]["Id"].rsplit("/", 1)[-1]


def with_users_zone(endpoint, stack_file, directory):
    """`stack_file` with the zone `users_hosted_zone` made (a copy naming it), or as is."""
    zone = users_hosted_zone(endpoint, stack_file)
    if zone is None:
        return stack_file
    with open(os.path.join(ROOT, stack_file)) as f:
        text = f.read()
    copy_path = os.path.join(str(directory), os.path.basename(stack_file))
    with open(copy_path, "w") as f:
        f.write(text.replace(zone[0], zone[1]))
    return copy_path


def create_stack(endpoint, stack_file, template):
    """What `airflow-stack bootstrap` + `deploy` do, with a template of our own: a fresh
    emulator, the assets bucket with the zips under their content-hash keys, a CREATE
    change set with the same parameters, tags and capabilities, executed and followed by
    stack id. Returns (cfn client, final stack)."""
    reset(endpoint)
    zone = users_hosted_zone(endpoint, stack_file)
    if zone is not None:
        template = json.loads(json.dumps(template).replace(zone[0], zone[1]))
    region, name = spec(stack_file)["region"], spec(stack_file)["name"]
    s3 = aws(endpoint, "s3", region)
    bucket = "airflow-stack-bootstrap-assets-test"
    location = {} if region == "us-east-1" else {
        "CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=bucket, **location)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    parameters = {"AssetsBucket": bucket, **asset_keys(template)}
    for parameter, key in list(parameters.items()):
        if parameter != "AssetsBucket":
            with open(zip_path(template, parameter), "rb") as f:
                put = s3.put_object(Bucket=bucket, Key=key, Body=f.read())
            # deploy pins each function's code to the object version it verified
            parameters[version_parameter(parameter)] = put["VersionId"]
    body = json.dumps(template, separators=(",", ":"))
    source = {"TemplateBody": body}
    if len(body) > MAX_INLINE_TEMPLATE_BYTES:  # src/cli/deploy.rs `change_set`
        key = f"templates/{hashlib.sha256(body.encode()).hexdigest()}.json"
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode(),
                      ContentType="application/json")
        source = {"TemplateURL": f"{endpoint}/{bucket}/{key}"}
    cfn = aws(endpoint, "cloudformation", region)
    change_set = cfn.create_change_set(
        StackName=name, ChangeSetName=f"airflow-stack-{name}-{int(time.time() * 1000)}",
        ChangeSetType="CREATE", Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Tags=[{"Key": k, "Value": v} for k, v in stack_tags(stack_file).items()], **source)
    cfn.get_waiter("change_set_create_complete").wait(
        ChangeSetName=change_set["Id"], WaiterConfig={"Delay": 1})
    cfn.execute_change_set(ChangeSetName=change_set["Id"])
    stack, _ = wait(cfn, change_set["StackId"], timeout=DEPLOY_TIMEOUT_S)
    return cfn, stack


def failures(cfn, stack_id):
    return [(logical, reason) for logical, status, reason in events(cfn, stack_id)
            if status == "CREATE_FAILED"]


def decisions(endpoint, label):
    """Per identity: (allowed, denied) decision counts; printed."""
    counts = collections.defaultdict(lambda: [0, 0])
    for entry in calls(endpoint):
        counts[entry["identity"]][0 if entry["allowed"] else 1] += 1
    for identity, (allowed, denied) in sorted(counts.items()):
        print(f"DECISIONS {label}: {identity}: {allowed} allowed, {denied} denied")
    return counts


def denied(endpoint):
    return [(c["identity"], c["action"], c["resource"], c["reason"])
            for c in calls(endpoint) if not c["allowed"]]


def assert_dependencies_came_first(cfn, stack_id, template):
    """Every DependsOn of Migration was complete before Migration started."""
    log = events(cfn, stack_id)
    started = next(i for i, (logical, status, _) in enumerate(log)
                   if logical == "Migration" and status == "CREATE_IN_PROGRESS")
    done = {logical for logical, status, _ in log[:started] if status == "CREATE_COMPLETE"}
    assert set(template["Resources"]["Migration"]["DependsOn"]) <= done


# --------------------------------------------------------------------------------------
# 1. the stack files as the CLI deploys them
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack_file", ["stacks/dev.yaml", "stacks/prod.yaml"])
def test_the_cli_deploys_the_stack_file(endpoint, stack_file, tmp_path):
    reset(endpoint)
    stack_file = with_users_zone(endpoint, stack_file, tmp_path)
    name, region = spec(stack_file)["name"], spec(stack_file)["region"]
    started = time.time()
    boot = run_cli(endpoint, "bootstrap", stack_file)
    assert boot.returncode == 0, boot.stdout + boot.stderr
    out = run_cli(endpoint, "deploy", stack_file, "--yes")
    print(f"MEASURE bootstrap + deploy of {stack_file}: {time.time() - started:.1f}s")
    cli_log = (out.stdout + out.stderr)[-3000:]

    cfn = aws(endpoint, "cloudformation", region)
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", (failures(cfn, stack["StackId"]),
                                                       cli_log)
    # The parameters create_stack passes for mutated templates are the CLI's own.
    template = synth(stack_file)
    passed = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert {k: v for k, v in passed.items() if k in ASSET_LAMBDAS} == asset_keys(template)
    assert {k for k in passed if k.endswith("CodeVersion")} == {
        version_parameter(k) for k in asset_keys(template)}
    assert_dependencies_came_first(cfn, stack["StackId"], template)

    counts = decisions(endpoint, stack_file)
    lambdas = [i for i in counts if not i.startswith("ecs-task-execution:")]
    assert f"{name}-migration" in lambdas and any("SecretsFunction" in i for i in lambdas), \
        f"the Lambdas ran without their identities: {sorted(counts)}"
    assert denied(endpoint) == []
    # Last: the CLI's own verdict (it does more after CREATE_COMPLETE, e.g. termination
    # protection for prod).
    assert out.returncode == 0, f"deploy {stack_file} exited {out.returncode}: {cli_log}"


# --------------------------------------------------------------------------------------
# 2. defect 7 re-introduced
# --------------------------------------------------------------------------------------

PUBLIC_PATH = ["PublicDefaultRoute", "PublicSubnet1RouteTableAssociation",
                   "PublicSubnet2RouteTableAssociation"]
PROD_NAT_ROUTES = ["PrivateDefaultRoute1", "PrivateDefaultRoute2",
                   "PrivateSubnet1RouteTableAssociation", "PrivateSubnet2RouteTableAssociation"]

# What the emulator reports (tasks.py) for each kind of missing path, as far as it reaches
# the stack event: the migration Lambda keeps the newest log lines, each cut to 300
# characters, and the whole reason to 1,024 (lambdas/migration/src/reason.rs), so the
# pending resources' logical ids, which come first, are what every reason keeps.
NO_DATABASE = ["exited with code 1", "ERROR! Maximum number of retries (20) reached.",
               "[emulated] the database is unreachable from this task"]
NO_WAY_OUT = ["has no exit code", "ResourceInitializationError: unable to pull secrets",
              "Please check your task network configuration"]

# id: (stack file, DependsOn entries removed from Migration, what the reason must name
# besides the removed logical ids)
MUTATIONS = {
    "dev-without-db-ingress": (
        "stacks/dev.yaml", ["DatabaseFromMigrateIngress"],
        NO_DATABASE + ["DatabaseFromMigrateIngress (AWS::EC2::SecurityGroupIngress)"]),
    "dev-without-public-routes": (
        "stacks/dev.yaml", PUBLIC_PATH,
        NO_WAY_OUT + ["PublicDefaultRoute (AWS::EC2::Route)"]),
    "prod-without-db-ingress": (
        "stacks/prod.yaml", ["DatabaseFromMigrateIngress"],
        NO_DATABASE + ["DatabaseFromMigrateIngress (AWS::EC2::SecurityGroupIngress)"]),
    "prod-without-nat-routes": (
        "stacks/prod.yaml", PROD_NAT_ROUTES,
        NO_WAY_OUT + ["PrivateDefaultRoute1 (AWS::EC2::Route)",
                      "PrivateDefaultRoute2 (AWS::EC2::Route)"]),
    # The NAT gateways' own way out: the private routes are there, but the public subnets
    # the gateways sit in have no route to the internet gateway yet.
    "prod-without-the-nat-gateways-route": (
        "stacks/prod.yaml", PUBLIC_PATH,
        NO_WAY_OUT + ["PublicDefaultRoute (AWS::EC2::Route)"]),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_migration_without_its_dependency_fails(endpoint, mutation):
    stack_file, removed, expected = MUTATIONS[mutation]
    template = synth(stack_file)
    depends_on = template["Resources"]["Migration"]["DependsOn"]
    assert set(removed) <= set(depends_on), f"the template changed: {depends_on}"

    # Unmutated, the same way: it deploys.
    started = time.time()
    cfn, stack = create_stack(endpoint, stack_file, template)
    assert stack["StackStatus"] == "CREATE_COMPLETE", failures(cfn, stack["StackId"])
    assert_dependencies_came_first(cfn, stack["StackId"], template)
    assert denied(endpoint) == []

    mutated = copy.deepcopy(template)
    mutated["Resources"]["Migration"]["DependsOn"] = [d for d in depends_on
                                                      if d not in removed]
    cfn, stack = create_stack(endpoint, stack_file, mutated)
    print(f"MEASURE {mutation}: unmutated + mutated deploy {time.time() - started:.1f}s")
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE", stack["StackStatus"]
    failed = failures(cfn, stack["StackId"])
    assert [logical for logical, _ in failed][:1] == ["Migration"], failed
    reason = failed[0][1]
    print(f"REASON {mutation}: {reason}")
    missing = [piece for piece in expected + removed if piece not in reason]
    assert not missing, f"the reason does not name {missing}: {reason}"
    assert "not created yet when the task ran" in reason
    # The migration ran before what it was missing: the race, not a broken resource.
    log = events(cfn, stack["StackId"])
    failed_at = next(i for i, (logical, status, _) in enumerate(log)
                     if logical == "Migration" and status == "CREATE_FAILED")
    created_before = {logical for logical, status, _ in log[:failed_at]
                      if status == "CREATE_COMPLETE"}
    assert not created_before & set(removed), created_before & set(removed)
    # Nothing was denied: the failure is the network path, not IAM.
    assert denied(endpoint) == []
