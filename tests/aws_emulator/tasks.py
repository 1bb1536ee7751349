"""One-off ECS tasks (RunTask): what would happen to them on Fargate, decided at RunTask
time from moto's state, reported when the task is described (it stops at once).

moto starts no containers, so a migration task "ran" whatever the network, IAM or schema
said. Here, in the order ECS and the official Airflow image meet them:

1. Network path out (image pull from Docker Hub, Secrets Manager, CloudWatch Logs): each
   subnet's route table needs a 0.0.0.0/0 route to an internet gateway attached to the VPC
   (AssignPublicIp ENABLED) or to a NAT gateway that itself has one (DISABLED).
   ECS: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-task-networking.html
   Failure: the task stops before its container starts (ResourceInitializationError /
   CannotPullContainerError, no exit code, no log stream).
2. The task execution role: secretsmanager:GetSecretValue on every `Secrets` entry (and
   the JSON key must exist in the value), logs:CreateLogStream/PutLogEvents on the awslogs
   stream, the awslogs group must exist.
   https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task_execution_IAM_role.html
   https://docs.aws.amazon.com/AmazonECS/latest/developerguide/specifying-sensitive-data-secrets.html
3. The image's entrypoint (scripts/docker/entrypoint_prod.sh in apache/airflow) runs
   `airflow db check` CONNECTION_CHECK_MAX_COUNT times (default 20, 3 s apart) before
   the command when the container gets AIRFLOW__DATABASE__SQL_ALCHEMY_CONN: the task's
   security groups need an ingress rule on every database of the stack (its port, from
   one of the task's groups) and an egress rule towards it. Failure: exit 1 with the
   entrypoint's lines (no real waiting here).
4. `airflow db migrate` against a database already migrated by a newer Airflow whose
   schema head this Airflow does not know: Alembic's CommandError, exit 1.

The log lines (entrypoint output, the chosen lines, or defaults saying what was emulated)
go to the container's awslogs group/stream `<prefix>/<container>/<task id>` when the task
stops, as the awslogs driver would have written them.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import threading
import time

from moto.ec2.models import ec2_backends
from moto.logs.models import logs_backends
from moto.secretsmanager.models import secretsmanager_backends

import authz
import iam_eval
import kms_grants
import moto_state

LOCK = threading.Lock()
# Exit code of one-off tasks; `next` (POST /_emulator/ecs-task-exit/<code>) applies once.
TASK_EXIT: dict = {"code": 0}
# Output lines of the next one-off task (POST /_emulator/ecs-task-output).
TASK_OUTPUT: dict = {}
# database key -> {"version": newest Airflow version migrated to, "revision": its head}
SCHEMA: dict = {}
# stack id -> AirflowVersion of the Custom::AirflowMigration being created/updated now
IN_FLIGHT_VERSION: dict = {}

# Alembic heads of Airflow releases, from _REVISION_HEADS_MAP in airflow/utils/db.py of
# apache-airflow-core 3.3.2 (the version whose source was read). A release after 3.3.2
# is assumed to have a head of its own (no older release knows it): the strict side.
REVISION_HEADS = {
    "3.0.0": "29ce7909c52b", "3.0.3": "fe199e1abd77", "3.1.0": "cc92b33c6709",
    "3.1.8": "509b94a1042d", "3.2.0": "1d6611b6ab7c", "3.3.0": "d2f4e1b3c5a7",
}
HEADS_KNOWN_UP_TO = "3.3.2"


def reset() -> None:
    with LOCK:
        TASK_EXIT.clear()
        TASK_EXIT["code"] = 0
        TASK_OUTPUT.clear()
        SCHEMA.clear()
        IN_FLIGHT_VERSION.clear()


def version_key(version: str) -> tuple:
    """Numeric per dotted part: 3.10.0 > 3.9.2."""
    return tuple(int(p) if p.isdigit() else 0 for p in re.findall(r"\d+", version))


def schema_revision(version: str) -> str:
    if version_key(version) <= version_key(HEADS_KNOWN_UP_TO):
        known = [v for v in REVISION_HEADS if version_key(v) <= version_key(version)]
        if known:
            return REVISION_HEADS[max(known, key=version_key)]
    # Not a real revision id: a stand-in for the head of a release newer than the source.
    return hashlib.sha1(f"airflow {version}".encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------------
# The outcome of a task
# --------------------------------------------------------------------------------------


class Outcome:
    def __init__(self, exit_code: int | None, lines: list[str], stopped_reason: str,
                 container_reason: str | None = None, stop_code: str = "EssentialContainerExited",
                 write_logs: bool = True):
        self.exit_code, self.lines = exit_code, lines
        self.stopped_reason, self.container_reason = stopped_reason, container_reason
        self.stop_code, self.write_logs = stop_code, write_logs


def _get(container: dict, name: str, default=None):
    """Container definitions from CloudFormation keep PascalCase keys, the API camelCase."""
    for key in (name, name[:1].lower() + name[1:]):
        if key in container:
            return container[key]
    return default


def _pairs(items) -> dict:
    return {_get(i, "Name"): _get(i, "Value", _get(i, "ValueFrom")) for i in items or []}


def _essential(definition) -> dict:
    containers = definition.container_definitions
    return next((c for c in containers if _get(c, "Essential", True)), containers[0])


def emulate(backend, task, registry: authz.Registry) -> Outcome:
    """Decides what happens to a just-started one-off task; stores it on the task."""
    definition = backend.describe_task_definition(task.task_definition_arn)
    container = _essential(definition)
    account, region = backend.account_id, backend.region_name
    with LOCK:
        exit_override = TASK_EXIT.pop("next", TASK_EXIT["code"])
        lines_override = TASK_OUTPUT.pop("next", None)
    found = moto_state.find_resource(
        account, region, "AWS::ECS::TaskDefinition",
        lambda obj, props: obj.arn == definition.arn)
    stack = found[0] if found else None
    outcome = (_network_out(account, region, task, container, stack)
               or _execution_role(account, region, task, definition, container, registry)
               or _database_path(account, region, task, container, stack)
               or _schema(account, region, task, definition, container, stack,
                          exit_override, lines_override)
               or _ran(definition, container, exit_override, lines_override))
    task.emu_outcome = outcome
    return outcome


def _ran(definition, container, code, lines) -> Outcome:
    name = _get(container, "Name")
    command = " ".join(_get(container, "Command") or []) or "(the image's default command)"
    if lines is None:
        lines = [f"[emulated] one-off task {definition.family}: container {name} ran "
                 f"{command[:200]}",
                 f"[emulated] one-off task {definition.family}: exit {code}"]
    return Outcome(code, list(lines), "Essential container in task exited")


def _awsvpc(task) -> dict:
    return (getattr(task, "network_configuration", None) or {}).get("awsvpcConfiguration") \
        or {}


# --- 1. the network path out -----------------------------------------------------------


def _route_table(ec2, subnet):
    for table in ec2.route_tables.values():
        if subnet.id in table._associations.values():
            return table
    return next((t for t in ec2.route_tables.values()
                 if t.vpc_id == subnet.vpc_id and t.main_association_id), None)


def _default_route(table):
    return next((r for r in table.routes if r.destination_cidr_block == "0.0.0.0/0"), None) \
        if table else None


def _igw_route(ec2, table, vpc_id) -> bool:
    route = _default_route(table)
    gateway = getattr(route, "gateway", None)
    return bool(gateway is not None and str(getattr(gateway, "id", "")).startswith("igw-")
                and getattr(getattr(gateway, "vpc", None), "id", None) == vpc_id)


def _refs(node) -> set[str]:
    """Logical ids a template fragment refers to (Ref, Fn::GetAtt)."""
    found = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else str(value).split(".")[0])
            else:
                found |= _refs(value)
    elif isinstance(node, list):
        for item in node:
            found |= _refs(item)
    return found


def _not_created(stack, types: set[str], wanted=lambda logical, props: True) -> list[str]:
    """Resources of the template being applied that do not exist yet: on AWS they may be
    created in parallel with (or after) whatever runs the task."""
    if stack is None:
        return []
    created = getattr(stack, "emu_resources", {})
    template = stack.resource_map._resource_json_map or {}
    return [f"{logical} ({resource['Type']})" for logical, resource in template.items()
            if resource.get("Type") in types and logical not in created
            and wanted(logical, resource.get("Properties") or {})]


def _hint(pending: list[str]) -> str:
    """What the template has but had not created when the task ran: on AWS those may be
    created in parallel with, or after, whatever runs the task."""
    if not pending:
        return ""
    return ("not created yet when the task ran (CloudFormation orders only what DependsOn "
            "or a reference orders; add them to the DependsOn of what runs the task): "
            + ", ".join(pending))


def route_problems(account: str, region: str, subnets: list[str], public_ip: bool,
                   stack=None) -> list[str]:
    """Why the task's subnets have no way out; the template's pending route resources
    first (the likely cause), then one short line per subnet."""
    ec2 = ec2_backends[account][region]
    problems = []
    for subnet_id in subnets:
        subnet = ec2.get_subnet(subnet_id)
        table = _route_table(ec2, subnet)
        where = f"{subnet_id} ({table.id if table else 'no route table'})"
        route = _default_route(table)
        nat = getattr(route, "nat_gateway", None)
        if public_ip and _igw_route(ec2, table, subnet.vpc_id):
            continue
        if nat is not None:
            nat_table = _route_table(ec2, ec2.get_subnet(nat.subnet_id))
            if _igw_route(ec2, nat_table, nat.vpc_id):
                continue
            problems.append(f"{where}: 0.0.0.0/0 goes to NAT gateway {nat.id}, whose subnet "
                            f"{nat.subnet_id} has no 0.0.0.0/0 route to an internet gateway")
        elif public_ip:
            problems.append(f"{where}: no 0.0.0.0/0 route to an internet gateway attached to "
                            f"{subnet.vpc_id} (AssignPublicIp ENABLED)")
        else:
            problems.append(f"{where}: no 0.0.0.0/0 route to a NAT gateway (AssignPublicIp "
                            "DISABLED)")
    if problems:
        hint = _hint(_not_created(stack, {
            "AWS::EC2::Route", "AWS::EC2::SubnetRouteTableAssociation",
            "AWS::EC2::VPCGatewayAttachment", "AWS::EC2::NatGateway"}))
        problems = ([hint] if hint else []) + [
            "no route out to Docker Hub and the AWS APIs from subnet " + "; ".join(problems)]
    return problems


def _network_out(account, region, task, container, stack) -> Outcome | None:
    vpc = _awsvpc(task)
    if not vpc:
        return None
    public_ip = str(vpc.get("assignPublicIp", "DISABLED")).upper() == "ENABLED"
    problems = route_problems(account, region, vpc.get("subnets") or [], public_ip, stack)
    if not problems:
        return None
    detail = "; ".join(problems)
    secrets = _get(container, "Secrets") or []
    if secrets:
        first = _get(secrets[0], "ValueFrom")
        reason = ("ResourceInitializationError: unable to pull secrets or registry auth: "
                  "execution resource retrieval failed: unable to retrieve secret from asm: "
                  "service call has been retried 5 time(s): failed to fetch secret "
                  f"{first} from secrets manager: RequestCanceled: request context canceled "
                  "caused by: context deadline exceeded. Please check your task network "
                  f"configuration. [emulated: {detail}]")
    else:
        image = _get(container, "Image")
        reason = (f"CannotPullContainerError: pull image manifest has been retried 7 time(s): "
                  f"failed to resolve ref {image}: i/o timeout [emulated: {detail}]")
    return Outcome(None, [], reason, reason, "TaskFailedToStart", write_logs=False)


# --- 2. the task execution role --------------------------------------------------------


def _secret_base_arn(value_from: str) -> str:
    """`arn:...:secret:name-AbCdEf[:json-key:version-stage:version-id]` -> the secret ARN."""
    return ":".join(value_from.split(":")[:7])


def _execution_role(account, region, task, definition, container, registry) -> Outcome | None:
    secrets = _get(container, "Secrets") or []
    log = _get(container, "LogConfiguration") or {}
    options = _get(log, "Options") or {}
    awslogs = _get(log, "LogDriver") == "awslogs"
    role_arn = getattr(definition, "execution_role_arn", None)
    if not secrets and not awslogs:
        return None
    if not role_arn:
        reason = ("ResourceInitializationError: the task definition has Secrets or the "
                  "awslogs driver but no executionRoleArn")
        return Outcome(None, [], reason, reason, "TaskFailedToStart", write_logs=False)
    try:
        role_name, policies = moto_state.role_policies(account, region, role_arn)
        statements = iam_eval.parse_policies(policies)
    except (moto_state.RoleError, iam_eval.PolicyError) as e:
        reason = f"ResourceInitializationError: [emulated] task execution role: {e}"
        return Outcome(None, [], reason, reason, "TaskFailedToStart", write_logs=False)
    principal = f"arn:aws:sts::{account}:assumed-role/{role_name}/{task.id}"
    identity = authz.Identity("", f"ecs-task-execution:{role_name}", principal, statements,
                              policies)
    request_no = registry.next_request()

    def check(operation, action, resource, context=None) -> iam_eval.Decision:
        decision = iam_eval.evaluate(statements, action, resource, context or {})
        registry.record(identity, request_no, action.split(":")[0], operation, action,
                        resource, context or {}, decision.allowed, decision.reason)
        return decision

    backend = secretsmanager_backends[account][region]
    for item in secrets:
        value_from = _get(item, "ValueFrom") or ""
        if not value_from.startswith("arn:aws:secretsmanager:"):
            reason = (f"ResourceInitializationError: [emulated] secret {_get(item, 'Name')} "
                      f"has ValueFrom {value_from!r}; the emulator models Secrets Manager "
                      "ARNs only")
            return Outcome(None, [], reason, reason, "TaskFailedToStart", write_logs=False)
        arn = _secret_base_arn(value_from)
        decision = check("GetSecretValue", "secretsmanager:GetSecretValue", arn)
        denied_action, denied_resource = "secretsmanager:GetSecretValue", arn
        # A secret under a customer-managed key also needs kms:Decrypt (kms_grants.py).
        key_check = kms_grants.secret_read(account, region, arn)
        if decision.allowed and key_check:
            decision = check("GetSecretValue", *key_check)
            denied_action, denied_resource = key_check[0], key_check[1]
        prefix = ("ResourceInitializationError: unable to pull secrets or registry auth: "
                  "execution resource retrieval failed: unable to retrieve secret from asm: "
                  "service call has been retried 1 time(s): ")
        if not decision.allowed:
            message = authz.denial_message(principal, denied_action, denied_resource,
                                           decision.kind == "explicit-deny")
            reason = f"{prefix}AccessDeniedException: {message}"
            return Outcome(None, [], reason, reason, "TaskFailedToStart", write_logs=False)
        json_key = value_from.split(":")[7] if len(value_from.split(":")) > 7 else ""
        secret = backend.secrets.get(arn)
        try:
            value = backend.get_secret_value(arn, None, "AWSCURRENT").get("SecretString") \
                if secret else None
        except Exception:
            value = None
        if secret is None or value is None:
            reason = (f"{prefix}ResourceNotFoundException: Secrets Manager can't find the "
                      f"specified secret value for staging label: AWSCURRENT ({arn})")
            return Outcome(None, [], reason, reason, "TaskFailedToStart", write_logs=False)
        if json_key:
            try:
                present = json_key in json.loads(value)
            except (ValueError, TypeError):
                present = False
            if not present:
                reason = ("ResourceInitializationError: unable to pull secrets or registry "
                          "auth: execution resource retrieval failed: unable to retrieve "
                          f"secret from asm: retrieved secret from Secrets Manager did not "
                          f"contain json key {json_key} ({arn})")
                return Outcome(None, [], reason, reason, "TaskFailedToStart",
                               write_logs=False)
    if awslogs:
        group = options.get("awslogs-group", "")
        stream = f"{options.get('awslogs-stream-prefix', '')}/{_get(container, 'Name')}/{task.id}"
        stream_arn = f"arn:aws:logs:{region}:{account}:log-group:{group}:log-stream:{stream}"
        prefix = ("CannotStartContainerError: Error response from daemon: failed to "
                  "initialize logging driver: failed to create Cloudwatch log stream: ")
        if group not in logs_backends[account][region].groups:
            if str(options.get("awslogs-create-group", "")).lower() == "true":
                decision = check("CreateLogGroup", "logs:CreateLogGroup",
                                 f"arn:aws:logs:{region}:{account}:log-group:{group}:*")
                if not decision.allowed:
                    reason = f"{prefix}AccessDeniedException: {decision.reason}"
                    return Outcome(None, [], reason, reason, "TaskFailedToStart",
                                   write_logs=False)
                logs_backends[account][region].ensure_log_group(group)
            else:
                reason = (f"{prefix}ResourceNotFoundException: The specified log group does "
                          f"not exist. ({group})")
                return Outcome(None, [], reason, reason, "TaskFailedToStart", write_logs=False)
        for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
            decision = check(action.split(":")[1], action, stream_arn)
            if not decision.allowed:
                message = authz.denial_message(principal, action, stream_arn,
                                               decision.kind == "explicit-deny")
                reason = f"{prefix}AccessDeniedException: {message}"
                return Outcome(None, [], reason, reason, "TaskFailedToStart",
                               write_logs=False)
    return None


# --- 3. the entrypoint's database check ------------------------------------------------


def _gets_database_url(container) -> bool:
    names = set(_pairs(_get(container, "Environment"))) | set(_pairs(_get(container, "Secrets")))
    return bool(names & {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                         "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD",
                         "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_SECRET"})


def _databases(stack) -> list[tuple[str, list[str], int]]:
    """(logical id, security group ids, port) of the stack's RDS instances and clusters
    (moto's, or the emulator's stubs for types moto does not create)."""
    out = []
    for logical, kind, obj, props in moto_state.stack_resources(stack):
        if kind == "AWS::RDS::DBCluster":
            groups = list(props.get("VpcSecurityGroupIds") or [])
            out.append((logical, groups, int(props.get("Port") or 5432)))
        elif kind == "AWS::RDS::DBInstance" and not props.get("DBClusterIdentifier"):
            # The template's VPCSecurityGroups: moto's CloudFormation DBInstance reads a
            # VpcSecurityGroupIds property instead, and falls back to the default group.
            groups = list(props.get("VPCSecurityGroups")
                          or getattr(obj, "vpc_security_group_ids", None) or [])
            port = getattr(obj, "port", None) or props.get("Port") or 5432
            out.append((logical, groups, int(port)))
    return out


def _covers(rule_proto, from_port, to_port, port) -> bool:
    if rule_proto in ("-1", "all", None):
        return True
    return rule_proto in ("tcp", "6") and from_port is not None and \
        int(from_port) <= port <= int(to_port)


def _cidr_covers(cidr: str | None, networks: list) -> bool:
    """Does `cidr` contain every one of `networks` (the addresses a task or database may
    have)? False when there is nothing to compare."""
    if not cidr:
        return False
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
    same = [n for n in networks if n.version == net.version]
    return bool(same) and all(n.subnet_of(net) for n in same)


def _group_names(stack) -> dict[str, str]:
    names = {}
    for logical, kind, obj, _ in moto_state.stack_resources(stack) if stack else []:
        if kind == "AWS::EC2::SecurityGroup" and obj is not None:
            names[obj.id] = logical
    return names


def _egress_rules(stack, group) -> list[tuple]:
    """(protocol, from, to, cidr, destination group) of a group's egress. moto ignores a
    template's SecurityGroupEgress (it keeps allow-all), so the template's rules win."""
    rules = None
    for logical, kind, obj, props in moto_state.stack_resources(stack) if stack else []:
        if kind == "AWS::EC2::SecurityGroup" and obj is not None and obj.id == group.id \
                and props.get("SecurityGroupEgress") is not None:
            rules = [(str(r.get("IpProtocol")), r.get("FromPort"), r.get("ToPort"),
                      r.get("CidrIp"), r.get("DestinationSecurityGroupId"))
                     for r in props["SecurityGroupEgress"]]
    if rules is None:
        rules = [(r.ip_protocol, r.from_port, r.to_port, r.ip_range.get("CidrIp"),
                  (r.source_group or {}).get("GroupId")) for r in group.egress_rules]
    for logical, kind, obj, props in moto_state.stack_resources(stack) if stack else []:
        if kind == "AWS::EC2::SecurityGroupEgress" and props.get("GroupId") == group.id:
            rules.append((str(props.get("IpProtocol")), props.get("FromPort"),
                          props.get("ToPort"), props.get("CidrIp"),
                          props.get("DestinationSecurityGroupId")))
    return rules


def database_problems(account, region, stack, task_groups: list[str],
                      task_subnets: list[str]) -> list[str]:
    ec2 = ec2_backends[account][region]
    names = _group_names(stack)
    label = lambda ids: ", ".join(f"{g} ({names[g]})" if g in names else g  # noqa: E731
                                  for g in ids) or "none"
    nets, vpc_nets = [], []
    for subnet_id in task_subnets:
        try:
            subnet = ec2.get_subnet(subnet_id)
            nets.append(ipaddress.ip_network(subnet.cidr_block))
            vpc_nets.append(ipaddress.ip_network(ec2.get_vpc(subnet.vpc_id).cidr_block))
        except Exception:
            pass
    problems = []
    # A database the template has but that does not exist yet has no address to reach.
    pending = _not_created(stack, {"AWS::RDS::DBInstance", "AWS::RDS::DBCluster"})
    if pending:
        problems.append("the database has no address yet: " + _hint(pending))
    for logical, db_groups, port in _databases(stack):
        ingress_ok = False
        for group_id in db_groups:
            group = ec2.get_security_group_from_id(group_id)
            for rule in group.ingress_rules if group else []:
                if not _covers(rule.ip_protocol, rule.from_port, rule.to_port, port):
                    continue
                source = (rule.source_group or {}).get("GroupId")
                if source in task_groups or _cidr_covers(rule.ip_range.get("CidrIp"), nets):
                    ingress_ok = True
        if not ingress_ok:
            db_logicals = {names[g] for g in db_groups if g in names}
            task_logicals = {names[g] for g in task_groups if g in names}

            def would_allow(_, props):
                return bool(_refs(props.get("GroupId")) & db_logicals
                            and _refs(props.get("SourceSecurityGroupId")) & task_logicals
                            and _covers(str(props.get("IpProtocol")), props.get("FromPort"),
                                        props.get("ToPort"), port))
            hint = _hint(_not_created(stack, {"AWS::EC2::SecurityGroupIngress"},
                                      would_allow))
            problems.append(
                (f"{hint}; " if hint else "")
                + f"no ingress rule on the security group(s) {label(db_groups)} of {logical} "
                f"allows tcp port {port} from the task's security group(s) "
                f"{label(task_groups)}")
            continue
        egress_ok = False
        for group_id in task_groups:
            group = ec2.get_security_group_from_id(group_id)
            for proto, low, high, cidr, dest in _egress_rules(stack, group) if group else []:
                # The database's address is somewhere in the VPC: a destination group of
                # the database, or a CIDR covering the whole VPC, reaches it.
                if _covers(proto, low, high, port) and (
                        dest in db_groups or _cidr_covers(cidr, vpc_nets)):
                    egress_ok = True
        if not egress_ok:
            problems.append(f"no egress rule on the task's security group(s) "
                            f"{label(task_groups)} allows tcp port {port} towards {logical} "
                            f"({label(db_groups)})")
    return problems


def _database_path(account, region, task, container, stack) -> Outcome | None:
    if stack is None or not _gets_database_url(container):
        return None
    vpc = _awsvpc(task)
    problems = database_problems(account, region, stack, vpc.get("securityGroups") or [],
                                 vpc.get("subnets") or [])
    if not problems:
        return None
    env = _pairs(_get(container, "Environment"))
    tries = int(env.get("CONNECTION_CHECK_MAX_COUNT", "20") or 20)
    detail = "; ".join(problems)
    timeout = ('(psycopg2.OperationalError) connection to server failed: Connection timed '
               'out. Is the server running on that host and accepting TCP/IP connections?')
    if tries > 0:
        # entrypoint_prod.sh run_check_with_retries: one dot per failed try, then this.
        lines = ["." * tries,
                 f"ERROR! Maximum number of retries ({tries}) reached.",
                 "",
                 "Last check result:",
                 "$ airflow db check",
                 timeout,
                 f"[emulated] the database is unreachable from this task: {detail}"]
    else:
        lines = [timeout, f"[emulated] the database is unreachable from this task: {detail}"]
    return Outcome(1, lines, "Essential container in task exited")


# --- 4. the schema model ---------------------------------------------------------------


def _is_migration(definition, container) -> bool:
    command = " ".join(_get(container, "Command") or [])
    return definition.family.endswith("-migrate") or "db migrate" in command


def _image_version(container) -> str | None:
    match = re.match(r"(?:.*/)?apache/airflow:(\d+(?:\.\d+)+)", _get(container, "Image") or "")
    return match.group(1) if match else None


def _schema(account, region, task, definition, container, stack, code, lines
            ) -> Outcome | None:
    if not _is_migration(definition, container):
        return None
    version = _image_version(container) or (
        IN_FLIGHT_VERSION.get(stack.stack_id) if stack is not None else None)
    if not version:
        return None
    if stack is not None:
        dbs = [logical for logical, _, _ in _databases(stack)]
        key = f"{stack.stack_id}:{','.join(dbs)}"
    else:
        key = task.cluster_arn
    revision = schema_revision(version)
    with LOCK:
        current = SCHEMA.get(key)
        if current and version_key(version) < version_key(current["version"]) \
                and revision != current["revision"]:
            return Outcome(1, [
                "Migrating the Airflow database",
                f"[emulated] this database was migrated by Airflow {current['version']} to "
                f"schema revision {current['revision']}; Airflow {version}'s migrations (head "
                f"{revision}) do not contain that revision, so Alembic fails:",
                "Traceback (most recent call last):",
                "  ... (alembic/script/base.py, _catch_revision_errors)",
                f"alembic.util.exc.CommandError: Can't locate revision identified by "
                f"'{current['revision']}'",
            ], "Essential container in task exited")
        outcome = _ran(definition, container, code, lines)
        if code == 0:
            if lines is None:
                outcome.lines.insert(1, f"[emulated] airflow db migrate: the database is at "
                                        f"Airflow {version}'s schema (revision {revision})")
            if not current or version_key(version) > version_key(current["version"]):
                SCHEMA[key] = {"version": version, "revision": revision}
        return outcome


# --------------------------------------------------------------------------------------
# Stopping
# --------------------------------------------------------------------------------------


def stop(backend, task) -> None:
    """Applies the outcome decided at RunTask: STOPPED, exit codes, and the log lines in
    the container's awslogs stream (once)."""
    outcome: Outcome = task.emu_outcome
    if task.last_status == "STOPPED":
        return
    definition = backend.describe_task_definition(task.task_definition_arn)
    task.last_status = task.desired_status = "STOPPED"
    task.stopped_reason = outcome.stopped_reason
    task.stop_code = task.stopCode = outcome.stop_code
    names = [_get(c, "Name") for c in definition.container_definitions]
    for container, name in zip(task.containers, names):
        # CloudFormation-made definitions keep PascalCase keys, so moto's Container has
        # no name; the caller finds its container by name.
        container.name = name
        container.last_status = "STOPPED"
        container.exitCode = container.exit_code = outcome.exit_code
        container.reason = outcome.container_reason
    if outcome.write_logs:
        _write_logs(backend, task, definition, outcome.lines)


def _write_logs(backend, task, definition, lines: list[str]) -> None:
    container = _essential(definition)
    log = _get(container, "LogConfiguration") or {}
    if _get(log, "LogDriver") != "awslogs":
        return
    options = _get(log, "Options") or {}
    group = options.get("awslogs-group")
    stream = f"{options.get('awslogs-stream-prefix', '')}/{_get(container, 'Name')}/{task.id}"
    logs = logs_backends[backend.account_id][options.get("awslogs-region")
                                             or backend.region_name]
    if not group or group not in logs.groups:
        return
    if stream not in logs.groups[group].streams:
        logs.create_log_stream(group, stream)
    now = int(time.time() * 1000)
    events = [{"timestamp": now, "message": line if line else " "} for line in lines]
    if events:
        logs.put_log_events(group, stream, events)
