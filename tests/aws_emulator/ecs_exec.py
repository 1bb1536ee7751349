"""ECS Exec as DescribeTasks shows it, which moto 5.2.5 does not model.

moto ignores a service's `EnableExecuteCommand` and gives a task one container (the
task definition's first) without `runtimeId` or `managedAgents`. ECS, for a task a
service starts with ECS Exec on (API_Task, API_Container, API_ManagedAgent;
"Monitor Amazon ECS containers with ECS Exec"):

* the task's `enableExecuteCommand` is the service's setting when the task started
  (turning it on later changes only new tasks);
* every container of the task definition is listed, and once the task runs each
  has a `runtimeId` (`<task id>-<digits>`) and the managed agent
  `{"name": "ExecuteCommandAgent", "lastStatus": "RUNNING"}` - the agent ECS Exec and
  Session Manager sessions (`aws ssm start-session --target
  ecs:<cluster>_<task id>_<runtime id>`) go through. Without ECS Exec there is no
  managed agent.

Only tasks of services the emulator schedules (ecs_service.py) are affected: the one-off
tasks of tasks.py run without ECS Exec, as the CLI starts them.
"""

from __future__ import annotations

import datetime as dt
import random

import ecs_service

EXEC_AGENT = "ExecuteCommandAgent"


def _enable_flag(properties: dict) -> bool:
    value = properties.get("EnableExecuteCommand", False)
    return value is True or str(value).lower() == "true"


def _keep_exec_flag(original):
    def wrapped(cls, *args, **kwargs):
        service = original.__func__(cls, *args, **kwargs)
        template = kwargs.get("cloudformation_json") or next(
            (a for a in args if isinstance(a, dict) and "Properties" in a), {})
        service.enable_execute_command = _enable_flag(template.get("Properties") or {})
        return service
    return classmethod(wrapped)


def _all_containers(backend, task) -> None:
    """One container per container definition, named as the definition names them."""
    from moto.ecs.models import Container
    definition = backend.describe_task_definition(task.task_definition_arn)
    containers = []
    for spec in definition.container_definitions:
        c = Container(definition)
        c.name = spec.get("name")
        c.image = spec.get("image")
        c.command = spec.get("command")
        c.environment = spec.get("environment")
        c.task_arn = task.task_arn
        containers.append(c)
    task.containers = containers


def _create_task(original):
    def wrapped(backend, service):
        task = original(backend, service)
        task.enable_execute_command = bool(getattr(service, "enable_execute_command", False))
        _all_containers(backend, task)
        return task
    return wrapped


def _task_running(original):
    def wrapped(backend, task_id: str, body: dict) -> dict:
        answer = original(backend, task_id, body)
        task = ecs_service._task_by_id(backend, task_id)
        started = dt.datetime.now(dt.timezone.utc)
        for c in task.containers:
            c.last_status = "RUNNING"
            c.runtime_id = f"{task.id}-{random.randint(10**9, 10**10 - 1)}"
            c.managed_agents = ([{"name": EXEC_AGENT, "lastStatus": "RUNNING",
                                  "lastStartedAt": started}]
                                if getattr(task, "enable_execute_command", False) else [])
        return answer
    return wrapped


def install() -> None:
    from moto.ecs.models import Service
    for name in ("create_from_cloudformation_json", "update_from_cloudformation_json"):
        setattr(Service, name, _keep_exec_flag(getattr(Service, name)))
    ecs_service._create_task = _create_task(ecs_service._create_task)
    ecs_service.task_running = _task_running(ecs_service.task_running)


install()
