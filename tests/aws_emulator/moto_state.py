"""Reading moto's state the way the emulator's checks need it: which stack owns a
resource and with which (resolved) properties, and what a role's policies are.

moto drops some template properties it does not model (a Role's ManagedPolicyArns, a
Function's LoggingConfig, a SecurityGroup's SecurityGroupEgress), so these are read from
the properties the emulator's CloudFormation engine resolved (server.py keeps them per
stack in `stack.emu_resources`: logical id -> {"json": ..., "props": ...}).
"""

from __future__ import annotations

import json

from moto.cloudformation import models as cfn_models
from moto.iam.models import iam_backends

# AWSLambdaVPCAccessExecutionRole, policy version v3, as AWS documents it:
# https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaVPCAccessExecutionRole.html
VPC_ACCESS_ARN = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
VPC_ACCESS_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{
        "Sid": "AWSLambdaVPCAccessExecutionPermissions",
        "Effect": "Allow",
        "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                   "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces",
                   "ec2:DescribeSubnets", "ec2:DeleteNetworkInterface",
                   "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"],
        "Resource": "*",
    }],
}
# AWSLambdaDynamoDBExecutionRole, v1, as AWS documents it (a stream's event source mapping
# reads with the function's role):
# https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaDynamoDBExecutionRole.html
DYNAMODB_STREAM_ARN = "arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole"
DYNAMODB_STREAM_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords",
                   "dynamodb:GetShardIterator", "dynamodb:ListStreams",
                   "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": "*",
    }],
}
KNOWN_AWS_MANAGED = {VPC_ACCESS_ARN: VPC_ACCESS_POLICY,
                     DYNAMODB_STREAM_ARN: DYNAMODB_STREAM_POLICY}


class RoleError(Exception):
    """The role cannot be turned into an identity (missing, or an unknown managed policy)."""


def stacks(account: str, region: str) -> list:
    backend = cfn_models.cloudformation_backends[account][region]
    return list(backend.stacks.values())


def stack_resources(stack) -> list[tuple[str, str, object, dict]]:
    """(logical id, type, moto object, resolved properties) of a stack's live resources."""
    out = []
    parsed = stack.resource_map._parsed_resources
    for logical, entry in dict(getattr(stack, "emu_resources", {})).items():
        out.append((logical, entry["json"].get("Type", ""), parsed.get(logical),
                    entry.get("props") or {}))
    return out


def find_resource(account: str, region: str, rtype: str, match) -> tuple | None:
    """(stack, logical id, moto object, props) of the first resource of `rtype` for which
    match(obj, props) is true, across the region's stacks."""
    for stack in stacks(account, region):
        for logical, kind, obj, props in stack_resources(stack):
            if kind == rtype and obj is not None:
                try:
                    if match(obj, props):
                        return stack, logical, obj, props
                except Exception:  # a half-created resource: not a match
                    continue
    return None


def _document(value) -> dict:
    return json.loads(value) if isinstance(value, str) else value


def role_policies(account: str, region: str, role_arn: str) -> tuple[str, list[dict]]:
    """(role name, [{"PolicyName", "PolicyDocument"}]) for a role: its inline policies as
    moto's IAM holds them, customer-managed policies' default versions, and the AWS
    managed policies this module knows. Raises RoleError otherwise."""
    iam = iam_backends[account]["aws"]
    try:
        role = iam.get_role_by_arn(role_arn)
    except Exception:
        raise RoleError(f"role {role_arn} does not exist in IAM") from None
    policies = [{"PolicyName": name, "PolicyDocument": _document(doc)}
                for name, doc in role.policies.items()]
    managed = list(role.managed_policies)
    # moto's CloudFormation Role ignores ManagedPolicyArns; read them from the template.
    found = find_resource(account, region, "AWS::IAM::Role",
                          lambda obj, props: getattr(obj, "arn", None) == role_arn)
    if found:
        managed += [a for a in found[3].get("ManagedPolicyArns") or [] if a not in managed]
    for arn in managed:
        if arn in KNOWN_AWS_MANAGED:
            policies.append({"PolicyName": arn.rsplit("/", 1)[-1],
                             "PolicyDocument": KNOWN_AWS_MANAGED[arn]})
        elif arn.startswith("arn:aws:iam::aws:policy/"):
            raise RoleError(
                f"role {role.name} has the AWS managed policy {arn}, whose content the "
                "emulator does not know (it knows: "
                f"{', '.join(sorted(KNOWN_AWS_MANAGED))}); add its documented statements "
                "to tests/aws_emulator/moto_state.py or use an inline policy")
        else:
            try:
                policy = iam.get_policy(arn)
            except Exception:
                raise RoleError(f"role {role.name} has the managed policy {arn}, which "
                                "does not exist in IAM") from None
            version = next(v for v in policy.versions if v.is_default)
            policies.append({"PolicyName": policy.name,
                             "PolicyDocument": _document(version.document)})
    return role.name, policies
