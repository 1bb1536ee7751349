"""RDS stop and start as AWS does them: through a transition, not at once.

Gap: moto 5.2.5's StopDBInstance sets `stopped` and StartDBInstance `available` before the
call returns, and StartDBCluster answers `started`, a status AWS never reports. On AWS the
calls return at once with `stopping` / `starting`, and DescribeDBInstances (or
DescribeDBClusters) shows the final status only minutes later (RDS User Guide, "Stopping
an Amazon RDS DB instance temporarily" and "Starting an Amazon RDS DB instance that was
previously stopped"; Aurora User Guide, "Stopping and starting an Amazon Aurora DB
cluster"). A client that scales its services up right after StartDBInstance, without
waiting for `available`, would pass against moto and start its services against a
database that does not answer yet on AWS.

Here a stop or start first sets `stopping` / `starting` and a timer sets the final status
TRANSITION["seconds"] later (default 1 s; `POST /_emulator/rds-transition {"seconds": s}`
changes it). Each request and each status change is recorded in the emulator's ordered
event list (ecs_service.EVENTS, `GET /_emulator/ecs-events`), next to the ECS services'
desired-count changes, so a test can check what happened in which order.
"""

import threading

import ecs_service

DEFAULT_SECONDS = 1.0
TRANSITION = {"seconds": DEFAULT_SECONDS}
LOCK = threading.Lock()
_TIMERS: list[threading.Timer] = []
ORIGINAL: dict = {}


def reset() -> None:
    """Back to the default transition time; pending transitions are cancelled."""
    with LOCK:
        TRANSITION["seconds"] = DEFAULT_SECONDS
        for timer in _TIMERS:
            timer.cancel()
        _TIMERS.clear()


def set_transition(seconds) -> float:
    """The time a stop or start takes from now on (0 to 60 s)."""
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        raise ValueError('the body must be {"seconds": <number>}') from None
    if not 0 <= value <= 60:
        raise ValueError("seconds must be between 0 and 60")
    with LOCK:
        TRANSITION["seconds"] = value
    return value


def _finish_later(kind: str, identifier: str, target, final: str) -> None:
    """Sets `target.status = final` after the transition time, and records it."""

    def finish():
        target.status = final
        ecs_service.record("rds-status", resource=kind, id=identifier, status=final)

    with LOCK:
        timer = threading.Timer(TRANSITION["seconds"], finish)
        timer.daemon = True
        _TIMERS.append(timer)
    timer.start()


def _transition(kind: str, action: str, identifier: str, target, interim: str,
                final: str):
    """Records the request, shows `interim` now and `final` after the transition."""
    target.status = interim
    ecs_service.record("rds-request", resource=kind, action=action, id=identifier,
                       status=interim)
    _finish_later(kind, identifier, target, final)
    return target


def stop_db_instance(self, db_instance_identifier, db_snapshot_identifier=None):
    # moto's own checks first (its errors: not found, not `available`, a replica).
    database = ORIGINAL["stop_db_instance"](self, db_instance_identifier,
                                            db_snapshot_identifier)
    return _transition("instance", "StopDBInstance", db_instance_identifier, database,
                       "stopping", "stopped")


def start_db_instance(self, db_instance_identifier):
    database = ORIGINAL["start_db_instance"](self, db_instance_identifier)
    return _transition("instance", "StartDBInstance", db_instance_identifier, database,
                       "starting", "available")


def stop_db_cluster(self, cluster_identifier):
    ORIGINAL["stop_db_cluster"](self, cluster_identifier)  # returns a copy: use the cluster
    cluster = self.clusters[cluster_identifier]
    return _transition("cluster", "StopDBCluster", cluster_identifier, cluster,
                       "stopping", "stopped")


def start_db_cluster(self, cluster_identifier):
    ORIGINAL["start_db_cluster"](self, cluster_identifier)
    cluster = self.clusters[cluster_identifier]
    return _transition("cluster", "StartDBCluster", cluster_identifier, cluster,
                       "starting", "available")


def install() -> None:
    """Patches moto's RDS backend."""
    from moto.rds.models import RDSBackend
    for name, patched in (("stop_db_instance", stop_db_instance),
                          ("start_db_instance", start_db_instance),
                          ("stop_db_cluster", stop_db_cluster),
                          ("start_db_cluster", start_db_cluster)):
        ORIGINAL[name] = getattr(RDSBackend, name)
        setattr(RDSBackend, name, patched)
