"""RDS stop and start through `stopping` / `starting`, as AWS does them
(tests/aws_emulator/rds_state.py), recorded in the emulator's ordered event list.

    $AIRFLOW_STACK_VENV/bin/python -m pytest tests/aws_emulator -q -k rds_state
"""

import time

import pytest
from botocore.exceptions import ClientError

from harness import call


def _instance(aws, name="db"):
    aws("rds").create_db_instance(
        DBInstanceIdentifier=name, DBInstanceClass="db.t4g.micro", Engine="postgres",
        MasterUsername="airflow", MasterUserPassword="not-a-secret-1", AllocatedStorage=20)


def _status(aws, name="db"):
    return aws("rds").describe_db_instances(DBInstanceIdentifier=name)[
        "DBInstances"][0]["DBInstanceStatus"]


def _cluster_status(aws, name="aurora"):
    return aws("rds").describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0][
        "Status"]


def _wait(read, wanted, timeout=10):
    deadline = time.time() + timeout
    seen = []
    while time.time() < deadline:
        seen.append(read())
        if seen[-1] == wanted:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"never {wanted}: {seen[-5:]}")


def _rds_events(endpoint):
    events = call(endpoint, "GET", "/_emulator/ecs-events")[1]["events"]
    return [e for e in events if e["kind"].startswith("rds-")]


def test_an_instance_stops_and_starts_through_a_transition(aws, endpoint):
    assert call(endpoint, "POST", "/_emulator/rds-transition", {"seconds": 0.5})[0] == 200
    _instance(aws)
    stopped = aws("rds").stop_db_instance(DBInstanceIdentifier="db")["DBInstance"]
    assert stopped["DBInstanceStatus"] == "stopping"
    seen = _wait(lambda: _status(aws), "stopped")
    assert seen[0] == "stopping", seen  # not stopped at once, as moto alone has it
    # AWS refuses to start an instance before it has stopped, and to stop it twice.
    with pytest.raises(ClientError) as again:
        aws("rds").stop_db_instance(DBInstanceIdentifier="db")
    assert again.value.response["Error"]["Code"] == "InvalidDBInstanceState"
    started = aws("rds").start_db_instance(DBInstanceIdentifier="db")["DBInstance"]
    assert started["DBInstanceStatus"] == "starting"
    seen = _wait(lambda: _status(aws), "available")
    assert seen[0] == "starting", seen
    assert [(e["kind"], e.get("action"), e["status"]) for e in _rds_events(endpoint)] == [
        ("rds-request", "StopDBInstance", "stopping"),
        ("rds-status", None, "stopped"),
        ("rds-request", "StartDBInstance", "starting"),
        ("rds-status", None, "available"),
    ]


def test_an_aurora_cluster_stops_and_starts_through_a_transition(aws, endpoint):
    call(endpoint, "POST", "/_emulator/rds-transition", {"seconds": 0.3})
    aws("rds").create_db_cluster(
        DBClusterIdentifier="aurora", Engine="aurora-postgresql", MasterUsername="airflow",
        MasterUserPassword="not-a-secret-1",
        ServerlessV2ScalingConfiguration={"MinCapacity": 0.5, "MaxCapacity": 2})
    assert aws("rds").stop_db_cluster(DBClusterIdentifier="aurora")["DBCluster"][
        "Status"] == "stopping"
    _wait(lambda: _cluster_status(aws), "stopped")
    # moto alone answers "started", a status AWS never reports.
    assert aws("rds").start_db_cluster(DBClusterIdentifier="aurora")["DBCluster"][
        "Status"] == "starting"
    _wait(lambda: _cluster_status(aws), "available")
    assert [e["status"] for e in _rds_events(endpoint)] == [
        "stopping", "stopped", "starting", "available"]


def test_the_transition_time_is_checked_and_reset(aws, endpoint):
    status, body = call(endpoint, "POST", "/_emulator/rds-transition", {"seconds": "x"})
    assert status == 400 and "seconds" in body["error"], body
    assert call(endpoint, "POST", "/_emulator/rds-transition", {"seconds": 61})[0] == 400
    call(endpoint, "POST", "/_emulator/rds-transition", {"seconds": 30})
    call(endpoint, "POST", "/moto-api/reset")
    _instance(aws)
    aws("rds").stop_db_instance(DBInstanceIdentifier="db")
    _wait(lambda: _status(aws), "stopped", timeout=5)  # the 1 s default again
