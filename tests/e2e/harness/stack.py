"""The synthesized stack, brought up as local processes, held to what AWS enforces.

The harness plays CloudFormation and ECS for one template, and nothing more (see
tests/e2e/README.md for the full list):

* CloudFormation: physical ids (secret ARNs and the bucket in the AWS emulator, log
  groups, the database endpoint name), pseudo parameters, the Create events of the custom
  resources answered by the real secrets Lambda binary, running under its own role.
* ECS: one lab host (network namespace, hostname, cgroup with the task's memory and CPU)
  per task; only the ingress rules of the template's security groups let connections
  in; Cloud Map names resolve to the tasks' addresses; each container's `Secrets` are
  read from Secrets Manager with the task's execution role, and its log stream is
  created with it; the task role is the container's only AWS identity; health checks run
  inside the task on the template's interval, timeout, retries and start period, all the
  time, as ECS runs them.
* The image: the official entrypoint's start-up (harness/entrypoint.py), as the image's
  user (uid 50000, gid 0), with AIRFLOW_HOME of its own per container.

Every other Environment, Secret, Command and HealthCheck value is used as synthesized:
the template's own names and ports (`api-server.airflow:8080`, the database endpoint,
`redis.airflow:6379`) are used unchanged.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import threading
import time
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import infra, netlab
from .procs import Proc, run
from .template import Context, Template

AIRFLOW_USER = (50000, 0)  # the official image's user and group
ENTRYPOINT = Path(__file__).with_name("entrypoint.py")
LAB_CIDR = "10.77.0.0/16"
ACCOUNT = "123456789012"


class Timings:
    def __init__(self):
        self.started = time.monotonic()
        self.phases: list[tuple[str, float]] = []
        self._t = time.monotonic()

    def mark(self, phase: str) -> None:
        now = time.monotonic()
        self.phases.append((phase, now - self._t))
        print(f"[e2e] phase {phase:<34} {now - self._t:7.1f}s  (total {now - self.started:6.1f}s)",
              flush=True)
        self._t = now

    def report(self) -> str:
        lines = [f"  {p:<34} {s:7.1f}s" for p, s in self.phases]
        lines.append(f"  {'total':<34} {time.monotonic() - self.started:7.1f}s")
        return "\n".join(lines)


def airflow_venv_dir(version: str, image_build: bool = False) -> Path:
    """Where the Airflow virtualenv lives: outside /root (mode 700 here), because the
    containers run as the image's user, uid 50000, who must be able to run it. A shape
    with `airflow.build` gets one of its own (`image-build/`), because applying the
    build uninstalls and installs packages (harness/image_build.py): a shape running at
    the same time in another lane (tests/run-all.sh) must not see them come and go."""
    base = Path(os.environ.get("AIRFLOW_STACK_SHARED_CACHE", "/var/cache/airflow-stack"))
    return (base / "image-build" if image_build else base) / f"airflow-{version}"


@contextmanager
def machine_setup_lock():
    """Held while a shape installs Airflow and creates the image's user: two lanes
    (tests/run-all.sh) setting up at once would otherwise both install into one venv or
    both run useradd. flock(2), so a dead holder never blocks the next run."""
    with _machine_lock("airflow-stack-e2e-setup"):
        yield


@contextmanager
def bring_up_lock():
    """Held while a shape migrates and starts its containers until they are healthy: the
    one part of a lane that needs the machine's CPUs all at once (a dozen Airflow
    processes importing Airflow). On Fargate each task has CPUs of its own; here two
    lanes share 2 cores, and two bring-ups at once once left prod's api-servers without
    a listening port after the 210 s ECS allows them (their workers were still importing
    after 2.5 minutes). Tests of the lanes still run side by side."""
    with _machine_lock("airflow-stack-e2e-bring-up"):
        yield


@contextmanager
def _machine_lock(name: str):
    path = Path(f"/run/lock/{name}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_airflow(tools_venv: Path, version: str, image_build: bool = False) -> Path:
    """apache-airflow==version with the celery pin (airflow3.md §12), in a cached venv made
    from Debian's /usr/bin/python3 (pyenv's interpreter is under /root)."""
    venv = airflow_venv_dir(version, image_build)
    marker = venv / ".installed"
    # aiobotocore: the official image's default extras carry it (Airflow's Dockerfile,
    # AIRFLOW_EXTRAS), and the amazon provider's async hooks (deferrable operators, the
    # tracked Lambda trigger) need it; resolved here with the rest, so botocore agrees.
    want = (f"apache-airflow[celery,postgres,redis,amazon,fab]=={version}\n"
            "celery[redis]>=5.5,<5.7\n"
            "apache-airflow-providers-amazon[aiobotocore]\n")
    # Bytecode compiled at install, as pip does by default when an image is built: the
    # components run as the image's user, who cannot write __pycache__ in the venv, so
    # without it every process compiles each module it imports, every start (uv does not
    # compile unless asked). A cold run's ten processes of two lanes doing so on 2 cores
    # took the scheduler over 3 minutes to start: none of its shapes became healthy in
    # 210 s. The marker says so, so a venv installed without it is installed again.
    done = want + "bytecode compiled\n"
    if marker.exists() and marker.read_text() == done:
        return venv
    uv = tools_venv / "bin" / "uv"
    if not uv.exists():
        run([str(tools_venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "uv"],
            timeout=300)
    venv.parent.mkdir(parents=True, exist_ok=True)
    for folder in {venv.parent, airflow_venv_dir(version).parent}:
        os.chmod(folder, 0o755)
    run([str(uv), "venv", "-q", "--clear", "--python", "/usr/bin/python3", "--seed", str(venv)],
        timeout=300)
    run([str(uv), "pip", "install", "-q", "--compile-bytecode",
         "--python", str(venv / "bin" / "python"), *want.split()], timeout=1200)
    out = run([str(venv / "bin" / "python"), "-c",
               "import airflow, celery; print(airflow.__version__, celery.__version__)"]).stdout.split()
    assert out[0] == version, f"installed airflow {out[0]}, wanted {version}"
    assert celery_ok(out[1]), f"celery {out[1]} is outside >=5.5,<5.7 (airflow3.md §12)"
    run(["chmod", "-R", "a+rX", str(venv)])
    marker.write_text(done)
    return venv


def celery_ok(v: str) -> bool:
    major, minor = (int(x) for x in v.split(".")[:2])
    return (major, minor) >= (5, 5) and (major, minor) < (5, 7)


@dataclass
class HealthSpec:
    argv: list[str]
    interval: float
    timeout: float
    retries: int
    start_period: float


@dataclass
class Container:
    """One container of one running task."""
    name: str
    task: "Task"
    definition: dict
    env: dict[str, str]
    argv: list[str]
    user: tuple[int, int] | None
    home: Path
    health: HealthSpec | None
    proc: object | None = None
    status: str = "STARTING"  # ECS health status: UNKNOWN until the first result
    healthy_after: float | None = None
    unhealthy: list[str] = field(default_factory=list)
    started: float = 0.0
    generation: int = 0


@dataclass
class Task:
    """One running ECS task: a lab host and its containers."""
    name: str
    family: str
    service: str | None
    host: object
    containers: dict[str, Container] = field(default_factory=dict)


class LocalStack:
    def __init__(self, *, repo: Path, target_dir: Path, tools_venv: Path, cache: Path,
                 workdir: Path, stack_file: str = "stacks/dev.yaml", enforce_cpu: bool = True,
                 lab_cidr: str = LAB_CIDR):
        """`lab_cidr`: the lab's addresses; stacks up at the same time need distinct ones
        (the operator's route into each lab is its CIDR)."""
        self.repo, self.target_dir, self.tools_venv = repo, target_dir, tools_venv
        self.lab_cidr = lab_cidr
        self.cache, self.workdir, self.stack_file = cache, workdir, stack_file
        self.enforce_cpu = enforce_cpu
        self.timings = Timings()
        self.cli = target_dir / "debug" / "airflow-stack"
        infra.need(str(self.cli), "the airflow-stack CLI (cargo build -p airflow-stack)")
        self.tasks: dict[str, Task] = {}
        self.physical_ids: dict[str, str] = {}  # custom resources, as their Lambda named them
        self.closers: list = []
        self.lab = None
        self.monitor_stop = threading.Event()
        self.lock = threading.Lock()
        self.acknowledged: set[str] = set()
        self.measurements: dict[str, dict] = {}
        self.mutated: set[str] = set()
        self.cloud_map: dict[str, list[str]] = {}  # Cloud Map name -> task addresses
        self.cloud_map_peak: dict[str, int] = {}   # most addresses at once (per roll-out)
        self.rollouts = 0
        self.operator_allowed = False  # the test's path to the REST API, opened once

    # --- template ---------------------------------------------------------------------

    def synth(self) -> None:
        out = run([str(self.cli), "synth", self.stack_file], cwd=str(self.repo)).stdout
        (self.workdir / "template.json").write_text(out)
        self.template = Template.from_json(out)
        _, api = self.template.container("api-server")
        image = api["Image"]  # apache/airflow:3.3.2-python3.12, or the image built in the account
        self.built_image = self.image_build_logical(image)
        if self.built_image:
            # Built from the official image of the stack's Airflow version (airflow.build).
            _, migration = self.template.one_of_type("Custom::AirflowMigration")
            self.airflow_version = migration["Properties"]["AirflowVersion"]
        else:
            assert image.startswith("apache/airflow:"), image
            self.airflow_version = image.split(":", 1)[1].split("-", 1)[0]
        stack_name = _stack_name(self.template)
        self.region = _region(self.repo / self.stack_file)
        self.ctx = Context(region=self.region, stack_name=stack_name, account=ACCOUNT,
                           stack_id=f"arn:aws:cloudformation:{self.region}:{ACCOUNT}:stack/"
                                    f"{stack_name}/{uuid.uuid4()}",
                           template=self.template)
        _, ns = self.template.one_of_type("AWS::ServiceDiscovery::PrivateDnsNamespace")
        self.namespace = ns["Properties"]["Name"]
        self.timings.mark("synth")

    def image_build_logical(self, image) -> str | None:
        """The logical id of the `Custom::ImageBuild` whose `ImageUri` a container's
        image is, or None for an image named in the template."""
        if not isinstance(image, dict):
            return None
        logical, attr = image["Fn::GetAtt"]
        assert attr == "ImageUri", image
        assert self.template.resources[logical]["Type"] == "Custom::ImageBuild", logical
        return logical

    def is_airflow_image(self, image) -> bool:
        """The official Airflow image, or the image built on it in the account."""
        if isinstance(image, dict):
            return self.image_build_logical(image) is not None
        return image.startswith("apache/airflow:")

    def build_image(self) -> None:
        """airflow.build, applied to the local Airflow (harness/image_build.py); the
        containers' image reference resolves to the URI the build would answer."""
        from .image_build import LocalImage
        self.image = LocalImage(self.cli, self.repo, self.stack_file, self.workdir,
                                self.airflow_venv)
        self.image.apply()
        props = self.template.resources[self.built_image]["Properties"]
        self.ctx.getatts[(self.built_image, "ImageUri")] = (
            f"{ACCOUNT}.dkr.ecr.{self.region}.amazonaws.com/{self.ctx.stack_name.lower()}"
            f"-imagerepository:{props['ImageTag']}")

    # --- bring-up ---------------------------------------------------------------------

    def up(self) -> None:
        self.synth()
        with machine_setup_lock():
            self.airflow_venv = ensure_airflow(self.tools_venv, self.airflow_version,
                                               image_build=bool(self.built_image))
            netlab.ensure_user("airflow", *AIRFLOW_USER)
        self.timings.mark(f"install airflow {self.airflow_version}")
        self.image = None
        if self.built_image:
            self.build_image()
            self.timings.mark("image build applied (requirements, plugins)")
        self.lab = netlab.Lab("af", self.lab_cidr, enforce_cpu=self.enforce_cpu)
        self.closers.append(self.lab.close)
        self.apply_ingress_rules(self.template)
        self.aws = infra.Aws(self.tools_venv, self.repo, self.lab, self.workdir, self.region)
        self.s3 = self.aws.client("s3")
        self.sm = self.aws.client("secretsmanager")
        self.create_stack_resources()
        self.register_roles()
        self.lambda_start()
        self.invoke_custom_resource("Custom::AirflowSecrets")
        self.start_db_and_broker()
        self.invoke_custom_resource("Custom::AirflowConnectionUrls")
        self.timings.mark("aws, secrets, database, broker")
        with bring_up_lock():
            self.timings.mark("waited for the other lane's bring-up")
            self.start_airflow()

    def start_airflow(self) -> None:
        """The migration, the DAGs, every service's tasks, healthy; then ECS's health
        checks keep running."""
        self.migrate()
        self.timings.mark("migrate")
        self.push_dags(self.repo / "tests" / "e2e" / "dags")
        self.timings.mark("dags push")
        self.pool = None
        for logical in self.airflow_services():
            if self.scaler_owns_count(logical):
                # ECS's service scheduler, played by the emulator (harness/pool.py).
                from .pool import WorkerPool
                self.pool = WorkerPool(self, logical)
                self.pool.wait_running(int(self.template.resources[logical]["Properties"]
                                           .get("DesiredCount", 1)))
            else:
                self.start_service_tasks(logical)
        self.wait_healthy()
        self.start_health_monitor()
        self.timings.mark("all containers healthy")

    def apply_ingress_rules(self, template: Template) -> None:
        """Each AWS::EC2::SecurityGroupIngress of the template as a lab rule; groups are
        named by their logical ids."""
        for _, rule in template.of_type("AWS::EC2::SecurityGroupIngress").items():
            p = rule["Properties"]
            assert p["FromPort"] == p["ToPort"] and p["IpProtocol"] == "tcp", p
            to_sg, port = _group_of(p["GroupId"]), int(p["FromPort"])
            source = p.get("SourceSecurityGroupId")
            if "CidrIp" in p:  # access.allowed_cidrs / open_to_the_whole_internet
                if p["CidrIp"] == "0.0.0.0/0":
                    self.lab.allow_any(to_sg, port)
                else:
                    self.lab.allow_cidr(to_sg, p["CidrIp"], port)
            elif isinstance(source, str):
                # access.allowed_security_groups: a group of the account, not of this
                # stack; no lab host is in it.
                assert source.startswith("sg-"), p
            else:
                from_sg = _group_of(source)
                assert from_sg, f"ingress rule without a source: {p}"
                self.lab.allow(to_sg, from_sg, port)

    def create_stack_resources(self) -> None:
        """What CloudFormation creates before the custom resources run: the (empty)
        secrets, the bucket, the log groups."""
        for logical, res in self.template.of_type("AWS::SecretsManager::Secret").items():
            props = self.ctx.resolve(res["Properties"])
            assert "SecretString" not in props and "GenerateSecretString" not in props, (
                f"{logical}: secret values must come from the custom resource, not the template")
            arn = self.sm.create_secret(Name=props["Name"],
                                        Description=props.get("Description", ""))["ARN"]
            self.ctx.refs[logical] = arn
        bucket_logical, bucket = self.template.one_of_type("AWS::S3::Bucket")
        name = bucket["Properties"].get("BucketName") or (
            f"{self.ctx.stack_name}-{bucket_logical}-{uuid.uuid4().hex[:12]}".lower())
        location = ({} if self.region == "us-east-1" else
                    {"CreateBucketConfiguration": {"LocationConstraint": self.region}})
        self.s3.create_bucket(Bucket=name, **location)
        self.ctx.refs[bucket_logical] = name
        self.ctx.getatts[(bucket_logical, "Arn")] = f"arn:aws:s3:::{name}"
        self.bucket = name
        logs = self.aws.client("logs")
        for logical, res in self.template.of_type("AWS::Logs::LogGroup").items():
            logs.create_log_group(logGroupName=self.ctx.resolve(res["Properties"]["LogGroupName"]))
        cluster_logical, cluster = self.template.one_of_type("AWS::ECS::Cluster")
        cluster_name = cluster["Properties"].get("ClusterName") or f"{self.ctx.stack_name}-cluster"
        self.aws.client("ecs").create_cluster(clusterName=cluster_name)
        self.cluster_name = cluster_name
        self.ctx.refs[cluster_logical] = cluster_name
        self.ctx.getatts[(cluster_logical, "Arn")] = (
            f"arn:aws:ecs:{self.region}:{ACCOUNT}:cluster/{cluster_name}")

    def register_roles(self) -> None:
        """The roles' policies as the template writes them; identities are registered
        per user (`identity`), so a refusal names the container that made the call."""
        self.role_keys: dict[tuple[str, str], str] = {}
        self.role_policies = _RolePolicies(self.template, self.ctx)

    def identity(self, role: str, user: str, policies: list[dict] | None = None) -> str:
        """The access key of `user` acting as `role` (registered once): a container with
        its task role, ECS with a task's execution role, a Lambda with its role.
        `policies` replaces the role's own (mutation tests re-introduce old policies)."""
        arn = f"arn:aws:iam::{ACCOUNT}:role/{self.ctx.stack_name}-{role}"
        if policies is not None:  # a one-off identity for a mutation
            return self.aws.register(f"{user} ({role})", arn, policies)
        if (role, user) not in self.role_keys:
            self.role_keys[(role, user)] = self.aws.register(f"{user} ({role})", arn,
                                                             self.role_policies[role])
        return self.role_keys[(role, user)]

    def register_role(self, template: Template, logical: str, name: str, ctx: Context | None = None) -> str:
        ctx = ctx or self.ctx
        res = template.resources[logical]
        props = res["Properties"]
        policies = [ctx.resolve(p["PolicyDocument"]) for p in props.get("Policies", [])]
        managed = [ctx.resolve(a) for a in props.get("ManagedPolicyArns", [])]
        assert not managed or logical.startswith("Scaler"), (
            f"{logical}: managed policies {managed}: the local run cannot hold a task to them")
        arn = f"arn:aws:iam::{ACCOUNT}:role/{ctx.stack_name}-{logical}"
        return self.aws.register(name, arn, policies)

    def lambda_start(self) -> None:
        """The secrets Lambda (no VPC: it runs outside the lab, reaching AWS as any Lambda
        does), under its own role."""
        exe = infra.find_secrets_lambda(self.target_dir)
        # Its own ARN, in the stack's account and region: the Lambda refuses requests
        # for stacks elsewhere (lambdas/cfn-custom-resource/src/origin.rs).
        self.runtime = infra.RuntimeApi(function_arn=(
            f"arn:aws:lambda:{self.region}:{ACCOUNT}:function:airflow-secrets"))
        self.responses = infra.ResponseServer()
        self.closers += [self.runtime.close, self.responses.close]
        fn_logical = next(k for k in self.template.of_type("AWS::Lambda::Function")
                          if k.lower().startswith("secrets"))
        fn = self.template.resources[fn_logical]["Properties"]
        role_logical = fn["Role"]["Fn::GetAtt"][0]
        self.secrets_lambda_key = self.identity(role_logical, "secrets-lambda")
        env = {
            "PATH": "/usr/bin:/bin",
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self.runtime.port}",
            "AWS_LAMBDA_FUNCTION_NAME": "airflow-secrets",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.get("MemorySize", 128)),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_ENDPOINT_URL": self.aws.endpoint,
            "AWS_ACCESS_KEY_ID": self.secrets_lambda_key,
            "AWS_SECRET_ACCESS_KEY": "e2e",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }
        env.update(self.ctx.resolve(fn.get("Environment", {}).get("Variables", {})))
        self.lambda_proc = Proc("secrets-lambda", [str(exe)], env,
                                      self.workdir / "secrets-lambda.log")

    def cloudformation_running(self, logical: str, type_: str, status: str) -> None:
        """What DescribeStackResource answers for `logical` of this stack: the harness
        plays CloudFormation, and the Lambda confirms each request with it (as its role
        allows) before doing anything."""
        body = {"stack_id": self.ctx.stack_id, "logical_id": logical, "resource_type": type_,
                "status": status}
        req = urllib.request.Request(self.aws.endpoint + "/_emulator/cfn-running",
                                     method="POST", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200, resp.status

    def invoke_custom_resource(self, type_: str, changes: dict | None = None) -> dict:
        """A Create of the template's `type_` resource, sent as CloudFormation sends it:
        the resource is CREATE_IN_PROGRESS while the Lambda works, CREATE_COMPLETE (or
        CREATE_FAILED) once it has answered. With `changes`, an Update of the created
        resource to its properties with these changed (a deploy of an edited stack
        file), UPDATE_IN_PROGRESS and so on."""
        logical, res = self.template.one_of_type(type_)
        verb = "UPDATE" if changes else "CREATE"
        self.cloudformation_running(logical, type_, f"{verb}_IN_PROGRESS")
        props = self.ctx.resolve(res["Properties"])
        path = f"/cfn/{logical}/{uuid.uuid4().hex}?X-Amz-Signature=e2e"
        event = {
            "RequestType": verb.capitalize(),
            "ServiceToken": props["ServiceToken"],
            "ResponseURL": self.responses.url + path,
            "StackId": self.ctx.stack_id,
            "RequestId": str(uuid.uuid4()),
            "ResourceType": type_,
            "LogicalResourceId": logical,
            "ResourceProperties": {**props, **(changes or {})},
        }
        if changes:
            event["OldResourceProperties"] = props
            event["PhysicalResourceId"] = self.physical_ids[logical]
        kind, body = self.runtime.invoke(event, timeout=120)
        assert kind == "response", f"{logical}: the Lambda reported an error: {body}"
        put = self.responses.wait_put(path, timeout=30)
        self.cloudformation_running(logical, type_, f"{verb}_COMPLETE"
                                    if put["Status"] == "SUCCESS" else f"{verb}_FAILED")
        assert put["Status"] == "SUCCESS", f"{logical}: {put}"
        self.physical_ids[logical] = put["PhysicalResourceId"]
        return put

    def update_custom_resource(self, type_: str, changes: dict) -> dict:
        """See `invoke_custom_resource`."""
        return self.invoke_custom_resource(type_, changes)

    def secret(self, logical: str, key: str | None = None) -> str:
        """A secret's value, or one key of a JSON secret (as the operator)."""
        value = self.sm.get_secret_value(SecretId=self.ctx.refs[logical])["SecretString"]
        return json.loads(value)[key] if key else value

    # --- database and broker ------------------------------------------------------------

    def start_db_and_broker(self) -> None:
        _, urls = self.template.one_of_type("Custom::AirflowConnectionUrls")
        p = urls["Properties"]
        db_logical, db_groups = self.database_resource()
        self.db_host = self.lab.add_host("database", db_groups)
        self.pg = infra.Postgres(self.workdir, self.db_host)
        self.pg.create_app_db(p["DbUser"], self.secret(p["DatabaseSecretArn"]["Ref"], "password"),
                              p["DbName"])
        # CloudFormation's Endpoint.Address of an RDS instance or Aurora cluster: a DNS
        # name in the VPC, here resolved by every host's hosts file.
        endpoint = f"{self.ctx.stack_name}-db.cluster-e2e.{self.region}.rds.amazonaws.com"
        self.ctx.getatts[(db_logical, "Endpoint.Address")] = endpoint
        self.ctx.getatts[(db_logical, "Endpoint.Port")] = "5432"
        self.lab.set_hosts(netlab.ALL, {endpoint: [self.db_host.ip]})
        redis_password = self.secret(p["RedisSecretArn"]["Ref"], "password")
        group = self.template.of_type("AWS::ElastiCache::ReplicationGroup")
        if group:
            (logical, rg), = group.items()
            self.ca = infra.LocalCa(self.workdir)
            endpoint = f"master.{self.ctx.stack_name}-redis.e2e.{self.region.replace('-', '')}.cache.amazonaws.com"
            groups = [_group_of(g) for g in rg["Properties"]["SecurityGroupIds"]]
            host = self.lab.add_host("redis", groups)
            self.lab.set_hosts(netlab.ALL, {endpoint: [host.ip]})
            token = self.resolve_dynamic_reference(rg["Properties"]["AuthToken"])
            assert token == redis_password, "the AUTH token is not the generated Redis password"
            self.redis = infra.TlsRedis(self.workdir, host, endpoint, token, self.ca)
            self.ctx.getatts[(logical, "PrimaryEndPoint.Address")] = endpoint
            self.ctx.getatts[(logical, "PrimaryEndPoint.Port")] = "6379"
        else:
            self.ca = None
            self.start_service_tasks("RedisService")
            self.wait_healthy(["redis"])

    def database_resource(self) -> tuple[str, list[str]]:
        """The resource whose endpoint is the database, and its security groups."""
        for kind, groups_key in (("AWS::RDS::DBCluster", "VpcSecurityGroupIds"),
                                 ("AWS::RDS::DBInstance", "VPCSecurityGroups")):
            found = self.template.of_type(kind)
            if found:
                (logical, res), = found.items()
                return logical, [_group_of(g) for g in res["Properties"][groups_key]]
        raise AssertionError("no RDS cluster or instance in the template")

    def resolve_dynamic_reference(self, value) -> str:
        """`{{resolve:secretsmanager:<arn>:SecretString:<key>}}`, read as CloudFormation
        does (the operator's identity)."""
        text = str(self.ctx.resolve(value))
        m = re.fullmatch(r"\{\{resolve:secretsmanager:(.+):SecretString:([^:}]+)(?:::)?\}\}", text)
        assert m, f"not a Secrets Manager dynamic reference: {text}"
        return json.loads(self.sm.get_secret_value(SecretId=m.group(1))["SecretString"])[m.group(2)]

    # --- ECS ---------------------------------------------------------------------------

    def airflow_services(self) -> list[str]:
        return sorted(k for k in self.template.of_type("AWS::ECS::Service") if k != "RedisService")

    def scaler_owns_count(self, logical: str) -> bool:
        """With autoscaling on the template leaves the worker service's DesiredCount to
        the scaler Lambda."""
        props = self.template.resources[logical]["Properties"]
        return "DesiredCount" not in props and any(
            k.lower().startswith("scaler") for k in self.template.of_type("AWS::Lambda::Function"))

    def service_tasks(self, logical: str) -> list[Task]:
        return [t for t in self.tasks.values() if t.service == logical]

    def start_service_tasks(self, logical: str) -> list[Task]:
        svc = self.template.resources[logical]["Properties"]
        count = int(svc.get("DesiredCount", 1))  # no count: the scaler's; start one
        return [self.start_task(logical, i + 1, count) for i in range(count)]

    def start_task(self, service: str, index: int, count: int) -> Task:
        svc = self.template.resources[service]["Properties"]
        td_logical = svc["TaskDefinition"]["Ref"]
        td = self.template.resources[td_logical]["Properties"]
        family = td["Family"]
        short = _family_suffix(family, self.ctx.stack_name)
        name = short if count == 1 else f"{short}-{index}"
        groups = [_group_of(g) for g in
                  svc["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]]
        host = self.lab.add_host(name, groups, cpu_units=int(td["Cpu"]),
                                 memory_mib=int(td["Memory"]))
        task = Task(name=name, family=family, service=service, host=host)
        self.tasks[name] = task
        self.register_cloud_map(svc, host)
        for definition in td["ContainerDefinitions"]:
            self.start_container(task, td, definition)
        return task

    def register_cloud_map(self, svc: dict, host) -> None:
        for registry in svc.get("ServiceRegistries") or []:
            sd_logical = registry["RegistryArn"]["Fn::GetAtt"][0]
            sd_name = self.template.resources[sd_logical]["Properties"]["Name"]
            fqdn = f"{sd_name}.{self.namespace}"
            with self.lock:
                ips = self.cloud_map.setdefault(fqdn, [])
                ips.append(host.ip)
                self.lab.set_hosts(netlab.ALL, {fqdn: list(ips)})
                self.cloud_map_peak[fqdn] = max(self.cloud_map_peak.get(fqdn, 0), len(ips))

    def deregister_cloud_map(self, host) -> None:
        with self.lock:
            for fqdn, ips in self.cloud_map.items():
                if host.ip in ips:
                    ips.remove(host.ip)
                    self.lab.set_hosts(netlab.ALL, {fqdn: list(ips)})

    def roll_out(self, service: str, deployment: dict | None = None) -> list[str]:
        """A new deployment of `service` (all its tasks replaced by new ones, as after a
        task definition change), done the way ECS's rolling update does it: at most
        desired x maximumPercent tasks run, at least desired x minimumHealthyPercent stay
        healthy, new tasks start when there is room and old ones stop when enough new
        ones are healthy. `deployment` replaces the template's DeploymentConfiguration
        (mutation tests). Returns the order of events, for the report."""
        props = self.template.resources[service]["Properties"]
        conf = deployment or props["DeploymentConfiguration"]
        desired = int(props.get("DesiredCount", 1))
        most = desired * int(conf["MaximumPercent"]) // 100
        least = -(-desired * int(conf["MinimumHealthyPercent"]) // 100)
        assert most >= desired or least < desired, f"{service}: {conf} allows no deployment"
        self.cloud_map_peak.clear()
        old = self.service_tasks(service)
        events, started = [], 0
        self.rollouts += 1
        while old or started < desired:
            running = len(old) + started
            if started < desired and running < most:
                started += 1
                task = self.start_task(service, self.rollouts * 100 + started, 2)
                self.wait_healthy(containers=list(task.containers.values()))
                events.append(f"started {task.name}")
            elif old and running - 1 >= least:
                victim = old.pop(0)
                self.stop_task(victim)
                events.append(f"stopped {victim.name}")
            else:
                raise AssertionError(f"{service}: rolling update stuck with {conf}")
        return events


    def container_env(self, name: str) -> tuple[dict[str, str], dict]:
        """The environment the (first) running container of this name has, as ECS and
        the image set it, and its container definition."""
        c = self.first_task_with(name).containers[name]
        return c.env, c.definition

    def task_definition_of(self, task: Task) -> str:
        if task.service:
            return self.template.resources[task.service]["Properties"]["TaskDefinition"]["Ref"]
        return next(k for k, v in self.template.of_type("AWS::ECS::TaskDefinition").items()
                    if v["Properties"]["Family"] == task.family)

    def first_task_with(self, container: str) -> Task:
        for task in self.tasks.values():
            if container in task.containers:
                return task
        raise KeyError(f"no running task has a container {container!r}")

    def execution_key(self, task: Task, td: dict) -> str:
        return self.identity(td["ExecutionRoleArn"]["Fn::GetAtt"][0], f"ecs-agent for {task.name}")

    def build_env(self, task: Task, td: dict, c: dict,
                  task_role_key: str | None = None) -> dict[str, str]:
        env: dict[str, str] = {}
        for item in c.get("Environment", []):
            env[item["Name"]] = str(self.ctx.resolve(item["Value"]))
        sm = self.aws.client("secretsmanager", key=self.execution_key(task, td))
        for item in c.get("Secrets", []):
            env[item["Name"]] = _value_from(sm, self.ctx.resolve(item["ValueFrom"]))
        home = self.workdir / "home" / task.name / c["Name"]
        image_env = {
            "AIRFLOW_HOME": str(home),
            "HOME": str(home),
            "PATH": f"{self.airflow_venv}/bin:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "AWS_ENDPOINT_URL": self.aws.endpoint,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }
        role = td.get("TaskRoleArn")
        if role:
            # The task role's temporary credentials (ECS serves them to the container).
            image_env["AWS_ACCESS_KEY_ID"] = task_role_key or self.identity(
                role["Fn::GetAtt"][0], f"{task.name}/{c['Name']}")
            image_env["AWS_SECRET_ACCESS_KEY"] = "e2e"
        if self.ca is not None:
            # ElastiCache's certificate chains to Amazon's roots, which the image trusts;
            # the local TLS Redis's to this run's CA.
            image_env["SSL_CERT_FILE"] = str(self.ca.cert)
        for key in image_env:
            assert key not in env, f"{c['Name']}: the task definition sets {key}; the harness would mask it"
        return {**image_env, **env}

    def start_container(self, task: Task, td: dict, definition: dict,
                        env_override: dict[str, str] | None = None,
                        task_role_key: str | None = None) -> Container:
        env = self.build_env(task, td, definition, task_role_key)
        # The official Airflow image's entrypoint and user; other images run their command
        # as it is (the Redis container's `sh -c`).
        airflow = self.is_airflow_image(definition["Image"])
        env.update(env_override or {})
        home = Path(env["AIRFLOW_HOME"])
        home.mkdir(parents=True, exist_ok=True)
        user = AIRFLOW_USER if airflow else None
        if user:
            os.chown(home, *user)
            for parent in (home.parent, home.parent.parent):
                os.chmod(parent, 0o755)
        if airflow and self.image is not None:
            self.image.install_plugins(home, user)
        command = list(definition.get("Command") or [])
        assert command, f"{definition['Name']}: no Command"
        argv = ([str(self.airflow_venv / "bin" / "python"), str(ENTRYPOINT), *command]
                if airflow else command)
        c = Container(name=definition["Name"], task=task, definition=definition, env=env,
                      argv=argv, user=user, home=home, health=_health(definition))
        self.write_log_stream(td, definition, task)
        c.proc = task.host.start(f"{task.name}/{c.name}", argv, env,
                                 self.workdir / f"{task.name}.{c.name}.log", user=user,
                                 cwd=str(home))
        c.started = time.monotonic()
        old = task.containers.get(c.name)
        c.generation = old.generation + 1 if old else 0
        task.containers[c.name] = c
        return c

    def write_log_stream(self, td: dict, definition: dict, task: Task) -> None:
        """What the awslogs driver does at container start, with the execution role: the
        stream `<prefix>/<container>/<task id>` in the task's log group."""
        options = definition["LogConfiguration"]["Options"]
        group = self.ctx.resolve(options["awslogs-group"])
        stream = f"{options['awslogs-stream-prefix']}/{definition['Name']}/{uuid.uuid4().hex}"
        logs = self.aws.client("logs", key=self.execution_key(task, td))
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
            {"timestamp": int(time.time() * 1000), "message": f"container {definition['Name']} started"}])

    def stop_container(self, c: Container) -> None:
        if c.proc:
            c.proc.stop(grace=20)

    def stop_task(self, task: Task) -> None:
        self.deregister_cloud_map(task.host)
        for c in task.containers.values():
            self.stop_container(c)
        self.tasks.pop(task.name, None)

    # --- what the tests restart ---------------------------------------------------------

    def containers_named(self, name: str) -> list[Container]:
        found = [t.containers[name] for t in self.tasks.values() if name in t.containers]
        assert found, f"no container {name!r} is running"
        return found

    def stop_service(self, name: str) -> None:
        """Stops every container of this name (the health monitor ignores them)."""
        for c in self.containers_named(name):
            c.status = "STOPPED"
            self.stop_container(c)

    def start_service(self, name: str, env_override: dict[str, str] | None = None,
                      task_policies: list[dict] | None = None) -> None:
        """Starts every container of this name again, as defined, or with some
        environment changed, or with other task-role policies (mutation tests)."""
        for old in self.containers_named(name):
            task = old.task
            td = self.template.resources[self.task_definition_of(task)]["Properties"]
            key = None
            if task_policies is not None:
                key = self.identity(td["TaskRoleArn"]["Fn::GetAtt"][0],
                                    f"{task.name}/{name} (mutated)", task_policies)
            self.start_container(task, td, old.definition, env_override,
                                 task_role_key=key)

    def restart(self, name: str, env_override: dict[str, str] | None = None,
                task_policies: list[dict] | None = None, wait: bool = True) -> None:
        self.stop_service(name)
        self.start_service(name, env_override, task_policies)
        if wait:
            self.wait_healthy([name])

    def mutate(self, name: str, env_override: dict[str, str] | None = None,
               task_policies: list[dict] | None = None, wait: bool = True) -> None:
        """Restarts a container with a mutation; it stays mutated until
        `restore_mutated` (run before every test that is not a mutation test), so
        consecutive mutation tests of one container pay for one restore."""
        self.mutated.add(name)
        self.restart(name, env_override, task_policies, wait)

    def restore_mutated(self) -> None:
        """Every mutated container back as the template defines it, healthy."""
        for name in sorted(self.mutated):
            self.restart(name, wait=False)
        if self.mutated:
            self.wait_healthy(sorted(self.mutated))
        self.mutated.clear()

    def task_role_policies(self, container: str) -> list[dict]:
        """The resolved policies of the task role of the (first) task running `container`."""
        task = self.first_task_with(container)
        td = self.template.resources[self.task_definition_of(task)]["Properties"]
        return json.loads(json.dumps(self.role_policies[td["TaskRoleArn"]["Fn::GetAtt"][0]]))

    # --- health -------------------------------------------------------------------------

    def run_health_check(self, c: Container) -> tuple[bool, str]:
        try:
            r = c.task.host.run(c.health.argv, env=c.env, timeout=c.health.timeout,
                                user=c.user, cwd=str(c.home))
        except subprocess.TimeoutExpired:
            return False, f"health check timed out after {c.health.timeout:.0f}s"
        return r.returncode == 0, (r.stdout + r.stderr)[-1500:]

    def wait_healthy(self, names: list[str] | None = None,
                     containers: list[Container] | None = None, cap: float = 420) -> None:
        """Each container's own HealthCheck, retried until it passes, within its start
        period plus interval x retries (what ECS allows before it calls it unhealthy):
        the given containers, or every running one (of these names)."""
        if containers is None:
            containers = [c for t in self.tasks.values() for c in t.containers.values()
                          if names is None or c.name in names]
        running = [c for c in containers if c.health and c.status != "STOPPED"]
        assert running, f"nothing to wait for: {names}"
        # A container that already passed is not judged again here (the health monitor
        # watches it from then on): Redis passes in start_db_and_broker, and its window
        # may have closed while this lane waited for the other lane's bring-up.
        targets = [c for c in running if c.status != "HEALTHY"]
        errors: dict[str, str] = {}

        def check(c: Container) -> None:
            deadline = c.started + min(c.health.start_period + c.health.interval * c.health.retries, cap)
            last = "(no check ran: the window had closed before the wait began)"
            while time.monotonic() < deadline:
                if not c.proc.running():
                    errors[f"{c.task.name}/{c.name}"] = (
                        f"exited {c.proc.popen.returncode}:\n{c.proc.tail(60)}")
                    return
                if self.new_violations():  # reported by the caller, with the others
                    errors[f"{c.task.name}/{c.name}"] = "stopped waiting: see the refusals above"
                    return
                ok, last = self.run_health_check(c)
                if ok:
                    c.status, c.healthy_after = "HEALTHY", time.monotonic() - c.started
                    return
                time.sleep(3)
            errors[f"{c.task.name}/{c.name}"] = (
                f"not healthy after {deadline - c.started:.0f}s; last check said:\n{last}\n"
                f"process log:\n{c.proc.tail(40)}")

        threads = [threading.Thread(target=check, args=(c,), daemon=True) for c in targets]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        detail = "\n".join(f"--- {k}: {v}" for k, v in errors.items())
        self.fail_on_violations("while containers were starting", extra=detail)
        assert not errors, "containers did not become healthy:\n" + detail
        for c in sorted(targets, key=lambda c: c.healthy_after or 0):
            print(f"[e2e]   {c.task.name + '/' + c.name:<28} healthy after {c.healthy_after:5.1f}s",
                  flush=True)

    def start_health_monitor(self) -> None:
        """ECS keeps running each health check on its interval: `retries` failures in a
        row after the start period make the container UNHEALTHY (and ECS would replace
        the task). Recorded here; `violations()` reports them."""
        def monitor(c: Container, generation: int) -> None:
            failures = 0
            while not self.monitor_stop.wait(c.health.interval):
                if c.status == "STOPPED" or c.task.containers.get(c.name) is not c:
                    return
                if c.name in self.mutated:
                    continue  # a mutation test's business, collected there
                ok, out = self.run_health_check(c)
                if c.status == "STOPPED":
                    return
                failures = 0 if ok else failures + 1
                if failures >= c.health.retries:
                    c.unhealthy.append(f"{failures} health checks failed in a row; last: {out[-500:]}")
                    failures = 0

        def watch_new() -> None:
            seen: set[tuple[int, int]] = set()
            while not self.monitor_stop.wait(1):
                for t in list(self.tasks.values()):
                    for c in list(t.containers.values()):
                        if c.health and c.status == "HEALTHY" and (id(c), c.generation) not in seen:
                            seen.add((id(c), c.generation))
                            threading.Thread(target=monitor, args=(c, c.generation),
                                             daemon=True).start()

        threading.Thread(target=watch_new, daemon=True).start()

    # --- strictness ---------------------------------------------------------------------

    def violations(self) -> list[str]:
        """What AWS would not have allowed: denied AWS calls, connections no security
        group allows, containers killed for memory, containers that went unhealthy."""
        out = []
        for call in self.aws.calls():
            if not call["allowed"]:
                out.append(f"DENIED {call['identity']}: {call['action']} on {call['resource']} "
                           f"({call['service']} {call['operation']}): {call['reason']}")
        for b in self.lab.blocked():
            if self.refused_by_design(b):
                continue
            out.append(f"BLOCKED {b.src_host} ({b.src_ip}) -> {b.dst_host} ({b.dst_ip}) port "
                       f"{b.port}: no ingress rule of {self.groups_of(b.dst_host)} allows it from "
                       f"{self.groups_of(b.src_host)}")
        for error in (getattr(self, "pool", None) and self.pool.errors) or []:
            out.append(f"ECS {error}")
        for task in list(self.tasks.values()):
            kills = task.host.oom_kills()
            if kills:
                out.append(f"OOM {task.name}: {kills} process(es) killed at the task's memory "
                           f"limit of {task.host.memory_mib} MiB")
            for c in task.containers.values():
                for u in c.unhealthy:
                    out.append(f"UNHEALTHY {task.name}/{c.name}: {u}")
        return out

    def refused_by_design(self, b: netlab.Blocked) -> str | None:
        """Why the stack leaves this dropped connection without a rule, if it does so on
        purpose (then it is no violation: AWS drops it too, and the product expects it).

        One such path: the api-server asks the worker that ran a task for its log while
        the task runs, or when the task has ended and its log is not in S3 yet
        (FileTaskHandler._read in Airflow 3). Workers hold no `[api] secret_key`, which
        signs UI sessions as well as log tokens, so no rule lets the api-server reach
        their log servers (src/stack/security.rs, README "Task isolation"); the request
        times out after `[api] log_fetch_timeout_sec` and the log shows from S3 once the
        attempt ends. `test_a_running_tasks_log_...` shows exactly that."""
        src, dst = self.groups_of(b.src_host).split("/"), self.groups_of(b.dst_host).split("/")
        if "ApiServerSecurityGroup" in src and "WorkerSecurityGroup" in dst and b.port == 8793:
            return "api-server -> worker log server: workers cannot check log tokens"
        return None

    def refused_by_design_seen(self) -> list[str]:
        """The dropped connections `refused_by_design` explains, as lines to print."""
        return [f"{b.src_host} ({b.src_ip}) -> {b.dst_host} ({b.dst_ip}) port {b.port}: {why}"
                for b in self.lab.blocked() if (why := self.refused_by_design(b))]

    def new_violations(self) -> list[str]:
        """Violations not yet acknowledged by a mutation test."""
        return [v for v in self.violations() if v not in self.acknowledged]

    def expect_violations(self):
        """A context for a mutation test: what AWS would have refused inside it is
        collected into `.found` (and not reported again by `new_violations`)."""
        stack = self

        class Expected:
            def __enter__(self):
                self.before = set(stack.violations())
                self.found: list[str] = []
                return self

            def collect(self) -> list[str]:
                now = stack.violations()
                self.found = [v for v in now if v not in self.before]
                return self.found

            def __exit__(self, *exc):
                stack.acknowledged.update(self.collect())
                return False

        return Expected()

    def wait_for_violation(self, pattern: str, timeout: float, expected) -> str:
        """Polls until a new violation matching `pattern` (a regex) appears."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for v in expected.collect():
                if re.search(pattern, v):
                    return v
            time.sleep(1)
        raise AssertionError(f"no refusal matching {pattern!r} within {timeout:.0f}s; "
                             f"new refusals: {expected.found}")

    def groups_of(self, host_name: str) -> str:
        host = self.lab.hosts.get(host_name)
        return "/".join(host.security_groups) if host else "(not a lab host)"

    def fail_on_violations(self, when: str, extra: str = "") -> None:
        found = self.new_violations()
        assert not found, f"{when}, AWS would have refused:\n  " + "\n  ".join(found) + (
            f"\n{extra}" if extra else "")

    # --- one-off tasks ------------------------------------------------------------------

    def migrate(self) -> None:
        _, res = self.template.one_of_type("Custom::AirflowMigration")
        props = res["Properties"]
        code, tail, took = self.run_one_off("migrate", props["TaskDefinition"]["Ref"],
                                            props["SecurityGroups"])
        assert code == 0, f"migrate exited {code} after {took:.0f}s:\n{tail}"

    def run_one_off(self, name: str, td_logical: str, groups: list) -> tuple[int, str, float]:
        """Runs a task definition's one container to its end in a host of its own behind
        `groups` (security group refs), as RunTask would: exit code, log tail, seconds."""
        td = self.template.resources[td_logical]["Properties"]
        # A task runs in a host of its own; the second run of one (a later deploy's
        # migration) gets a new host, as RunTask gets a new ENI.
        runs = sum(1 for h in self.lab.hosts if h == name or h.startswith(f"{name}-"))
        name = name if runs == 0 else f"{name}-{runs + 1}"
        host = self.lab.add_host(name, [_group_of(g) for g in groups],
                                 cpu_units=int(td["Cpu"]), memory_mib=int(td["Memory"]))
        task = Task(name=name, family=td["Family"], service=None, host=host)
        self.tasks[name] = task
        (definition,) = td["ContainerDefinitions"]
        started = time.monotonic()
        c = self.start_container(task, td, definition)
        try:
            c.proc.popen.wait(timeout=600)
        finally:
            if c.proc.running():
                c.proc.stop()
        self.fail_on_violations(f"during the one-off task {name}")
        c.status = "STOPPED"
        self.tasks.pop(name)
        return c.proc.popen.returncode, c.proc.tail(60), time.monotonic() - started

    def reencrypt_fernet(self) -> tuple[int, str]:
        """What `airflow-stack rotate-fernet` starts: the stack's re-encryption task
        definition, in the migration's security group (src/cli/rotate_fernet.rs)."""
        _, res = self.template.one_of_type("Custom::AirflowMigration")
        code, tail, _ = self.run_one_off("rotate-fernet", "RotateFernetTaskDefinition",
                                         res["Properties"]["SecurityGroups"])
        return code, tail

    def fernet_keys(self) -> list[str]:
        """The Fernet secret's keys, newest first."""
        return self.secret("FernetKeySecret").split(",")

    def put_fernet_keys(self, keys: list[str]) -> None:
        """What `rotate-fernet --drop-old-keys` writes (as the operator)."""
        self.sm.put_secret_value(SecretId=self.ctx.refs["FernetKeySecret"],
                                 SecretString=",".join(keys))

    def fernet_readers(self) -> list[str]:
        """Names of the running containers that get the Fernet key."""
        return sorted({c.name for t in self.tasks.values() for c in t.containers.values()
                       if any(s["Name"] == "AIRFLOW__CORE__FERNET_KEY"
                              for s in c.definition.get("Secrets", []))})

    def stored_connection_password(self, conn_id: str) -> str:
        """The `connection.password` column as Airflow stored it (Fernet token)."""
        _, urls = self.template.one_of_type("Custom::AirflowConnectionUrls")
        db = urls["Properties"]["DbName"]
        out = self.pg.sql(f"COPY (SELECT password FROM connection WHERE conn_id = '{conn_id}') "
                          "TO STDOUT", db=db)
        return out.strip()

    def push_dags(self, folder: Path) -> None:
        env = dict(os.environ, AWS_ENDPOINT_URL=self.aws.endpoint, AWS_ACCESS_KEY_ID="testing",
                   AWS_SECRET_ACCESS_KEY="testing", AWS_REGION=self.region)
        env.pop("AWS_PROFILE", None)
        prefix = self.dags_prefix()
        res = run([str(self.cli), "dags", "push", str(folder), self.stack_file,
                   "--bucket", self.bucket, "--prefix", prefix, "--delete"],
                  env=env, cwd=str(self.repo), check=False)
        assert res.returncode == 0, f"airflow-stack dags push failed:\n{res.stdout}\n{res.stderr}"
        keys = [o["Key"] for o in self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
                .get("Contents", [])]
        for f in folder.glob("*.py"):
            assert f"{prefix.rstrip('/')}/{f.name}" in keys, f"{f.name} not in s3://{self.bucket}: {keys}"

    def bundle_config(self) -> dict:
        _, c = self.template.container("dag-processor")
        value = next(e["Value"] for e in c["Environment"]
                     if e["Name"] == "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST")
        bundles = json.loads(self.ctx.resolve(value))
        assert len(bundles) == 1, bundles
        return bundles[0]

    def dags_prefix(self) -> str:
        kwargs = self.bundle_config()["kwargs"]
        assert kwargs["bucket_name"] == self.bucket, kwargs
        return kwargs["prefix"]

    # --- access from the test -----------------------------------------------------------

    @property
    def api_url(self) -> str:
        """The REST API of the first api-server, reached from the test process: the one
        path into the lab that is not in the template (it stands for the operator's access
        path to the UI; the stack offers none yet)."""
        task = self.first_task_with("api-server")
        if not self.operator_allowed:
            for g in task.host.security_groups:
                if g.startswith("ApiServer"):
                    self.lab.allow_from_operator(g, 8080)
            self.operator_allowed = True
        return f"http://{task.host.ip}:8080"

    def memory_report(self) -> dict[str, dict]:
        out = {}
        for task in self.tasks.values():
            stat = task.host.memory_stat()
            out[task.name] = {"limit_mib": task.host.memory_mib,
                              "peak_mib": task.host.memory_peak_bytes() / 2**20,
                              "rss_mib": stat.get("total_rss", stat.get("anon", 0)) / 2**20}
        return out

    def down(self) -> None:
        self.monitor_stop.set()
        for task in list(self.tasks.values()):
            try:
                for c in task.containers.values():
                    c.status = "STOPPED"
                    self.stop_container(c)
            except Exception as e:  # noqa: BLE001
                print(f"[e2e] stopping {task.name}: {e}")
        for close in reversed(self.closers):
            try:
                close()
            except Exception as e:  # noqa: BLE001
                print(f"[e2e] clean-up: {e}")
        from .procs import stop_all
        stop_all()

    def dump_logs(self, lines: int = 60) -> str:
        out = []
        for log in sorted(self.workdir.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"===== {log.name} (last {lines} lines)\n" + "\n".join(text))
        return "\n".join(out)


class _RolePolicies(dict):
    """Role logical id -> its inline policies, resolved when first asked for (roles of
    parts this run does not start may refer to resources it does not create)."""

    def __init__(self, template: Template, ctx: Context):
        super().__init__()
        self.template, self.ctx = template, ctx

    def __missing__(self, role: str) -> list[dict]:
        props = self.template.resources[role]["Properties"]
        managed = props.get("ManagedPolicyArns", [])
        assert not managed, f"{role}: managed policies {managed} cannot be held to locally"
        self[role] = [self.ctx.resolve(p["PolicyDocument"]) for p in props.get("Policies", [])]
        return self[role]


def _health(definition: dict) -> HealthSpec | None:
    hc = definition.get("HealthCheck")
    if not hc:
        return None
    kind, *cmd = hc["Command"]
    assert kind == "CMD-SHELL", f"{definition['Name']}: health check {kind} not supported"
    # ECS's defaults when a field is absent: interval 30, timeout 5, retries 3, start 0.
    return HealthSpec(argv=["/bin/sh", "-c", cmd[0]], interval=float(hc.get("Interval", 30)),
                      timeout=float(hc.get("Timeout", 5)), retries=int(hc.get("Retries", 3)),
                      start_period=float(hc.get("StartPeriod", 0)))


def _value_from(sm, ref: str) -> str:
    """What ECS injects for `valueFrom`: a secret ARN, or `<arn>:<json-key>:<stage>:<version>`
    (a Secrets Manager ARN has 7 colon-separated parts; ECS appends the rest)."""
    parts = ref.split(":")
    arn, extra = ":".join(parts[:7]), parts[7:]
    value = sm.get_secret_value(SecretId=arn)["SecretString"]
    key = extra[0] if extra else ""
    assert not any(extra[1:]), f"version stage/id in valueFrom are not used by the stack: {ref}"
    return json.loads(value)[key] if key else value


def _group_of(value) -> str | None:
    """A security group's logical id from `{"Fn::GetAtt": [X, "GroupId"]}`."""
    if value is None:
        return None
    assert isinstance(value, dict) and "Fn::GetAtt" in value, f"not a group of this stack: {value}"
    logical, attr = value["Fn::GetAtt"]
    assert attr == "GroupId", value
    return logical


def _family_suffix(family: str, stack_name: str) -> str:
    assert family.startswith(stack_name + "-"), family
    return family[len(stack_name) + 1:]


def _stack_name(t: Template) -> str:
    for res in t.resources.values():
        for tag in res.get("Properties", {}).get("Tags", []) or []:
            if isinstance(tag, dict) and tag.get("Key") == "airflow-stack:stack":
                return tag["Value"]
    raise AssertionError("no airflow-stack:stack tag in the template")


SCALED = """
autoscaling:
  enabled: true
  min_workers: 0
  max_workers: 4
  cooldown_minutes: 0

alerts:
  enabled: true
  sns_topic: create
  ui_base_url: https://airflow.example.com
"""


def scaled_stack_file(repo: Path, workdir: Path, base: str = "stacks/dev.yaml") -> Path:
    """dev.yaml with the scaler on: autoscaling and alerts, which need a NAT gateway
    (the Lambda's way to the AWS APIs); no cool-down (scale-in starts on the first tick
    that wants fewer workers: the cool-down is the scaler's unit tests' to prove, the
    drain this run's); worker concurrency 2."""
    text = (repo / base).read_text()
    assert re.search(r"^\s*nat_gateways:\s*0\s*$", text, re.M), f"{base} no longer sets nat_gateways: 0"
    assert not re.search(r"^(autoscaling|alerts):", text, re.M), f"{base} already sets autoscaling/alerts"
    text = re.sub(r"^(\s*)nat_gateways:\s*0\s*$", r"\1nat_gateways: 1", text, count=1, flags=re.M)
    text, n = re.subn(r"(worker: \{[^}]*concurrency: )\d+", r"\g<1>2", text, count=1)
    assert n == 1, f"{base}: no worker concurrency to set"
    path = workdir / "scaled.yaml"
    path.write_text(text + SCALED)
    return path


def _region(stack_file: Path) -> str:
    """AWS::Region: the stack file's `region` (what `deploy` targets)."""
    m = re.search(r"^region:\s*([a-z0-9-]+)", stack_file.read_text(), re.M)
    assert m, f"no region in {stack_file}"
    return m.group(1)
