"""ECS services, task scale-in protection and the ECS agent's task endpoints.

moto 5.2.5 keeps a service's desiredCount as a number and starts no tasks for it;
UpdateTaskProtection and GetTaskProtection are not implemented; ListTasks ignores
serviceName. Here, as ECS does it:

* Task scale-in protection (API: UpdateTaskProtection, GetTaskProtection): per task,
  `protectionEnabled` with an expiry (`expiresInMinutes` 1-2880, default 120); once the
  expiry passes the task is unprotected. Only tasks of a service can be protected
  (a standalone task fails with TASK_NOT_VALID, a task the cluster does not have with
  MISSING). Shapes: API_UpdateTaskProtection / API_GetTaskProtection / API_ProtectedTask.
  https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_UpdateTaskProtection.html
* Managed services (`POST /_emulator/ecs-services`): the emulator plays the service
  scheduler: it keeps the tasks whose desiredStatus is RUNNING equal to desiredCount.
  Scale-out creates tasks (lastStatus PROVISIONING) for the harness to start; scale-in
  picks only tasks that are not protected (ECS: "protected tasks are not terminated by
  scale-in events"); when too few are unprotected it stops what it can and keeps trying
  as protection lapses. A stop sets desiredStatus STOPPED (lastStatus DEACTIVATING); the
  harness stops the task's processes (SIGTERM, then SIGKILL after stopTimeout) and
  reports it STOPPED. The harness learns what to do by polling
  `GET /_emulator/ecs-services/<cluster>/<service>`.
* The ECS agent's task endpoints (ECS_AGENT_URI, ECS_CONTAINER_METADATA_URI_V4), one
  per task: `<endpoint>/_ecs/agent/<task id>` and `<endpoint>/_ecs/metadata/<task id>/
  <container>`. The agent calls UpdateTaskProtection/GetTaskProtection with the task
  role's credentials, so those calls are authorized against the task role (its access
  key is given when the harness reports the task RUNNING) and recorded like every call.
  Response shapes: the agent's TaskProtectionResponse (`{"protection": {"ExpirationDate",
  "ProtectionEnabled", "TaskArn"}}`, `{"failure": {...}}`, `{"error": {"Arn", "Code",
  "Message"}, "requestID"}`), docs "Amazon ECS task scale-in protection endpoint".
* Every scheduling event (desired count set, task started / running / stop requested /
  stopped, protection changed, task tagged) is recorded in order at
  `GET /_emulator/ecs-events`, so a test can check what was stopped when.

Time: protection expiry uses `now()`, which `POST /_emulator/clock {"advance": s}` moves
forward (self-tests need not wait minutes).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid

LOCK = threading.RLock()
CLOCK = {"offset": 0.0}
PROTECTION: dict[str, dict] = {}     # task ARN -> {"enabled": bool, "expires": float|None}
MANAGED: dict[tuple, dict] = {}      # (account, region, cluster, service) -> settings
TASK_INFO: dict[str, dict] = {}      # task ARN -> {"ip", "task_role_key", ...}
EVENTS: list[dict] = []
DEFAULT_MINUTES = 120
_reconciler: dict = {}


def now() -> float:
    return time.time() + CLOCK["offset"]


def reset() -> None:
    with LOCK:
        CLOCK["offset"] = 0.0
        PROTECTION.clear()
        MANAGED.clear()
        TASK_INFO.clear()
        EVENTS.clear()


def record(kind: str, **detail) -> None:
    with LOCK:
        EVENTS.append({"seq": len(EVENTS) + 1, "time": now(), "kind": kind, **detail})


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- protection --------------------------------------------------------------------------


def protection_of(task_arn: str) -> tuple[bool, float | None]:
    """(enabled, expiry): an expired protection is off (and forgotten)."""
    with LOCK:
        state = PROTECTION.get(task_arn)
        if not state or not state["enabled"]:
            return False, None
        if state["expires"] is not None and state["expires"] <= now():
            PROTECTION.pop(task_arn, None)
            record("protection-expired", task=task_arn)
            return False, None
        return True, state["expires"]


def is_service_task(task) -> bool:
    return str(getattr(task, "group", "") or "").startswith("service:")


def find_task(backend, cluster: str, ref: str):
    """The cluster's task named by ARN or id, or None."""
    cluster_name = cluster.rsplit("/", 1)[-1] if cluster.startswith("arn:") else cluster
    task_id = ref.rsplit("/", 1)[-1]
    for arn, task in backend.tasks.get(cluster_name, {}).items():
        if arn.rsplit("/", 1)[-1] == task_id:
            return task
    return None


def set_protection(backend, cluster: str, refs: list[str], enabled: bool,
                   minutes: int | None, via: str) -> tuple[list[dict], list[dict]]:
    """UpdateTaskProtection's effect: (protectedTasks, failures), API shapes."""
    protected, failures = [], []
    for ref in refs:
        task = find_task(backend, cluster, ref)
        if task is None or task.desired_status == "STOPPED" and task.last_status == "STOPPED":
            failures.append({"arn": ref, "reason": "MISSING",
                             "detail": "The task was not found in the cluster"})
            continue
        if not is_service_task(task):
            failures.append({"arn": task.task_arn, "reason": "TASK_NOT_VALID",
                             "detail": "The task is not part of a service"})
            continue
        with LOCK:
            if enabled:
                expires = now() + 60 * (minutes or DEFAULT_MINUTES)
                PROTECTION[task.task_arn] = {"enabled": True, "expires": expires}
            else:
                expires = None
                PROTECTION.pop(task.task_arn, None)
            record("protection", task=task.task_arn, enabled=enabled, via=via,
                   expires=expires)
        protected.append(protected_task(task.task_arn))
    return protected, failures


def protected_task(task_arn: str) -> dict:
    enabled, expires = protection_of(task_arn)
    out = {"taskArn": task_arn, "protectionEnabled": enabled}
    if enabled and expires is not None:
        out["expirationDate"] = expires
    return out


def validate_minutes(minutes) -> str | None:
    if minutes is None:
        return None
    if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= 2880:
        return f"expiresInMinutes must be between 1 and 2880 minutes (got {minutes!r})"
    return None


# --- the API operations -----------------------------------------------------------------


def update_task_protection(backend, body: dict) -> tuple[int, dict]:
    tasks = body.get("tasks") or []
    if "protectionEnabled" not in body or not tasks:
        return 400, _client_error("InvalidParameterException",
                                  "tasks and protectionEnabled are required")
    if len(tasks) > 10:
        return 400, _client_error("InvalidParameterException",
                                  "tasks can have at most 10 items")
    problem = validate_minutes(body.get("expiresInMinutes"))
    if problem:
        return 400, _client_error("InvalidParameterException", problem)
    cluster = body.get("cluster") or "default"
    if _cluster(backend, cluster) is None:
        return 400, _client_error("ClusterNotFoundException", "Cluster not found.")
    protected, failures = set_protection(backend, cluster, tasks,
                                         bool(body["protectionEnabled"]),
                                         body.get("expiresInMinutes"), "UpdateTaskProtection")
    return 200, {"protectedTasks": protected, "failures": failures}


def get_task_protection(backend, body: dict) -> tuple[int, dict]:
    cluster = body.get("cluster") or "default"
    if _cluster(backend, cluster) is None:
        return 400, _client_error("ClusterNotFoundException", "Cluster not found.")
    refs = body.get("tasks")
    if refs is None:
        name = cluster.rsplit("/", 1)[-1]
        refs = [arn for arn, t in backend.tasks.get(name, {}).items() if is_service_task(t)
                and t.desired_status == "RUNNING"]
    if len(refs) > 100:
        return 400, _client_error("InvalidParameterException",
                                  "tasks can have at most 100 items")
    protected, failures = [], []
    for ref in refs:
        task = find_task(backend, cluster, ref)
        if task is None:
            failures.append({"arn": ref, "reason": "MISSING"})
        elif not is_service_task(task):
            failures.append({"arn": task.task_arn, "reason": "TASK_NOT_VALID"})
        else:
            protected.append(protected_task(task.task_arn))
    return 200, {"protectedTasks": protected, "failures": failures}


def _client_error(code: str, message: str) -> dict:
    return {"__type": code, "message": message}


def _cluster(backend, cluster: str):
    name = cluster.rsplit("/", 1)[-1] if cluster.startswith("arn:") else cluster
    return backend.clusters.get(name)


# --- the service scheduler --------------------------------------------------------------


def manage(backends, body: dict) -> dict:
    """Registers a service whose task count the emulator keeps at desiredCount."""
    account, region = body.get("account", "123456789012"), body.get("region", "us-east-1")
    backend = backends[account][region]
    service = backend._get_service(body["cluster"], body["service"])
    key = (account, region, service.cluster_name, service.name)
    with LOCK:
        MANAGED[key] = {"stop_timeout": float(body.get("stop_timeout", 30))}
        record("service-managed", service=service.name, desired=service.desired_count)
    start_reconciler(backends)
    return {"service": service.arn, "desiredCount": service.desired_count}


def start_reconciler(backends) -> None:
    with LOCK:
        if _reconciler.get("thread"):
            return
        t = threading.Thread(target=_loop, args=(backends,), daemon=True,
                             name="ecs-service-scheduler")
        _reconciler["thread"] = t
    t.start()


def _loop(backends) -> None:
    while True:
        try:
            reconcile_all(backends)
        except Exception:  # noqa: BLE001 - logged, the scheduler keeps running
            import logging
            logging.getLogger("aws_emulator").exception("ECS service scheduler")
        time.sleep(0.25)


def service_tasks(backend, cluster_name: str, service_name: str) -> list:
    return [t for t in backend.tasks.get(cluster_name, {}).values()
            if t.group == f"service:{service_name}"]


def reconcile_all(backends) -> None:
    with LOCK:
        keys = list(MANAGED)
    for account, region, cluster_name, service_name in keys:
        backend = backends[account][region]
        with LOCK:
            reconcile(backend, cluster_name, service_name)


def reconcile(backend, cluster_name: str, service_name: str) -> None:
    service = backend._get_service(cluster_name, service_name)
    wanted = int(service.desired_count or 0)
    tasks = service_tasks(backend, cluster_name, service_name)
    live = [t for t in tasks if t.desired_status == "RUNNING"]
    if len(live) < wanted:
        for _ in range(wanted - len(live)):
            task = _create_task(backend, service)
            record("task-start", service=service_name, task=task.task_arn,
                   desired=wanted)
    elif len(live) > wanted:
        excess = len(live) - wanted
        # Not yet running first (nothing to lose), then the oldest; protected never.
        order = sorted(live, key=lambda t: (t.last_status == "RUNNING",
                                            getattr(t, "emu_created", 0)))
        free = [t for t in order if not protection_of(t.task_arn)[0]]
        for task in free[:excess]:
            task.desired_status = "STOPPED"
            task.last_status = "DEACTIVATING"
            task.stopped_reason = (f"Scaling activity initiated by (deployment "
                                   f"{_deployment_id(service)})")
            task.stop_code = "ServiceSchedulerInitiated"
            record("task-stop", service=service_name, task=task.task_arn, desired=wanted,
                   ip=TASK_INFO.get(task.task_arn, {}).get("ip"),
                   protected_left=[t.task_arn for t in live
                                   if protection_of(t.task_arn)[0]])
        if len(free) < excess:
            state = service.__dict__.setdefault("emu_blocked", None)
            blocked = excess - len(free)
            if state != blocked:
                service.emu_blocked = blocked
                record("scale-in-blocked", service=service_name, desired=wanted,
                       protected=blocked)
        else:
            service.emu_blocked = None
    running = [t for t in tasks if t.desired_status == "RUNNING"]
    service.running_count = sum(1 for t in running if t.last_status == "RUNNING")
    service.pending_count = sum(1 for t in running if t.last_status != "RUNNING")


def _deployment_id(service) -> str:
    deployments = getattr(service, "deployments", None) or []
    return deployments[0].get("id", "ecs-svc") if deployments else "ecs-svc"


def _create_task(backend, service):
    from moto.ecs.models import Task
    definition = backend.describe_task_definition(service.task_definition)
    cluster = backend._get_cluster(service.cluster_name)
    network = getattr(service, "network_configuration", None) or None
    task = Task(cluster=cluster, task_definition=definition, container_instance_arn=None,
                resource_requirements=backend._calculate_task_resource_requirements(
                    definition),
                backend=backend, group=f"service:{service.name}", launch_type="FARGATE",
                started_by=_deployment_id(service), tags=[],
                networking_configuration=network if definition.network_mode == "awsvpc"
                else None)
    task._transitions = []  # the scheduler and the harness move it, not describe calls
    task.last_status = "PROVISIONING"
    task.emu_created = time.time()
    backend.tasks.setdefault(cluster.name, {})[task.task_arn] = task
    return task


def service_state(backend, cluster: str, service_name: str) -> dict:
    service = backend._get_service(cluster, service_name)
    tasks = service_tasks(backend, service.cluster_name, service.name)
    listed = []
    for t in tasks:
        if t.last_status == "STOPPED":
            continue
        enabled, expires = protection_of(t.task_arn)
        listed.append({"taskArn": t.task_arn, "taskId": t.id, "lastStatus": t.last_status,
                       "desiredStatus": t.desired_status,
                       "taskDefinitionArn": t.task_definition_arn,
                       "protected": enabled, "protectionExpires": expires,
                       **{k: v for k, v in TASK_INFO.get(t.task_arn, {}).items()
                          if k != "task_role_key"}})
    return {"serviceArn": service.arn, "desiredCount": service.desired_count,
            "stopTimeout": MANAGED.get((backend.account_id, backend.region_name,
                                        service.cluster_name, service.name),
                                       {}).get("stop_timeout"),
            "tasks": listed}


def task_running(backend, task_id: str, body: dict) -> dict:
    task = _task_by_id(backend, task_id)
    with LOCK:
        TASK_INFO[task.task_arn] = {"ip": body.get("ip"),
                                    "task_role_key": body.get("task_role_key"),
                                    "host": body.get("host")}
        if body.get("ip"):
            _set_eni_ip(task, body["ip"])
        if task.desired_status == "RUNNING":
            task.last_status = "RUNNING"
        record("task-running", task=task.task_arn, ip=body.get("ip"), host=body.get("host"))
        _reconcile_service_of(backend, task)
    return {"taskArn": task.task_arn, "lastStatus": task.last_status}


def task_stopped(backend, task_id: str, body: dict) -> dict:
    task = _task_by_id(backend, task_id)
    with LOCK:
        task.desired_status = "STOPPED"
        task.last_status = "STOPPED"
        if body.get("reason") and not task.stopped_reason:
            task.stopped_reason = body["reason"]
        for c in task.containers:
            c.last_status = "STOPPED"
            c.exit_code = c.exitCode = body.get("exit_code")
        PROTECTION.pop(task.task_arn, None)
        record("task-stopped", task=task.task_arn, exit_code=body.get("exit_code"),
               killed=bool(body.get("killed")), seconds=body.get("seconds"),
               ip=TASK_INFO.get(task.task_arn, {}).get("ip"))
        _reconcile_service_of(backend, task)
    return {"taskArn": task.task_arn, "lastStatus": "STOPPED"}


def _reconcile_service_of(backend, task) -> None:
    name = str(task.group or "")[len("service:"):]
    if (backend.account_id, backend.region_name, task.cluster_name, name) in MANAGED:
        reconcile(backend, task.cluster_name, name)


def _task_by_id(backend, task_id: str):
    for tasks in backend.tasks.values():
        for arn, task in tasks.items():
            if arn.rsplit("/", 1)[-1] == task_id:
                return task
    raise KeyError(f"no task {task_id}")


def _set_eni_ip(task, ip: str) -> None:
    """The ENI attachment's privateIPv4Address: the address the task really has."""
    attachment = next((a for a in task.attachments
                       if a.get("type") == "ElasticNetworkInterface"), None)
    if attachment is None:
        attachment = {"id": str(uuid.uuid4()), "type": "ElasticNetworkInterface",
                      "status": "ATTACHED", "details": []}
        task.attachments.append(attachment)
    details = [d for d in attachment["details"] if d["name"] != "privateIPv4Address"]
    details.append({"name": "privateIPv4Address", "value": ip})
    attachment["details"] = details


# --- the agent's endpoints --------------------------------------------------------------


def task_metadata(backend, task, container: str | None) -> dict:
    """Task metadata v4 (`/task`), trimmed to what a task on Fargate gets."""
    definition = backend.describe_task_definition(task.task_definition_arn)
    ip = TASK_INFO.get(task.task_arn, {}).get("ip")
    names = [c.get("name") or c.get("Name") for c in definition.container_definitions]
    containers = [{"Name": n, "DockerName": n, "DesiredStatus": task.desired_status,
                   "KnownStatus": task.last_status, "Type": "NORMAL",
                   "Networks": [{"NetworkMode": "awsvpc", "IPv4Addresses": [ip]}]
                   if ip else []} for n in names]
    return {"Cluster": f"arn:aws:ecs:{task.region_name}:{backend.account_id}:cluster/"
                       f"{task.cluster_name}",
            "TaskARN": task.task_arn, "Family": definition.family,
            "Revision": str(definition.revision), "DesiredStatus": task.desired_status,
            "KnownStatus": task.last_status, "LaunchType": "FARGATE",
            "Containers": containers if container is None else
            [c for c in containers if c["Name"] == container] or containers}


def agent_protection_response(task_arn: str) -> dict:
    enabled, expires = protection_of(task_arn)
    return {"protection": {"ExpirationDate": iso(expires) if enabled and expires else None,
                           "ProtectionEnabled": enabled, "TaskArn": task_arn}}


def agent_error(task_arn: str, code: str, message: str) -> dict:
    return {"requestID": str(uuid.uuid4()),
            "error": {"Arn": task_arn, "Code": code, "Message": message}}


def parse_agent_body(raw: bytes) -> tuple[dict | None, str | None]:
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        return None, "Invalid request: failed to decode request"
    if not isinstance(body, dict) or "ProtectionEnabled" not in body:
        return None, "Invalid request: does not contain 'ProtectionEnabled' field"
    if not isinstance(body["ProtectionEnabled"], bool):
        return None, "Invalid request: 'ProtectionEnabled' must be a boolean"
    minutes = body.get("ExpiresInMinutes")
    if minutes is not None and validate_minutes(minutes):
        return None, f"Invalid request: {validate_minutes(minutes)}"
    return body, None


# --- a service's network configuration from CloudFormation --------------------------------
#
# moto's AWS::ECS::Service drops NetworkConfiguration, so DescribeServices showed no
# subnets for a service CloudFormation created; on ECS it is part of the service
# (API_NetworkConfiguration: awsvpcConfiguration {subnets, securityGroups,
# assignPublicIp}). `airflow-stack rotate-fernet` starts its one-off task in the
# services' subnets and reads them there.


def _network_from_template(properties: dict) -> dict:
    vpc = (properties.get("NetworkConfiguration") or {}).get("AwsvpcConfiguration") or {}
    if not vpc:
        return {}
    return {"awsvpcConfiguration": {
        "subnets": list(vpc.get("Subnets") or []),
        "securityGroups": list(vpc.get("SecurityGroups") or []),
        "assignPublicIp": vpc.get("AssignPublicIp", "DISABLED"),
    }}


def _keep_network(original):
    def wrapped(cls, *args, **kwargs):
        service = original.__func__(cls, *args, **kwargs)
        template = kwargs.get("cloudformation_json") or next(
            (a for a in args if isinstance(a, dict) and "Properties" in a), {})
        network = _network_from_template(template.get("Properties") or {})
        if network:
            service.network_configuration = network
        return service
    return classmethod(wrapped)


def _patch_service_network() -> None:
    from moto.ecs.models import Service
    for name in ("create_from_cloudformation_json", "update_from_cloudformation_json"):
        setattr(Service, name, _keep_network(getattr(Service, name)))


_patch_service_network()
