"""ECS services, task scale-in protection and the ECS agent's task endpoints as the
emulator plays them (tests/aws_emulator/ecs_service.py).

    $AIRFLOW_STACK_VENV/bin/python -m pytest tests/aws_emulator -q -k ecs_service
"""

import json
import time
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from harness import ACCOUNT, REGION, call, calls, client, register

BASE = f"arn:aws:ecs:{REGION}:{ACCOUNT}"


def allow(action, resource="*", condition=None):
    statement = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


def _service(aws, *, desired=0, name="worker", cluster="jobs"):
    """A cluster, an awsvpc task definition, a VPC subnet and a service the emulator
    schedules (its tasks follow desiredCount)."""
    ecs, ec2 = aws("ecs"), aws("ec2")
    ecs.create_cluster(clusterName=cluster)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="w", Description="w", VpcId=vpc)["GroupId"]
    ecs.register_task_definition(
        family=name, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256",
        memory="512", containerDefinitions=[{"name": "worker", "image": "busybox",
                                             "essential": True, "stopTimeout": 5}])
    ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=name,
                       desiredCount=desired, launchType="FARGATE",
                       networkConfiguration={"awsvpcConfiguration": {
                           "subnets": [subnet], "securityGroups": [group]}})
    return ecs


def _manage(endpoint, cluster="jobs", service="worker"):
    status, body = call(endpoint, "POST", "/_emulator/ecs-services",
                        {"cluster": cluster, "service": service, "stop_timeout": 5})
    assert status == 200, body


def _state(endpoint, cluster="jobs", service="worker"):
    return call(endpoint, "GET", f"/_emulator/ecs-services/{cluster}/{service}")[1]


def _wait_tasks(endpoint, predicate, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = _state(endpoint)
        if predicate(state["tasks"]):
            return state["tasks"]
        time.sleep(0.1)
    raise AssertionError(f"scheduler state not reached: {_state(endpoint)}")


def _run_all(endpoint, tasks, ips, role_key=None):
    """What the harness does for new tasks: start them, report their address."""
    for task, ip in zip(tasks, ips):
        status, body = call(endpoint, "POST", f"/_emulator/ecs-tasks/{task['taskId']}/running",
                            {"ip": ip, "task_role_key": role_key, "host": f"w-{ip}"})
        assert status == 200, body


def _events(endpoint, kind=None):
    events = call(endpoint, "GET", "/_emulator/ecs-events")[1]["events"]
    return [e for e in events if kind is None or e["kind"] == kind]


def _agent(endpoint, method, task_id, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{endpoint}/_ecs/{path.format(id=task_id)}", data=data,
                                     method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _two_running(aws, endpoint, role_key=None):
    ecs = _service(aws, desired=2)
    _manage(endpoint)
    tasks = _wait_tasks(endpoint, lambda ts: len(ts) == 2)
    assert {t["lastStatus"] for t in tasks} == {"PROVISIONING"}
    _run_all(endpoint, tasks, ["10.77.0.21", "10.77.0.22"], role_key)
    return ecs, tasks


def test_service_tasks_are_listed_by_service_with_their_address(aws, endpoint):
    ecs, tasks = _two_running(aws, endpoint)
    # A standalone task of the same cluster is not the service's.
    ecs.register_task_definition(family="job", containerDefinitions=[
        {"name": "main", "image": "busybox", "memory": 64}])
    listed = ecs.list_tasks(cluster="jobs", serviceName="worker",
                            desiredStatus="RUNNING")["taskArns"]
    assert sorted(listed) == sorted(t["taskArn"] for t in tasks)
    assert ecs.list_tasks(cluster="jobs", serviceName="other")["taskArns"] == []
    described = ecs.describe_tasks(cluster="jobs", tasks=listed)["tasks"]
    assert {t["lastStatus"] for t in described} == {"RUNNING"}
    ips = sorted(d["value"] for t in described for a in t["attachments"]
                 if a["type"] == "ElasticNetworkInterface" for d in a["details"]
                 if d["name"] == "privateIPv4Address")
    assert ips == ["10.77.0.21", "10.77.0.22"]
    assert all(t["taskArn"].startswith(f"{BASE}:task/jobs/") for t in described)
    svc = ecs.describe_services(cluster="jobs", services=["worker"])["services"][0]
    assert (svc["desiredCount"], svc["runningCount"]) == (2, 2)


def test_protection_is_set_read_and_expires(aws, endpoint):
    ecs, tasks = _two_running(aws, endpoint)
    arn = tasks[0]["taskArn"]
    before = time.time()
    out = ecs.update_task_protection(cluster="jobs", tasks=[arn], protectionEnabled=True,
                                     expiresInMinutes=2)
    assert out["failures"] == []
    (p,) = out["protectedTasks"]
    assert p["taskArn"] == arn and p["protectionEnabled"] is True
    assert 115 <= p["expirationDate"].timestamp() - before <= 125
    got = ecs.get_task_protection(cluster="jobs", tasks=[arn, tasks[1]["taskArn"]])
    assert [(t["taskArn"], t["protectionEnabled"]) for t in got["protectedTasks"]] == [
        (arn, True), (tasks[1]["taskArn"], False)]
    # Without expiresInMinutes: ECS's default of 120 minutes.
    out = ecs.update_task_protection(cluster="jobs", tasks=[tasks[1]["taskArn"]],
                                     protectionEnabled=True)
    assert 7150 <= out["protectedTasks"][0]["expirationDate"].timestamp() - before <= 7250
    with pytest.raises(ClientError) as e:
        ecs.update_task_protection(cluster="jobs", tasks=[arn], protectionEnabled=True,
                                   expiresInMinutes=2881)
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"
    # Two minutes later the first protection has lapsed; the 120-minute one has not.
    call(endpoint, "POST", "/_emulator/clock", {"advance": 121})
    got = ecs.get_task_protection(cluster="jobs", tasks=[arn, tasks[1]["taskArn"]])
    assert [t["protectionEnabled"] for t in got["protectedTasks"]] == [False, True]
    # Switched off explicitly.
    ecs.update_task_protection(cluster="jobs", tasks=[tasks[1]["taskArn"]],
                               protectionEnabled=False)
    got = ecs.get_task_protection(cluster="jobs", tasks=[tasks[1]["taskArn"]])
    assert got["protectedTasks"][0]["protectionEnabled"] is False
    # Unknown and standalone tasks fail per task, as ECS reports them.
    out = ecs.update_task_protection(cluster="jobs", tasks=[f"{BASE}:task/jobs/nope"],
                                     protectionEnabled=True)
    assert out["failures"][0]["reason"] == "MISSING"


def test_protection_needs_its_permission_on_the_task(aws, endpoint):
    _, tasks = _two_running(aws, endpoint)
    arn = tasks[0]["taskArn"]
    denied = client(endpoint, "ecs", register(
        endpoint, "reader", allow("ecs:DescribeTasks", f"{BASE}:task/jobs/*")))
    with pytest.raises(ClientError) as e:
        denied.update_task_protection(cluster="jobs", tasks=[arn], protectionEnabled=True,
                                      expiresInMinutes=5)
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        denied.get_task_protection(cluster="jobs", tasks=[arn])
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    allowed = client(endpoint, "ecs", register(
        endpoint, "protector", allow(["ecs:UpdateTaskProtection", "ecs:GetTaskProtection"],
                                     f"{BASE}:task/jobs/*")))
    allowed.update_task_protection(cluster="jobs", tasks=[arn], protectionEnabled=True,
                                   expiresInMinutes=5)
    assert _events(endpoint, "protection")[-1]["task"] == arn
    entries = [(c["action"], c["resource"], c["allowed"]) for c in calls(endpoint)]
    assert entries == [("ecs:UpdateTaskProtection", arn, False),
                       ("ecs:GetTaskProtection", arn, False),
                       ("ecs:UpdateTaskProtection", arn, True)]


def test_agent_endpoint_is_authorized_against_the_task_role(aws, endpoint):
    role = register(endpoint, "worker-task", allow(
        ["ecs:UpdateTaskProtection", "ecs:GetTaskProtection"], f"{BASE}:task/jobs/*",
        {"ArnEquals": {"ecs:cluster": f"{BASE}:cluster/jobs"}}))
    ecs, tasks = _two_running(aws, endpoint, role_key=role)
    task_id, arn = tasks[0]["taskId"], tasks[0]["taskArn"]
    status, body = _agent(endpoint, "PUT", task_id, "agent/{id}/task-protection/v1/state",
                          {"ProtectionEnabled": True, "ExpiresInMinutes": 3})
    assert status == 200, body
    assert body["protection"]["ProtectionEnabled"] is True
    assert body["protection"]["TaskArn"] == arn
    assert body["protection"]["ExpirationDate"].endswith("Z")
    status, body = _agent(endpoint, "GET", task_id, "agent/{id}/task-protection/v1/state")
    assert status == 200 and body["protection"]["ProtectionEnabled"] is True
    got = ecs.get_task_protection(cluster="jobs", tasks=[arn])["protectedTasks"][0]
    assert got["protectionEnabled"] is True  # the same state the API sees
    status, body = _agent(endpoint, "PUT", task_id, "agent/{id}/task-protection/v1/state",
                          {"ProtectionEnabled": False})
    assert status == 200 and body["protection"] == {
        "ExpirationDate": None, "ProtectionEnabled": False, "TaskArn": arn}
    status, body = _agent(endpoint, "PUT", task_id, "agent/{id}/task-protection/v1/state",
                          {"ExpiresInMinutes": 3})
    assert status == 400 and "ProtectionEnabled" in body["error"]["Message"]
    decisions = [(c["identity"], c["operation"], c["allowed"]) for c in calls(endpoint)]
    assert decisions == [("worker-task", "UpdateTaskProtection (ECS agent)", True),
                         ("worker-task", "GetTaskProtection (ECS agent)", True),
                         ("worker-task", "UpdateTaskProtection (ECS agent)", True)]


def test_agent_endpoint_refuses_a_task_role_without_the_permission(aws, endpoint):
    role = register(endpoint, "bare-task", allow("s3:GetObject", "arn:aws:s3:::b/*"))
    ecs, tasks = _two_running(aws, endpoint, role_key=role)
    status, body = _agent(endpoint, "PUT", tasks[0]["taskId"],
                          "agent/{id}/task-protection/v1/state", {"ProtectionEnabled": True})
    assert status == 400, body
    assert body["error"]["Code"] == "AccessDeniedException"
    assert "ecs:UpdateTaskProtection" in body["error"]["Message"]
    (entry,) = calls(endpoint, "bare-task")
    assert (entry["action"], entry["allowed"]) == ("ecs:UpdateTaskProtection", False)
    got = ecs.get_task_protection(cluster="jobs", tasks=[tasks[0]["taskArn"]])
    assert got["protectedTasks"][0]["protectionEnabled"] is False


def test_a_fargate_task_reads_its_tags_through_the_api_not_task_with_tags(aws, endpoint):
    """What the worker module does to see the drain tag. On Fargate the task metadata
    endpoint v4 has no /taskWithTags (AWS docs: "Amazon ECS task metadata endpoint
    version 4 for tasks on Fargate" lists the container path, /task, /stats and
    /task/stats; taskWithTags is on "Amazon ECS task metadata endpoint version 4", for
    tasks on EC2), so the task takes its ARN from /task and calls ListTagsForResource
    with its task role's credentials."""
    role = register(endpoint, "worker-task", allow(
        "ecs:ListTagsForResource", f"{BASE}:task/jobs/*"))
    ecs, tasks = _two_running(aws, endpoint, role_key=role)
    task_id, arn = tasks[0]["taskId"], tasks[0]["taskArn"]
    # (a) No taskWithTags for a Fargate task; /task gives the ARN, as on Fargate.
    status, body = _agent(endpoint, "GET", task_id, "metadata/{id}/worker/taskWithTags")
    assert status == 404, body
    assert "EC2 only" in body["error"] and "Fargate" in body["error"]
    status, meta = _agent(endpoint, "GET", task_id, "metadata/{id}/worker/task")
    assert status == 200 and meta["TaskARN"] == arn and meta["LaunchType"] == "FARGATE"
    assert "TaskTags" not in meta
    # (b) The task role reads the drain tag the tagger sets, and sees it go.
    worker = client(endpoint, "ecs", role)
    assert worker.list_tags_for_resource(resourceArn=arn)["tags"] == []
    tagger = client(endpoint, "ecs", register(
        endpoint, "tagger", allow(["ecs:TagResource", "ecs:UntagResource"],
                                  f"{BASE}:task/jobs/*")))
    tagger.tag_resource(resourceArn=arn, tags=[{"key": "airflow-stack:drain",
                                                "value": "true"}])
    assert worker.list_tags_for_resource(resourceArn=arn)["tags"] == [
        {"key": "airflow-stack:drain", "value": "true"}]
    # The other task of the service is not tagged.
    assert worker.list_tags_for_resource(resourceArn=tasks[1]["taskArn"])["tags"] == []
    described = ecs.describe_tasks(cluster="jobs", tasks=[arn], include=["TAGS"])["tasks"][0]
    assert described["tags"] == [{"key": "airflow-stack:drain", "value": "true"}]
    tagger.untag_resource(resourceArn=arn, tagKeys=["airflow-stack:drain"])
    assert worker.list_tags_for_resource(resourceArn=arn)["tags"] == []
    reads = [(c["action"], c["resource"], c["context"].get("ecs:cluster"), c["allowed"])
             for c in calls(endpoint, "worker-task")]
    assert reads == [("ecs:ListTagsForResource", arn, f"{BASE}:cluster/jobs", True),
                     ("ecs:ListTagsForResource", arn, f"{BASE}:cluster/jobs", True),
                     ("ecs:ListTagsForResource", tasks[1]["taskArn"],
                      f"{BASE}:cluster/jobs", True),
                     ("ecs:ListTagsForResource", arn, f"{BASE}:cluster/jobs", True)]
    # (c) A role without ecs:ListTagsForResource is refused, and the refusal recorded;
    # so is a tag it may not set.
    no_tags = client(endpoint, "ecs", register(endpoint, "no-tags", allow(
        "ecs:DescribeTasks", f"{BASE}:task/jobs/*")))
    with pytest.raises(ClientError) as e:
        no_tags.list_tags_for_resource(resourceArn=arn)
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "ecs:ListTagsForResource" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        no_tags.tag_resource(resourceArn=arn, tags=[{"key": "k", "value": "v"}])
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    listed, tagged = calls(endpoint, "no-tags")
    assert (listed["action"], listed["resource"], listed["allowed"]) == (
        "ecs:ListTagsForResource", arn, False)
    assert (tagged["action"], tagged["allowed"]) == ("ecs:TagResource", False)
    assert tagged["context"]["aws:TagKeys"] == ["k"]
    assert [e["kind"] for e in _events(endpoint) if e["kind"].startswith("task-t")
            or e["kind"].startswith("task-u")] == ["task-tagged", "task-untagged"]


def test_a_lowered_count_stops_only_unprotected_tasks(aws, endpoint):
    ecs = _service(aws, desired=3)
    _manage(endpoint)
    tasks = _wait_tasks(endpoint, lambda ts: len(ts) == 3)
    _run_all(endpoint, tasks, ["10.77.0.31", "10.77.0.32", "10.77.0.33"])
    protected = [tasks[0]["taskArn"], tasks[2]["taskArn"]]
    ecs.update_task_protection(cluster="jobs", tasks=protected, protectionEnabled=True,
                               expiresInMinutes=1)
    ecs.update_service(cluster="jobs", service="worker", desiredCount=0)
    # Only the unprotected task is asked to stop; the scheduler keeps the other two.
    after = _wait_tasks(endpoint, lambda ts: sum(t["desiredStatus"] == "STOPPED"
                                                 for t in ts) == 1)
    stopping = [t for t in after if t["desiredStatus"] == "STOPPED"]
    assert [t["taskArn"] for t in stopping] == [tasks[1]["taskArn"]]
    assert stopping[0]["lastStatus"] == "DEACTIVATING"
    time.sleep(1)  # several scheduler rounds: still nothing else
    assert sum(t["desiredStatus"] == "STOPPED" for t in _state(endpoint)["tasks"]) == 1
    assert _events(endpoint, "scale-in-blocked")[-1]["protected"] == 2
    listed = ecs.list_tasks(cluster="jobs", serviceName="worker",
                            desiredStatus="RUNNING")["taskArns"]
    assert sorted(listed) == sorted(protected)
    status, _ = call(endpoint, "POST", f"/_emulator/ecs-tasks/{tasks[1]['taskId']}/stopped",
                     {"exit_code": 0, "seconds": 0.5})
    assert status == 200
    (stopped,) = ecs.describe_tasks(cluster="jobs", tasks=[tasks[1]["taskArn"]])["tasks"]
    assert stopped["lastStatus"] == "STOPPED" and stopped["desiredStatus"] == "STOPPED"
    assert stopped["stoppedReason"].startswith("Scaling activity initiated by")
    # One protection is switched off: that task goes next; the other lapses a minute on.
    ecs.update_task_protection(cluster="jobs", tasks=[protected[1]], protectionEnabled=False)
    _wait_tasks(endpoint, lambda ts: [t["taskArn"] for t in ts
                                      if t["desiredStatus"] == "STOPPED"] == [protected[1]])
    call(endpoint, "POST", "/_emulator/clock", {"advance": 61})
    _wait_tasks(endpoint, lambda ts: all(t["desiredStatus"] == "STOPPED" for t in ts))
    stops = [e["task"] for e in _events(endpoint, "task-stop")]
    assert stops == [tasks[1]["taskArn"], protected[1], protected[0]]
    # Scale-out starts new tasks.
    ecs.update_service(cluster="jobs", service="worker", desiredCount=1)
    _wait_tasks(endpoint, lambda ts: sum(t["lastStatus"] == "PROVISIONING" for t in ts) == 1)
    assert [e["desired"] for e in _events(endpoint, "desired-count")] == [0, 1]


def test_protection_is_only_for_service_tasks(aws, endpoint):
    ecs = aws("ecs")
    ecs.create_cluster(clusterName="jobs")
    ecs.register_task_definition(family="job", containerDefinitions=[
        {"name": "main", "image": "busybox", "memory": 64}])
    ecs.register_container_instance  # noqa: B018 - (no EC2 instance: FARGATE below)
    arn = ecs.run_task(cluster="jobs", taskDefinition="job", launchType="FARGATE")[
        "tasks"][0]["taskArn"]
    out = ecs.update_task_protection(cluster="jobs", tasks=[arn], protectionEnabled=True)
    assert out["protectedTasks"] == []
    assert out["failures"][0]["reason"] == "TASK_NOT_VALID"
