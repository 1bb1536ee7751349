"""The worker service when the scaler owns its count: ECS's service scheduler.

The AWS emulator decides (tests/aws_emulator/ecs_service.py): it keeps the service's
running tasks at desiredCount, starts tasks on scale-out and, on scale-in, picks only
tasks that are not scale-in protected. This pool carries its decisions out: each task the
emulator creates becomes a lab host running the template's worker container (its env,
secrets, command through the image entrypoint, security groups, task role), plus what
ECS injects into every container: ECS_AGENT_URI and ECS_CONTAINER_METADATA_URI_V4, per
task, served by the emulator in the AWS host (reachable like the other AWS endpoints);
the agent's protection calls are authorized against the task role. Each task the
emulator stops is stopped as ECS stops a container: SIGTERM, SIGKILL after the
container's stopTimeout (Fargate's default 30 s), then reported STOPPED.

Everything is recorded with monotonic and wall-clock times (`events`) for the tests.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request

from .procs import wait_for

DEFAULT_STOP_TIMEOUT = 30  # Fargate's default stopTimeout (seconds)


class WorkerPool:
    def __init__(self, stack, logical: str):
        self.stack, self.logical = stack, logical
        svc = stack.template.resources[logical]["Properties"]
        self.td_logical = svc["TaskDefinition"]["Ref"]
        self.td = stack.template.resources[self.td_logical]["Properties"]
        self.groups = [_group(g) for g in
                       svc["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]]
        self.container = next(c for c in self.td["ContainerDefinitions"]
                              if c.get("Essential", True))
        self.stop_timeout = float(self.container.get("StopTimeout", DEFAULT_STOP_TIMEOUT))
        self.lock = threading.Lock()
        self.started: dict[str, object] = {}   # task id -> harness Task
        self.stopping: set[str] = set()
        self.stopped: set[str] = set()  # task ids whose "stopped" event is recorded
        self.events: list[dict] = []
        self.errors: list[str] = []
        self.index = 0
        self.halt = threading.Event()
        self._create_service(svc)
        self.thread = threading.Thread(target=self._loop, daemon=True, name="worker-pool")
        self.thread.start()
        stack.closers.append(self.close)

    # --- what CloudFormation creates ---------------------------------------------------

    def _create_service(self, svc: dict) -> None:
        s = self.stack
        ecs, ec2 = s.aws.client("ecs"), s.aws.client("ec2")
        # moto places awsvpc tasks in a subnet: one for the lab's addresses.
        vpc = ec2.create_vpc(CidrBlock=s.lab_cidr)["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=s.lab_cidr)["Subnet"]["SubnetId"]
        role = lambda key: (f"arn:aws:iam::{s.ctx.account}:role/{s.ctx.stack_name}-"  # noqa: E731
                            f"{self.td[key]['Fn::GetAtt'][0]}") if self.td.get(key) else None
        container = {"name": self.container["Name"], "image": self.container["Image"],
                     "essential": True, "stopTimeout": int(self.stop_timeout)}
        kwargs = {k: v for k, v in (("taskRoleArn", role("TaskRoleArn")),
                                    ("executionRoleArn", role("ExecutionRoleArn"))) if v}
        ecs.register_task_definition(
            family=self.td["Family"], networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
            cpu=str(self.td["Cpu"]), memory=str(self.td["Memory"]),
            containerDefinitions=[container], **kwargs)
        self.service_name = s.ctx.resolve(svc.get("ServiceName")) if svc.get("ServiceName") \
            else f"{s.ctx.stack_name}-{self.logical}"
        # CloudFormation: "For new services, if a desired count is not specified, a
        # default value of 1 is used."
        desired = int(svc.get("DesiredCount", 1))
        self.service_arn = ecs.create_service(
            cluster=s.cluster_name, serviceName=self.service_name,
            taskDefinition=self.td["Family"], desiredCount=desired, launchType="FARGATE",
            networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet],
                                                          "securityGroups": []}},
        )["service"]["serviceArn"]
        s.ctx.refs[self.logical] = self.service_arn
        s.ctx.getatts[(self.logical, "Name")] = self.service_name
        s.ctx.getatts[(self.logical, "ServiceArn")] = self.service_arn
        self._emulator("POST", "/_emulator/ecs-services", {
            "cluster": s.cluster_name, "service": self.service_name,
            "stop_timeout": self.stop_timeout, "region": s.region})

    # --- the scheduler's decisions, carried out ----------------------------------------

    def _emulator(self, method: str, path: str, body=None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.stack.aws.endpoint + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def state(self) -> dict:
        return self._emulator("GET", f"/_emulator/ecs-services/{self.stack.cluster_name}/"
                                     f"{self.service_name}?region={self.stack.region}")

    def _loop(self) -> None:
        while not self.halt.wait(0.5):
            try:
                tasks = self.state()["tasks"]
            except Exception as e:  # noqa: BLE001 - the emulator is going away at the end
                if not self.halt.is_set():
                    self.errors.append(f"polling the emulator: {e}")
                continue
            for t in tasks:
                with self.lock:
                    new = t["desiredStatus"] == "RUNNING" and t["taskId"] not in self.started
                    stop = (t["desiredStatus"] == "STOPPED" and t["taskId"] in self.started
                            and t["taskId"] not in self.stopping)
                    if new:
                        self.started[t["taskId"]] = None
                    if stop:
                        self.stopping.add(t["taskId"])
                if new:
                    threading.Thread(target=self._guard, args=(self._start, t),
                                     daemon=True).start()
                elif stop:
                    threading.Thread(target=self._guard, args=(self._stop, t),
                                     daemon=True).start()

    def _guard(self, fn, t) -> None:
        try:
            fn(t)
        except Exception as e:  # noqa: BLE001 - reported as a violation by the stack
            self.errors.append(f"{fn.__name__} {t['taskId']}: {type(e).__name__}: {e}")

    def _start(self, t: dict) -> None:
        from .stack import Task
        s = self.stack
        with self.lock:
            self.index += 1
            name = f"worker-{self.index}"
        began = time.monotonic()
        host = s.lab.add_host(name, self.groups, cpu_units=int(self.td["Cpu"]),
                              memory_mib=int(self.td["Memory"]))
        task = Task(name=name, family=self.td["Family"], service=self.logical, host=host)
        task.arn, task.task_id = t["taskArn"], t["taskId"]
        role_key = s.identity(self.td["TaskRoleArn"]["Fn::GetAtt"][0], f"{name}/worker")
        containers = []
        for definition in self.td["ContainerDefinitions"]:
            env = {"ECS_AGENT_URI": f"{s.aws.endpoint}/_ecs/agent/{t['taskId']}",
                   "ECS_CONTAINER_METADATA_URI_V4":
                       f"{s.aws.endpoint}/_ecs/metadata/{t['taskId']}/{definition['Name']}"}
            names = {e["Name"] for e in definition.get("Environment", [])}
            assert not names & set(env), f"the task definition sets {names & set(env)}"
            containers.append(s.start_container(task, self.td, definition, env_override=env,
                                                task_role_key=role_key))
        with s.lock:
            s.tasks[name] = task
        with self.lock:
            self.started[t["taskId"]] = task
        self._emulator("POST", f"/_emulator/ecs-tasks/{t['taskId']}/running", {
            "ip": host.ip, "task_role_key": role_key, "host": name, "region": s.region})
        self._event("running", task, seconds=time.monotonic() - began)
        for c in containers:
            if c.health:
                threading.Thread(target=self._health, args=(c,), daemon=True).start()

    def _health(self, c) -> None:
        """ECS runs the health check from the start: HEALTHY once it passes (the stack's
        monitor takes over), UNHEALTHY (a violation) if it never does in time."""
        deadline = c.started + c.health.start_period + c.health.interval * c.health.retries
        last = ""
        while time.monotonic() < deadline and c.status != "STOPPED":
            ok, last = self.stack.run_health_check(c)
            if ok:
                c.status, c.healthy_after = "HEALTHY", time.monotonic() - c.started
                self._event("healthy", c.task, seconds=c.healthy_after)
                return
            time.sleep(2)
        if c.status != "STOPPED":
            c.unhealthy.append(f"never healthy within its start period; last: {last[-300:]}")

    def _stop(self, t: dict) -> None:
        task = None
        deadline = time.monotonic() + 120
        while task is None and time.monotonic() < deadline:  # still starting
            task = self.started.get(t["taskId"])
            if task is None:
                time.sleep(0.2)
        assert task is not None, f"task {t['taskId']} never started"
        began = time.monotonic()
        self._event("stop-requested", task)
        codes = []
        for c in task.containers.values():
            c.status = "STOPPED"
            c.proc.stop(grace=self.stop_timeout)
            codes.append(c.proc.popen.returncode)
        seconds = time.monotonic() - began
        killed = seconds >= self.stop_timeout
        with self.stack.lock:
            self.stack.tasks.pop(task.name, None)
        self._emulator("POST", f"/_emulator/ecs-tasks/{t['taskId']}/stopped", {
            "exit_code": codes[0] if codes else None, "killed": killed, "seconds": seconds,
            "region": self.stack.region})
        self._event("stopped", task, seconds=seconds, exit_code=codes[0] if codes else None,
                    killed=killed)
        with self.lock:
            self.stopped.add(t["taskId"])

    def _event(self, kind: str, task, **detail) -> None:
        entry = {"kind": kind, "task": task.name, "ip": task.host.ip, "time": time.time(),
                 "mono": time.monotonic(), **detail}
        self.events.append(entry)
        print(f"[e2e] worker pool: {kind} {task.name} ({task.host.ip})"
              + "".join(f" {k}={v:.1f}" if isinstance(v, float) else f" {k}={v}"
                        for k, v in detail.items()), flush=True)

    # --- for the harness and the tests --------------------------------------------------

    def running(self) -> list:
        with self.lock:
            return [t for i, t in self.started.items() if t is not None
                    and i not in self.stopping]

    def settled(self, count: int) -> bool:
        """True when exactly `count` tasks run and every stop ECS decided is finished and
        recorded: none the emulator still has on its way to STOPPED, none the pool is still
        stopping. A desired count that just went down is not enough: ECS stops the task
        after that, and the container takes seconds to exit."""
        tasks = self.state()["tasks"]
        if any(t["desiredStatus"] == "STOPPED" and t["lastStatus"] != "STOPPED"
               for t in tasks):
            return False
        with self.lock:
            if not self.stopping <= self.stopped:
                return False
        return len(self.running()) == count

    def wait_running(self, count: int, timeout: float = 120) -> None:
        wait_for(f"{count} worker task(s) started", lambda: len(self.running()) >= count
                 and not self.errors, timeout, on_timeout=lambda: "\n".join(self.errors))
        assert not self.errors, self.errors

    def ecs_events(self) -> list[dict]:
        return self._emulator("GET", "/_emulator/ecs-events")["events"]

    def close(self) -> None:
        self.halt.set()
        self.thread.join(timeout=5)


def _group(value) -> str:
    logical, attr = value["Fn::GetAtt"]
    assert attr == "GroupId", value
    return logical
