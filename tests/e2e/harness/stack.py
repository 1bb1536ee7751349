"""The synthesized stack, brought up as local processes.

What the harness supplies, and nothing more (see tests/e2e/README.md):
  * CloudFormation's part: physical ids (secret ARNs in moto, the bucket name), pseudo
    parameters, the database endpoint attribute, and the Create events of the custom
    resources, answered by the real secrets Lambda binary.
  * ECS's part: each container's `Secrets` read from Secrets Manager (moto), and its
    network: Cloud Map names (`api-server.airflow:8080`, `redis.airflow:6379`) and container
    ports become 127.0.0.1:<free port>, because all containers share one host here.
  * The image's part: `airflow` before a command whose first word is not bash/sh/python
    (the official entrypoint), AIRFLOW_HOME/HOME (one per container: no shared files, as
    on Fargate), PATH, and the task role as AWS_ENDPOINT_URL + dummy credentials.
Every other Environment, Secret, Command and HealthCheck value is used as synthesized.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from . import infra
from .procs import Proc, free_port, run
from .template import Context, Template

AIRFLOW_CONTAINERS = ["api-server", "scheduler", "dag-processor", "triggerer", "worker"]
IMAGE_COMMANDS = {"bash", "sh", "python", "python3"}


class Timings:
    def __init__(self):
        self.started = time.monotonic()
        self.phases: list[tuple[str, float]] = []
        self._t = time.monotonic()

    def mark(self, phase: str) -> None:
        now = time.monotonic()
        self.phases.append((phase, now - self._t))
        print(f"[e2e] phase {phase:<28} {now - self._t:7.1f}s  (total {now - self.started:6.1f}s)",
              flush=True)
        self._t = now

    def report(self) -> str:
        lines = [f"  {p:<28} {s:7.1f}s" for p, s in self.phases]
        lines.append(f"  {'total':<28} {time.monotonic() - self.started:7.1f}s")
        return "\n".join(lines)


def ensure_airflow(cache: Path, version: str) -> Path:
    """apache-airflow==version with the celery pin (airflow3.md §12), in a cached venv."""
    venv = cache / f"airflow-{version}"
    marker = venv / ".installed"
    want = (f"apache-airflow[celery,postgres,redis,amazon,fab]=={version}\n"
            "celery[redis]>=5.5,<5.7\n")
    if marker.exists() and marker.read_text() == want:
        return venv
    if not (venv / "bin" / "python").exists():
        run(["python3", "-m", "venv", str(venv)], timeout=120)
    run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "uv"],
        timeout=300)
    run([str(venv / "bin" / "uv"), "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
         *want.split("\n")[:2]], timeout=900)
    out = run([str(venv / "bin" / "python"), "-c",
               "import airflow, celery; print(airflow.__version__, celery.__version__)"]).stdout.split()
    assert out[0] == version, f"installed airflow {out[0]}, wanted {version}"
    assert celery_ok(out[1]), f"celery {out[1]} is outside >=5.5,<5.7 (airflow3.md §12)"
    marker.write_text(want)
    return venv


def celery_ok(v: str) -> bool:
    major, minor = (int(x) for x in v.split(".")[:2])
    return (major, minor) >= (5, 5) and (major, minor) < (5, 7)


@dataclass
class Service:
    name: str
    env: dict[str, str]
    argv: list[str]
    health: list[str] | None
    health_timeout: float
    health_deadline: float
    proc: Proc | None = None


class LocalStack:
    def __init__(self, *, repo: Path, target_dir: Path, tools_venv: Path, cache: Path,
                 workdir: Path, stack_file: str = "stacks/dev.yaml"):
        self.repo, self.target_dir, self.tools_venv = repo, target_dir, tools_venv
        self.cache, self.workdir, self.stack_file = cache, workdir, stack_file
        self.timings = Timings()
        self.cli = target_dir / "debug" / "airflow-stack"
        infra.need(str(self.cli), "the airflow-stack CLI (cargo build -p airflow-stack)")
        self.services: dict[str, Service] = {}
        self.closers: list = []

    # --- template ---------------------------------------------------------------------

    def synth(self) -> None:
        out = run([str(self.cli), "synth", self.stack_file], cwd=str(self.repo)).stdout
        (self.workdir / "template.json").write_text(out)
        self.template = Template.from_json(out)
        _, api = self.template.container("api-server")
        image = api["Image"]  # apache/airflow:3.3.2-python3.12
        assert image.startswith("apache/airflow:"), image
        self.airflow_version = image.split(":", 1)[1].split("-", 1)[0]
        stack_name = _stack_name(self.template)
        self.region = _region(self.repo / self.stack_file)
        self.ctx = Context(region=self.region, stack_name=stack_name,
                           stack_id=f"arn:aws:cloudformation:{self.region}:123456789012:stack/"
                                    f"{stack_name}/{uuid.uuid4()}")
        self.timings.mark("synth")

    # --- bring-up ---------------------------------------------------------------------

    def up(self) -> None:
        self.synth()
        self.airflow_venv = ensure_airflow(self.cache, self.airflow_version)
        self.timings.mark(f"install airflow {self.airflow_version}")
        self.start_aws()
        self.create_secrets_and_bucket()
        self.lambda_start()
        self.invoke_custom_resource("Custom::AirflowSecrets")
        self.start_db_and_broker()
        self.invoke_custom_resource("Custom::AirflowConnectionUrls")
        self.timings.mark("secrets, postgres, redis, moto")
        self.migrate()
        self.timings.mark("migrate")
        self.push_dags(self.repo / "tests" / "e2e" / "dags")
        self.timings.mark("dags push")
        for name in AIRFLOW_CONTAINERS:
            self.start_service(name)
        self.wait_healthy(AIRFLOW_CONTAINERS)
        self.timings.mark("all containers healthy")

    def start_aws(self) -> None:
        self.moto = infra.Moto(self.tools_venv, self.workdir)
        self.sm = self.moto.client("secretsmanager", self.region)
        self.s3 = self.moto.client("s3", self.region)

    def create_secrets_and_bucket(self) -> None:
        """What CloudFormation does before the custom resources run: empty secrets, the bucket."""
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
        self.s3.create_bucket(Bucket=name)
        self.ctx.refs[bucket_logical] = name
        self.bucket = name
        for logical, res in self.template.resources.items():
            if res["Type"] == "AWS::Lambda::Function":
                self.ctx.getatts[(logical, "Arn")] = (
                    f"arn:aws:lambda:{self.region}:123456789012:function:{logical}")

    def lambda_start(self) -> None:
        exe = infra.find_secrets_lambda(self.target_dir)
        self.runtime = infra.RuntimeApi()
        self.responses = infra.ResponseServer()
        self.closers += [self.runtime.close, self.responses.close]
        env = {
            "PATH": "/usr/bin:/bin",
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self.runtime.port}",
            "AWS_LAMBDA_FUNCTION_NAME": "airflow-secrets",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_ENDPOINT_URL": self.moto.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }
        for logical, res in self.template.of_type("AWS::Lambda::Function").items():
            if logical.lower().startswith("secrets"):
                env.update(self.ctx.resolve(
                    res["Properties"].get("Environment", {}).get("Variables", {})))
        self.lambda_proc = Proc("secrets-lambda", [str(exe)], env, self.workdir / "secrets-lambda.log")

    def invoke_custom_resource(self, type_: str) -> dict:
        logical, res = self.template.one_of_type(type_)
        props = self.ctx.resolve(res["Properties"])
        props = self.localize_props(props)
        path = f"/cfn/{logical}?X-Amz-Signature=e2e"
        event = {
            "RequestType": "Create",
            "ServiceToken": props["ServiceToken"],
            "ResponseURL": self.responses.url + path,
            "StackId": self.ctx.stack_id,
            "RequestId": str(uuid.uuid4()),
            "ResourceType": type_,
            "LogicalResourceId": logical,
            "ResourceProperties": props,
        }
        kind, body = self.runtime.invoke(event, timeout=120)
        assert kind == "response", f"{logical}: the Lambda reported an error: {body}"
        put = self.responses.wait_put(path, timeout=30)
        assert put["Status"] == "SUCCESS", f"{logical}: {put}"
        return put

    def localize_props(self, props: dict) -> dict:
        """Cloud Map names in custom-resource properties (RedisHost) -> local addresses."""
        props = dict(props)
        for host_key, port_key in (("RedisHost", "RedisPort"), ("DbHost", "DbPort")):
            if host_key in props:
                addr = getattr(self, "endpoints", {}).get(f"{props[host_key]}:{props[port_key]}")
                if addr:
                    props[host_key], props[port_key] = addr.split(":")
        return props

    def secret(self, logical: str, key: str | None = None) -> str:
        """A secret's value, or one key of a JSON secret."""
        value = self.sm.get_secret_value(SecretId=self.ctx.refs[logical])["SecretString"]
        return json.loads(value)[key] if key else value

    def value_from(self, ref: str) -> str:
        """What ECS injects for `valueFrom`: a secret ARN, or `<arn>:<json-key>:<stage>:<version>`
        (a Secrets Manager ARN has 7 colon-separated parts; ECS appends the rest)."""
        parts = ref.split(":")
        arn, extra = ":".join(parts[:7]), parts[7:]
        value = self.sm.get_secret_value(SecretId=arn)["SecretString"]
        key = extra[0] if extra else ""
        assert not any(extra[1:]), f"version stage/id in valueFrom are not used by the stack: {ref}"
        return json.loads(value)[key] if key else value

    def start_db_and_broker(self) -> None:
        urls_logical, urls = self.template.one_of_type("Custom::AirflowConnectionUrls")
        p = urls["Properties"]
        self.pg = infra.Postgres(self.workdir)
        db_password = self.secret(p["DatabaseSecretArn"]["Ref"], "password")
        self.pg.create_app_db(p["DbUser"], db_password, p["DbName"])
        self.redis = infra.Redis(self.workdir, self.secret(p["RedisSecretArn"]["Ref"], "password"))
        for attr_res in _getatt_targets(p):
            res_type = self.template.resources[attr_res]["Type"]
            if res_type.startswith("AWS::RDS::"):
                self.ctx.getatts[(attr_res, "Endpoint.Address")] = "127.0.0.1"
                self.ctx.getatts[(attr_res, "Endpoint.Port")] = str(self.pg.port)
        self.api_port = free_port()
        self.endpoints = self.cloud_map_endpoints({"api-server": {8080: self.api_port},
                                                   "redis": {6379: self.redis.port}})

    def cloud_map_endpoints(self, local_ports: dict[str, dict[int, int]]) -> dict[str, str]:
        """'<service>.<namespace>:<containerPort>' -> '127.0.0.1:<local port>'."""
        _, ns = self.template.one_of_type("AWS::ServiceDiscovery::PrivateDnsNamespace")
        namespace = ns["Properties"]["Name"]
        out = {}
        for _, svc in self.template.of_type("AWS::ServiceDiscovery::Service").items():
            name = svc["Properties"]["Name"]
            _, container = self.template.container(name)
            for pm in container.get("PortMappings", []):
                local = local_ports[name][pm["ContainerPort"]]
                out[f"{name}.{namespace}:{pm['ContainerPort']}"] = f"127.0.0.1:{local}"
        return out

    # --- containers -------------------------------------------------------------------

    def container_env(self, name: str) -> tuple[dict[str, str], dict]:
        _, c = self.template.container(name)
        env: dict[str, str] = {}
        for item in c.get("Environment", []):
            env[item["Name"]] = self.localize(str(self.ctx.resolve(item["Value"])))
        for item in c.get("Secrets", []):
            env[item["Name"]] = self.value_from(self.ctx.resolve(item["ValueFrom"]))
        home = self.workdir / "home" / name
        home.mkdir(parents=True, exist_ok=True)
        image_env = {
            "AIRFLOW_HOME": str(home),
            "HOME": str(home),
            "PATH": f"{self.airflow_venv}/bin:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "AWS_ENDPOINT_URL": self.moto.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }
        for key in image_env:
            assert key not in env, f"{name}: the task definition sets {key}; the harness would mask it"
        return {**image_env, **self.port_bindings(name), **env}, c

    def port_bindings(self, name: str) -> dict[str, str]:
        """Container ports -> free local ports (all containers share 127.0.0.1 here).
        These only say where to listen; on Fargate each task has its own address."""
        if not hasattr(self, "ports"):
            self.ports = {"scheduler_health": free_port(), "scheduler_logs": free_port(),
                          "worker_logs": free_port(), "triggerer_logs": free_port()}
        p = self.ports
        common = {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(p["worker_logs"]),
                  "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(p["triggerer_logs"])}
        per = {
            "api-server": {"AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(self.api_port)},
            "scheduler": {"AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
                          "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(p["scheduler_health"]),
                          "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(p["scheduler_logs"])},
        }
        return {**common, **per.get(name, {})}

    def localize(self, value: str) -> str:
        for cloud_map, local in self.endpoints.items():
            value = value.replace(cloud_map, local)
        return value

    def health_argv(self, name: str, c: dict) -> list[str] | None:
        hc = c.get("HealthCheck")
        if not hc:
            return None
        kind, *cmd = hc["Command"]
        assert kind == "CMD-SHELL", f"{name}: health check {kind} not supported by the harness"
        shell = cmd[0]
        local = {"api-server": {8080: self.api_port},
                 "scheduler": {8974: self.ports["scheduler_health"]}}.get(name, {})
        for container_port, port in local.items():
            shell = shell.replace(f"localhost:{container_port}", f"127.0.0.1:{port}")
        return ["/bin/sh", "-c", shell]

    def argv(self, c: dict) -> list[str]:
        cmd = list(c.get("Command") or [])
        assert cmd, f"{c['Name']}: no Command"
        return cmd if cmd[0] in IMAGE_COMMANDS else ["airflow", *cmd]

    def migrate(self) -> None:
        env, c = self.container_env("migrate")
        argv = self.argv(c)
        started = time.monotonic()
        proc = Proc("migrate", argv, env, self.workdir / "migrate.log")
        try:
            proc.popen.wait(timeout=600)
        finally:
            if proc.running():
                proc.stop()
        assert proc.popen.returncode == 0, (
            f"migrate exited {proc.popen.returncode} after {time.monotonic() - started:.0f}s:\n"
            f"{proc.tail(60)}")
        proc.stop()

    def push_dags(self, folder: Path) -> None:
        env = dict(os.environ, AWS_ENDPOINT_URL=self.moto.endpoint, AWS_ACCESS_KEY_ID="testing",
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
        env, _ = self.container_env("dag-processor")
        bundles = json.loads(env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"])
        assert len(bundles) == 1, bundles
        return bundles[0]

    def dags_prefix(self) -> str:
        kwargs = self.bundle_config()["kwargs"]
        assert kwargs["bucket_name"] == self.bucket, kwargs
        return kwargs["prefix"]

    def start_service(self, name: str, env_override: dict[str, str] | None = None) -> Service:
        env, c = self.container_env(name)
        env.update(env_override or {})
        hc = c.get("HealthCheck") or {}
        svc = Service(name=name, env=env, argv=self.argv(c), health=self.health_argv(name, c),
                      health_timeout=float(hc.get("Timeout", 30)),
                      health_deadline=float(hc.get("StartPeriod", 0))
                      + float(hc.get("Interval", 30)) * float(hc.get("Retries", 3)))
        svc.proc = Proc(name, svc.argv, env, self.workdir / f"{name}.log")
        self.services[name] = svc
        return svc

    def stop_service(self, name: str) -> None:
        svc = self.services.pop(name)
        if svc.proc:
            svc.proc.stop(grace=20)

    def wait_healthy(self, names: list[str], cap: float = 300) -> dict[str, float]:
        """Each container's own HealthCheck command, retried until it exits 0."""
        results: dict[str, float | Exception] = {}

        def check(svc: Service):
            started = time.monotonic()
            deadline = started + min(svc.health_deadline, cap)
            last = ""
            while time.monotonic() < deadline:
                if not svc.proc.running():
                    results[svc.name] = RuntimeError(
                        f"{svc.name} exited {svc.proc.popen.returncode}:\n{svc.proc.tail(60)}")
                    return
                try:
                    r = subprocess.run(svc.health, env=svc.env, capture_output=True, text=True,
                                       timeout=svc.health_timeout, cwd=svc.env["AIRFLOW_HOME"],
                                       start_new_session=True)
                    if r.returncode == 0:
                        results[svc.name] = time.monotonic() - started
                        return
                    last = (r.stdout + r.stderr)[-1500:]
                except subprocess.TimeoutExpired:
                    last = f"health check timed out after {svc.health_timeout}s"
                time.sleep(3)
            results[svc.name] = TimeoutError(
                f"{svc.name} not healthy after {min(svc.health_deadline, cap):.0f}s; last check said:\n"
                f"{last}\nprocess log:\n{svc.proc.tail(40)}")

        threads = []
        for name in names:
            svc = self.services[name]
            assert svc.health, f"{name} has no HealthCheck in the template"
            t = threading.Thread(target=check, args=(svc,), daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        errors = [f"--- {n}: {r}" for n, r in results.items() if isinstance(r, Exception)]
        assert not errors, "containers did not become healthy:\n" + "\n".join(errors)
        for n, r in sorted(results.items(), key=lambda kv: kv[1]):
            print(f"[e2e]   {n:<14} healthy after {r:5.1f}s", flush=True)
        return results  # type: ignore[return-value]

    def down(self) -> None:
        for name in list(self.services):
            try:
                self.stop_service(name)
            except Exception as e:  # noqa: BLE001
                print(f"[e2e] stopping {name}: {e}")
        for close in self.closers:
            try:
                close()
            except Exception:  # noqa: BLE001
                pass
        from .procs import stop_all
        stop_all()

    def dump_logs(self, lines: int = 60) -> str:
        out = []
        for log in sorted(self.workdir.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"===== {log.name} (last {lines} lines)\n" + "\n".join(text))
        return "\n".join(out)


def _getatt_targets(props: dict) -> set[str]:
    found = set()
    for v in props.values():
        if isinstance(v, dict) and "Fn::GetAtt" in v:
            found.add(v["Fn::GetAtt"][0])
    return found


def _stack_name(t: Template) -> str:
    for res in t.resources.values():
        for tag in res.get("Properties", {}).get("Tags", []) or []:
            if isinstance(tag, dict) and tag.get("Key") == "airflow-stack:stack":
                return tag["Value"]
    raise AssertionError("no airflow-stack:stack tag in the template")


def _region(stack_file: Path) -> str:
    """AWS::Region: the stack file's `region` (what `deploy` targets)."""
    m = re.search(r"^region:\s*([a-z0-9-]+)", stack_file.read_text(), re.M)
    assert m, f"no region in {stack_file}"
    return m.group(1)
