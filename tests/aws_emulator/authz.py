"""Who made a request, and which IAM authorizations AWS would check for it.

The emulator (server.py) puts this in front of moto: it reads the access key id a request
was signed with, and for a key registered as an identity (`POST /_emulator/identities`)
maps the request to the operation and to the (action, resource ARN, request context)
triples AWS authorizes for it, then decides each with iam_eval. Requests signed with any
other key (the operator, CloudFormation, tests) are not restricted.

Which action, resource type and condition keys each operation is authorized with comes
from AWS's Service Authorization Reference (one page per service):
  S3               https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html
                   and "Required permissions for Amazon S3 API operations"
                   https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html
  Secrets Manager  https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssecretsmanager.html
  ECS              https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerservice.html
  CloudWatch Logs  https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatchlogs.html
  Lambda           https://docs.aws.amazon.com/service-authorization/latest/reference/list_awslambda.html
  DynamoDB         https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html
  SNS              https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsns.html
  CloudWatch       https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatch.html
  CodeBuild        https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscodebuild.html
  ECR              https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerregistry.html
  STS              GetCallerIdentity needs no permission:
                   https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html
An operation not listed here is denied for a registered identity ("not modelled by the
emulator"): a gap fails a test instead of passing silently.
"""

from __future__ import annotations

import json
import re
import struct
import threading
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote

import iam_eval

DEFAULT_ACCOUNT = "123456789012"  # moto's account for keys it does not know
DEFAULT_REGION = "us-east-1"


# --------------------------------------------------------------------------------------
# Identities and the call log
# --------------------------------------------------------------------------------------


@dataclass
class Identity:
    access_key_id: str
    name: str
    principal: str
    statements: list
    policies: list


class Registry:
    """Registered identities (by access key id) and every decision taken for them."""

    def __init__(self):
        self.lock = threading.Lock()
        self.identities: dict[str, Identity] = {}
        self.calls: list[dict] = []
        self.requests = 0

    def register(self, body: dict) -> Identity:
        """Validates and stores `{"access_key_id", "name", "principal", "policies"}`."""
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        missing = [k for k in ("access_key_id", "name", "principal", "policies")
                   if k not in body]
        if missing:
            raise ValueError(f"missing field(s): {', '.join(missing)}")
        key = body["access_key_id"]
        if not isinstance(key, str) or not re.fullmatch(r"[A-Z0-9]{16,128}", key):
            raise ValueError(f"access_key_id {key!r} is not an access key id (A-Z, 0-9, "
                             "16-128 characters)")
        if not str(body["principal"]).startswith("arn:"):
            raise ValueError(f"principal {body['principal']!r} is not an ARN")
        statements = iam_eval.parse_policies(body["policies"])  # PolicyError is a ValueError
        identity = Identity(key, str(body["name"]), str(body["principal"]), statements,
                            body["policies"])
        with self.lock:
            self.identities[key] = identity
        return identity

    def get(self, access_key_id: str | None) -> Identity | None:
        with self.lock:
            return self.identities.get(access_key_id or "")

    def record(self, identity: Identity, request_no: int, service: str, operation: str,
               action: str, resource: str, context: dict, allowed: bool,
               reason: str) -> dict:
        with self.lock:
            entry = {"seq": len(self.calls) + 1, "request": request_no,
                     "identity": identity.name, "access_key_id": identity.access_key_id,
                     "service": service, "operation": operation, "action": action,
                     "resource": resource, "context": context, "allowed": allowed,
                     "reason": reason}
            self.calls.append(entry)
            return entry

    def next_request(self) -> int:
        with self.lock:
            self.requests += 1
            return self.requests

    def reset(self) -> None:
        with self.lock:
            self.identities.clear()
            self.calls.clear()


# --------------------------------------------------------------------------------------
# The request
# --------------------------------------------------------------------------------------

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")


@dataclass
class Request:
    method: str
    path: str
    query: dict          # name -> list of values (blank values kept)
    headers: dict        # lower-case name -> value
    body: bytes
    access_key_id: str | None
    region: str
    signing_service: str | None
    account: str = DEFAULT_ACCOUNT
    resolver: "Resolver | None" = None

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def q(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> dict:
        try:
            data = json.loads(self.body or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def form(self) -> dict:
        return {k: v[0] for k, v in parse_qs(self.body.decode(errors="replace"),
                                             keep_blank_values=True).items()}


def wsgi_headers(environ) -> dict:
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items()
               if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        headers["content-length"] = environ["CONTENT_LENGTH"]
    return headers


def access_key_of(headers: dict, query: dict) -> tuple[str | None, str | None, str | None]:
    """(access key id, region, service) from a SigV4 Authorization header or a presigned
    URL's X-Amz-Credential; SigV2 (`AWS AKID:signature`) gives the key only."""
    auth = headers.get("authorization", "")
    match = _CREDENTIAL.search(auth)
    if match:
        return match.group(1), match.group(3), match.group(4)
    if auth.startswith("AWS ") and ":" in auth:
        return auth[4:].split(":", 1)[0].strip(), None, None
    credential = (query.get("X-Amz-Credential") or [None])[0]
    if credential:
        parts = unquote(credential).split("/")
        if len(parts) >= 5:
            return parts[0], parts[2], parts[3]
    if query.get("AWSAccessKeyId"):
        return query["AWSAccessKeyId"][0], None, None
    return None, None, None


# --------------------------------------------------------------------------------------
# What a request needs
# --------------------------------------------------------------------------------------


@dataclass
class Check:
    action: str
    resource: str
    context: dict = field(default_factory=dict)


@dataclass
class Operation:
    service: str
    name: str
    protocol: str                     # s3 | json | rest-json | query | cbor
    checks: list[Check] = field(default_factory=list)
    modelled: bool = True
    free: bool = False                # needs no permission (sts:GetCallerIdentity)
    s3_bucket: str | None = None      # for the missing-key 404 -> 403 rule
    s3_key: str | None = None
    target_prefix: str = ""           # JSON protocols: for the error's __type
    query_error_code: str = "AccessDenied"


class Resolver:
    """Looks up what a request names by name (a secret, a task definition) in moto's
    state, so the resource ARN is the one AWS would authorize. server.py provides it."""

    def secret_arn(self, req: Request, secret_id: str) -> str:
        return secret_id

    def task_definition(self, req: Request, name: str):
        return None


def _unmodelled(service: str, name: str, protocol: str) -> Operation:
    return Operation(service, name, protocol, modelled=False)


def classify(req: Request, resolver: Resolver) -> Operation:
    """The operation of a request and the authorizations it needs: the service's own,
    then the KMS ones data under a customer-managed key adds (kms_grants.py)."""
    op = _classify(req, resolver)
    import kms_grants  # reads moto's state; imported here so this module needs no moto
    op.checks.extend(kms_grants.key_checks(req, op, Check))
    return op


def _classify(req: Request, resolver: Resolver) -> Operation:
    req.resolver = resolver
    target = req.header("x-amz-target")
    content_type = req.header("content-type")
    cbor = re.fullmatch(r"/service/([^/]+)/operation/([^/]+)", req.path)
    if cbor and ("cbor" in req.header("smithy-protocol") or "cbor" in content_type):
        return _cbor(req, cbor.group(1), cbor.group(2))
    if target:
        prefix, _, name = target.partition(".")
        return _json(req, prefix, name)
    service = req.signing_service or ""
    if service == "s3" or (not service and _looks_like_s3(req)):
        return _s3(req)
    if service == "lambda" or req.path.startswith("/2015-03-31/functions"):
        return _lambda(req)
    if "x-www-form-urlencoded" in content_type or (req.method == "GET" and req.q("Action")):
        params = req.form() if req.method == "POST" else {k: v[0] for k, v in req.query.items()}
        return _query(req, service, params)
    return _unmodelled(service or "unknown", f"{req.method} {req.path}", "json")


def _looks_like_s3(req: Request) -> bool:
    return not req.header("x-amz-target") and not req.path.startswith("/2015-03-31/")


# --- S3 (REST-XML) ---------------------------------------------------------------------

# Query parameters that are arguments of an operation, not a sub-resource selecting it.
_S3_ARGS = {"x-id", "prefix", "delimiter", "max-keys", "marker", "list-type",
            "continuation-token", "fetch-owner", "start-after", "encoding-type",
            "versionId", "partNumber", "uploadId", "part-number-marker", "max-parts",
            "key-marker", "upload-id-marker", "version-id-marker", "max-uploads",
            "response-content-type", "response-content-language", "response-expires",
            "response-cache-control", "response-content-disposition",
            "response-content-encoding", "optional-object-attributes"}


def _s3(req: Request) -> Operation:
    """S3 REST operations by method, path and sub-resource. HeadBucket and ListObjects(V2)
    are s3:ListBucket on the bucket ("To use this operation, you must have permissions to
    perform the s3:ListBucket action", API_HeadBucket.html); s3:prefix, s3:delimiter and
    s3:max-keys are in the context only when the request has those parameters."""
    path = req.path.lstrip("/")
    host = req.header("host").split(":")[0]
    if ".s3." in f".{host}" and not host.startswith("s3.") and not host[:1].isdigit():
        bucket, key = host.split(".s3", 1)[0], unquote(path)  # virtual-hosted style
    else:
        bucket, _, key = path.partition("/")
        bucket, key = unquote(bucket), unquote(key)
    sub = sorted(k for k in req.query if k not in _S3_ARGS and not k.startswith("X-Amz-"))
    m = req.method
    bucket_arn = f"arn:aws:s3:::{bucket}"
    op = lambda name, *checks: Operation("s3", name, "s3", list(checks),  # noqa: E731
                                         s3_bucket=bucket, s3_key=key or None)
    if not bucket:
        if m == "GET" and not sub:
            return op("ListBuckets", Check("s3:ListAllMyBuckets", "*"))
        return _unmodelled("s3", f"{m} /", "s3")
    if not key:
        list_context = {}
        for param, context_key in (("prefix", "s3:prefix"), ("delimiter", "s3:delimiter"),
                                   ("max-keys", "s3:max-keys")):
            if req.q(param) is not None:  # only when the request has the parameter
                list_context[context_key] = req.q(param)
        if m == "HEAD" and not sub:
            return op("HeadBucket", Check("s3:ListBucket", bucket_arn, {}))
        if m == "GET" and not sub:
            name = "ListObjectsV2" if req.q("list-type") == "2" else "ListObjects"
            return op(name, Check("s3:ListBucket", bucket_arn, list_context))
        if m == "GET" and sub == ["location"]:
            return op("GetBucketLocation", Check("s3:GetBucketLocation", bucket_arn))
        if m == "GET" and sub == ["versions"]:
            return op("ListObjectVersions",
                      Check("s3:ListBucketVersions", bucket_arn, list_context))
        if m == "GET" and sub == ["uploads"]:
            return op("ListMultipartUploads",
                      Check("s3:ListBucketMultipartUploads", bucket_arn))
        if m == "POST" and sub == ["delete"]:
            keys = _delete_keys(req.body)
            return op("DeleteObjects", *[Check("s3:DeleteObject", f"{bucket_arn}/{k}")
                                         for k in keys] or [Check("s3:DeleteObject",
                                                                  f"{bucket_arn}/*")])
        return _unmodelled("s3", f"{m} bucket?{'&'.join(sub)}", "s3")
    object_arn = f"{bucket_arn}/{key}"
    copy_source = req.header("x-amz-copy-source")
    if not sub:
        if m in ("GET", "HEAD"):
            name = "GetObject" if m == "GET" else "HeadObject"
            action = "s3:GetObjectVersion" if req.q("versionId") else "s3:GetObject"
            if m == "GET" and req.q("uploadId"):
                return op("ListParts", Check("s3:ListMultipartUploadParts", object_arn))
            return op(name, Check(action, object_arn))
        if m == "PUT":
            put = Check("s3:PutObject", object_arn)
            name = "UploadPart" if req.q("uploadId") else "PutObject"
            if copy_source:
                name = "UploadPartCopy" if req.q("uploadId") else "CopyObject"
                return op(name, _copy_source_check(copy_source), put)
            return op(name, put)
        if m == "POST" and req.q("uploadId"):
            return op("CompleteMultipartUpload", Check("s3:PutObject", object_arn))
        if m == "DELETE":
            if req.q("uploadId"):
                return op("AbortMultipartUpload", Check("s3:AbortMultipartUpload", object_arn))
            action = "s3:DeleteObjectVersion" if req.q("versionId") else "s3:DeleteObject"
            return op("DeleteObject", Check(action, object_arn))
    if m == "POST" and sub == ["uploads"]:
        return op("CreateMultipartUpload", Check("s3:PutObject", object_arn))
    return _unmodelled("s3", f"{m} object?{'&'.join(sub)}", "s3")


def _copy_source_check(copy_source: str) -> Check:
    source, _, version = unquote(copy_source).lstrip("/").partition("?versionId=")
    action = "s3:GetObjectVersion" if version else "s3:GetObject"
    return Check(action, f"arn:aws:s3:::{source}")


def _delete_keys(body: bytes) -> list[str]:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return []
    return [el.text or "" for el in root.iter() if el.tag.split("}")[-1] == "Key"]


# --- JSON protocols (awsJson1.0/1.1 with X-Amz-Target) ----------------------------------


def _json(req: Request, prefix: str, name: str) -> Operation:
    body = req.json()
    region, account = req.region, req.account
    if prefix == "secretsmanager":
        return _secretsmanager(req, name, body, prefix)
    if prefix == "AmazonEC2ContainerServiceV20141113":
        return _ecs(req, name, body, prefix)
    if prefix == "Logs_20140328":
        return _logs(req, name, body, prefix)
    if prefix == "DynamoDB_20120810":
        table = body.get("TableName", "")
        arn = table if table.startswith("arn:") else \
            f"arn:aws:dynamodb:{region}:{account}:table/{table}"
        if name in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Scan",
                    "DescribeTable"):
            return Operation("dynamodb", name, "json", [Check(f"dynamodb:{name}", arn)],
                             target_prefix=prefix)
        if name == "Query":
            index = body.get("IndexName")
            resource = f"{arn}/index/{index}" if index else arn
            return Operation("dynamodb", name, "json", [Check("dynamodb:Query", resource)],
                             target_prefix=prefix)
        return _with_prefix(_unmodelled("dynamodb", name, "json"), prefix)
    if prefix == "GraniteServiceVersion20100801":
        return _cloudwatch(req, name, body, "json", prefix)
    if prefix == "CodeBuild_20161006":
        return _codebuild(req, name, body, prefix)
    if prefix == "AmazonEC2ContainerRegistry_V20150921":
        return _ecr(req, name, body, prefix)
    if prefix.startswith("AWSSecurityTokenService"):
        return _sts(name, "json", prefix)
    service = req.signing_service or prefix
    return _with_prefix(_unmodelled(service, name, "json"), prefix)


def _with_prefix(op: Operation, prefix: str) -> Operation:
    op.target_prefix = prefix
    return op


def _secretsmanager(req: Request, name: str, body: dict, prefix: str) -> Operation:
    if name in ("GetSecretValue", "PutSecretValue", "DescribeSecret", "UpdateSecret",
                "GetResourcePolicy", "ListSecretVersionIds"):
        arn = req.resolver.secret_arn(req, body.get("SecretId", ""))
        return Operation("secretsmanager", name, "json",
                         [Check(f"secretsmanager:{name}", arn)], target_prefix=prefix)
    if name == "BatchGetSecretValue":
        ids = body.get("SecretIdList") or []
        checks = [Check("secretsmanager:BatchGetSecretValue", "*")] + [
            Check("secretsmanager:GetSecretValue", req.resolver.secret_arn(req, s))
            for s in ids]
        return Operation("secretsmanager", name, "json", checks, target_prefix=prefix)
    if name == "ListSecrets":
        return Operation("secretsmanager", name, "json",
                         [Check("secretsmanager:ListSecrets", "*")], target_prefix=prefix)
    return _with_prefix(_unmodelled("secretsmanager", name, "json"), prefix)


def _ecs_arn(req: Request, kind: str, value: str, cluster: str | None = None) -> str:
    """The long ARN format AWS authorizes against (task/<cluster>/<id>, ...)."""
    base = f"arn:aws:ecs:{req.region}:{req.account}"
    if value.startswith("arn:"):
        rest = value.split(":", 5)[5]          # e.g. task/c/id, task/id, cluster/c
        parts = rest.split("/")
        if kind in ("task", "service") and len(parts) == 2 and cluster:
            return f"{base}:{kind}/{cluster}/{parts[1]}"
        return value
    if kind == "cluster":
        return f"{base}:cluster/{value}"
    return f"{base}:{kind}/{cluster}/{value}"


def _cluster_name(value: str | None) -> str:
    value = value or "default"
    return value.rsplit("/", 1)[-1] if value.startswith("arn:") else value


def _ecs(req: Request, name: str, body: dict, prefix: str) -> Operation:
    cluster = _cluster_name(body.get("cluster"))
    cluster_arn = _ecs_arn(req, "cluster", cluster)
    ctx = {"ecs:cluster": cluster_arn}
    mk = lambda *checks: Operation("ecs", name, "json", list(checks),  # noqa: E731
                                   target_prefix=prefix)
    if name == "RunTask":
        wanted = body.get("taskDefinition", "")
        definition = req.resolver.task_definition(req, wanted)
        arn = definition.arn if definition is not None else (
            wanted if wanted.startswith("arn:") else
            f"arn:aws:ecs:{req.region}:{req.account}:task-definition/{wanted}")
        context = dict(ctx)
        context["ecs:enable-execute-command"] = str(
            bool(body.get("enableExecuteCommand"))).lower()
        if body.get("capacityProviderStrategy"):
            context["ecs:capacity-provider"] = [
                f"arn:aws:ecs:{req.region}:{req.account}:capacity-provider/"
                f"{s.get('capacityProvider')}" for s in body["capacityProviderStrategy"]]
        if body.get("tags"):
            context["aws:TagKeys"] = [t.get("key") for t in body["tags"]]
        checks = [Check("ecs:RunTask", arn, context)]
        # RunTask passes the task's roles to ECS: iam:PassRole on each, with
        # iam:PassedToService (ECS developer guide, "Task IAM role" / "Task execution
        # IAM role"; Service Authorization Reference, IAM's PassRole).
        overrides = body.get("overrides") or {}
        roles = [overrides.get("taskRoleArn") or getattr(definition, "task_role_arn", None),
                 overrides.get("executionRoleArn") or
                 getattr(definition, "execution_role_arn", None)]
        for role in dict.fromkeys(r for r in roles if r):
            checks.append(Check("iam:PassRole", role,
                                {"iam:PassedToService": "ecs-tasks.amazonaws.com"}))
        return mk(*checks)
    if name in ("DescribeTasks", "StopTask", "UpdateTaskProtection", "GetTaskProtection"):
        tasks = body.get("tasks") or ([body["task"]] if body.get("task") else [])
        return mk(*[Check(f"ecs:{name}", _ecs_arn(req, "task", _task_id(t), cluster), ctx)
                    for t in tasks] or [Check(f"ecs:{name}", f"arn:aws:ecs:{req.region}:"
                                                             f"{req.account}:task/{cluster}/*",
                                              ctx)])
    if name == "ListTasks":
        # ListTasks' resource type is container-instance; without one in the request
        # there is no resource to name, so only Resource "*" matches (with ecs:cluster).
        instance = body.get("containerInstance")
        resource = _ecs_arn(req, "container-instance", instance, cluster) if instance else "*"
        return mk(Check("ecs:ListTasks", resource, ctx))
    if name in ("DescribeServices", "UpdateService"):
        services = body.get("services") or ([body["service"]] if body.get("service") else [])
        context = dict(ctx)
        if name == "UpdateService" and body.get("taskDefinition"):
            context["ecs:task-definition"] = body["taskDefinition"]
        return mk(*[Check(f"ecs:{name}", _ecs_arn(req, "service", s, cluster), context)
                    for s in services])
    if name == "DescribeClusters":
        clusters = body.get("clusters") or ["default"]
        return mk(*[Check("ecs:DescribeClusters", _ecs_arn(req, "cluster", _cluster_name(c)))
                    for c in clusters])
    if name == "DescribeTaskDefinition":
        return mk(Check("ecs:DescribeTaskDefinition", "*"))
    if name in ("TagResource", "UntagResource", "ListTagsForResource"):
        # On the resource's ARN (Service Authorization Reference for Amazon ECS: condition
        # keys aws:RequestTag/${TagKey} and aws:TagKeys for tagging, ecs:cluster for
        # task resources). A task ARN in the short format is authorized in the long one.
        arn = body.get("resourceArn") or ""
        context = {}
        if ":task/" in arn:
            parts = arn.split(":", 5)[5].split("/")
            cluster_name = parts[1] if len(parts) == 3 else None
            arn = _ecs_arn(req, "task", arn, cluster_name)
            if cluster_name:
                context["ecs:cluster"] = _ecs_arn(req, "cluster", cluster_name)
        if name == "TagResource":
            tags = body.get("tags") or []
            context["aws:TagKeys"] = [t.get("key") for t in tags]
            for t in tags:
                context[f"aws:RequestTag/{t.get('key')}"] = t.get("value", "")
        elif name == "UntagResource":
            context["aws:TagKeys"] = list(body.get("tagKeys") or [])
        return mk(Check(f"ecs:{name}", arn, context))
    return _with_prefix(_unmodelled("ecs", name, "json"), prefix)


def _codebuild(req: Request, name: str, body: dict, prefix: str) -> Operation:
    """Build operations are authorized on the project ARN (resource type `project`); a
    build id is `<project>:<uuid>`, a build ARN `...:build/<project>:<uuid>`."""
    base = f"arn:aws:codebuild:{req.region}:{req.account}:project/"

    def project_arn(value: str) -> str:
        value = value or ""
        if value.startswith("arn:"):
            value = value.split(":", 5)[5].split("/", 1)[-1]
        return base + value.split(":", 1)[0]

    mk = lambda *checks: Operation("codebuild", name, "json", list(checks),  # noqa: E731
                                   target_prefix=prefix)
    if name in ("StartBuild", "ListBuildsForProject"):
        return mk(Check(f"codebuild:{name}", project_arn(body.get("projectName"))))
    if name == "BatchGetBuilds":
        ids = body.get("ids") or []
        return mk(*[Check("codebuild:BatchGetBuilds", project_arn(i)) for i in ids] or
                  [Check("codebuild:BatchGetBuilds", base + "*")])
    if name == "StopBuild":
        return mk(Check("codebuild:StopBuild", project_arn(body.get("id"))))
    if name == "BatchGetProjects":
        return mk(*[Check("codebuild:BatchGetProjects", project_arn(n))
                    for n in body.get("names") or []])
    return _with_prefix(_unmodelled("codebuild", name, "json"), prefix)


def _ecr(req: Request, name: str, body: dict, prefix: str) -> Operation:
    """Repository operations on the repository ARN (resource type `repository`, in the
    registry's account); GetAuthorizationToken has no resource ("*")."""
    account = body.get("registryId") or req.account
    base = f"arn:aws:ecr:{req.region}:{account}:repository/"
    mk = lambda *checks: Operation("ecr", name, "json", list(checks),  # noqa: E731
                                   target_prefix=prefix)
    if name == "GetAuthorizationToken":
        return mk(Check("ecr:GetAuthorizationToken", "*"))
    if name == "DescribeRepositories":
        names = body.get("repositoryNames") or []
        return mk(*[Check("ecr:DescribeRepositories", base + n) for n in names] or
                  [Check("ecr:DescribeRepositories", base + "*")])
    if name in ("DescribeImages", "BatchGetImage", "ListImages", "PutImage",
                "BatchCheckLayerAvailability", "InitiateLayerUpload", "UploadLayerPart",
                "CompleteLayerUpload", "BatchDeleteImage"):
        return mk(Check(f"ecr:{name}", base + body.get("repositoryName", "")))
    return _with_prefix(_unmodelled("ecr", name, "json"), prefix)


def _task_id(value: str) -> str:
    return value.rsplit("/", 1)[-1] if value.startswith("arn:") else value


def _logs(req: Request, name: str, body: dict, prefix: str) -> Operation:
    group = body.get("logGroupName") or ""
    identifier = body.get("logGroupIdentifier") or ""
    if not group and identifier:
        group = identifier.split(":log-group:", 1)[1].split(":", 1)[0] \
            if ":log-group:" in identifier else identifier
    base = f"arn:aws:logs:{req.region}:{req.account}:log-group:{group}"
    # Log-group-level actions are authorized on the group ARN with ":*", the form "to
    # use when specifying permissions in IAM policies" (CloudWatch Logs User Guide,
    # iam-access-control-overview-cwl.html); stream-level ones on the stream ARN.
    group_arn = f"{base}:*"
    stream_arn = f"{base}:log-stream:{body.get('logStreamName', '')}"
    mk = lambda *checks: Operation("logs", name, "json", list(checks),  # noqa: E731
                                   target_prefix=prefix)
    if name in ("GetLogEvents", "PutLogEvents", "CreateLogStream"):   # log-stream*
        return mk(Check(f"logs:{name}", stream_arn))
    if name in ("DescribeLogStreams", "CreateLogGroup"):               # log-group*
        return mk(Check(f"logs:{name}", group_arn))
    if name == "FilterLogEvents":                                      # log-group*
        checks = [Check("logs:FilterLogEvents", group_arn)]
        if body.get("unmask"):
            checks.append(Check("logs:Unmask", group_arn))
        return mk(*checks)
    if name == "DescribeLogGroups":
        return mk(Check("logs:DescribeLogGroups", "*"))
    return _with_prefix(_unmodelled("logs", name, "json"), prefix)


def _cloudwatch(req: Request, name: str, body: dict, protocol: str,
                prefix: str = "") -> Operation:
    if name == "PutMetricData":
        context = {}
        if body.get("Namespace") is not None:
            context["cloudwatch:namespace"] = body["Namespace"]
        op = Operation("cloudwatch", name, protocol,
                       [Check("cloudwatch:PutMetricData", "*", context)])
    else:
        op = _unmodelled("cloudwatch", name, protocol)
    op.target_prefix = prefix
    return op


def _sts(name: str, protocol: str, prefix: str = "") -> Operation:
    if name == "GetCallerIdentity":
        return Operation("sts", name, protocol, free=True, target_prefix=prefix)
    return _with_prefix(_unmodelled("sts", name, protocol), prefix)


# --- Lambda (REST-JSON) ----------------------------------------------------------------


def lambda_function_arn(name: str, region: str, account: str,
                        qualifier: str | None = None) -> str:
    """A FunctionName (name, name:qualifier, partial or full ARN) as the ARN IAM sees."""
    name = unquote(name)
    if name.startswith("arn:"):
        arn = name
    elif ":function:" in name:  # partial ARN 123456789012:function:name
        arn = f"arn:aws:lambda:{region}:{name}"
    elif ":" in name:
        base, qual = name.split(":", 1)
        arn = f"arn:aws:lambda:{region}:{account}:function:{base}:{qual}"
    else:
        arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
    if qualifier and arn.count(":") == 6:
        arn = f"{arn}:{qualifier}"
    return arn


# The asynchronous-invocation settings (API version 2019-09-25), authorized on the function
# ARN (qualified by ?Qualifier=) with the operation's own action, as the Service
# Authorization Reference lists them (PutFunctionEventInvokeConfig, ...: resource type
# function*).
_EVENT_INVOKE_CONFIG = {
    ("PUT", ""): "PutFunctionEventInvokeConfig",
    ("POST", ""): "UpdateFunctionEventInvokeConfig",
    ("GET", ""): "GetFunctionEventInvokeConfig",
    ("DELETE", ""): "DeleteFunctionEventInvokeConfig",
    ("GET", "/list"): "ListFunctionEventInvokeConfigs",
}


def _lambda(req: Request) -> Operation:
    config = re.fullmatch(r"/2019-09-25/functions/([^/]+)/event-invoke-config(/list)?/?",
                          req.path)
    if config:
        name = _EVENT_INVOKE_CONFIG.get((req.method, config.group(2) or ""))
        if name is None:
            return _unmodelled("lambda", f"{req.method} {req.path}", "rest-json")
        arn = lambda_function_arn(config.group(1), req.region, req.account,
                                  req.q("Qualifier"))
        return Operation("lambda", name, "rest-json", [Check(f"lambda:{name}", arn)])
    match = re.fullmatch(r"/2015-03-31/functions/([^/]+)(/invocations|/configuration)?/?",
                         req.path)
    if not match:
        return _unmodelled("lambda", f"{req.method} {req.path}", "rest-json")
    arn = lambda_function_arn(match.group(1), req.region, req.account, req.q("Qualifier"))
    suffix = match.group(2)
    if req.method == "POST" and suffix == "/invocations":
        return Operation("lambda", "Invoke", "rest-json",
                         [Check("lambda:InvokeFunction", arn)])
    if req.method == "GET" and suffix is None:
        return Operation("lambda", "GetFunction", "rest-json",
                         [Check("lambda:GetFunction", arn)])
    if req.method == "GET" and suffix == "/configuration":
        return Operation("lambda", "GetFunctionConfiguration", "rest-json",
                         [Check("lambda:GetFunctionConfiguration", arn)])
    return _unmodelled("lambda", f"{req.method} {req.path}", "rest-json")


# --- query protocol (SNS, STS, CloudWatch) ----------------------------------------------


def _query(req: Request, service: str, params: dict) -> Operation:
    action = params.get("Action", "")
    if service == "sns" or action == "Publish":
        if action == "Publish":
            topic = params.get("TopicArn") or params.get("TargetArn") or ""
            op = Operation("sns", "Publish", "query", [Check("sns:Publish", topic)])
        else:
            op = _unmodelled("sns", action, "query")
        op.query_error_code = "AuthorizationError"  # SNS's code for a denied call
        return op
    if service == "sts" or action == "GetCallerIdentity":
        return _sts(action, "query")
    if service == "monitoring" or action == "PutMetricData":
        return _cloudwatch(req, action, {"Namespace": params.get("Namespace")}, "query")
    if service == "cloudformation" and action == "DescribeStackResource":
        # Resource: the stack ARN (Service Authorization Reference, CloudFormation:
        # DescribeStackResource on resource type `stack`); a stack named by name is
        # matched as stack/<name>/*.
        stack = params.get("StackName") or ""
        arn = stack if stack.startswith("arn:") else (
            f"arn:aws:cloudformation:{req.region}:{req.account}:stack/{stack}/*")
        return Operation("cloudformation", action, "query",
                         [Check("cloudformation:DescribeStackResource", arn)])
    return _unmodelled(service or "unknown", action or "?", "query")


# --- Smithy RPC v2 CBOR (the Rust SDK's CloudWatch) -------------------------------------


def _cbor(req: Request, service: str, name: str) -> Operation:
    try:
        body = cbor_decode(req.body) if req.body else {}
    except ValueError:
        body = {}
    if service == "GraniteServiceVersion20100801":
        return _cloudwatch(req, name, body if isinstance(body, dict) else {}, "cbor")
    return _unmodelled(service, name, "cbor")


def cbor_decode(data: bytes):
    """A minimal RFC 8949 decoder: enough for a request body (maps, arrays, strings,
    numbers, booleans, null, tags; definite and indefinite lengths)."""
    pos = 0

    def need(n):
        nonlocal pos
        if pos + n > len(data):
            raise ValueError("truncated CBOR")
        chunk = data[pos:pos + n]
        pos += n
        return chunk

    def length(info):
        if info < 24:
            return info
        if info == 31:
            return None
        size = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
        if size is None:
            raise ValueError("bad CBOR length")
        return int.from_bytes(need(size), "big")

    def item():
        initial = need(1)[0]
        major, info = initial >> 5, initial & 0x1F
        if major == 7:
            if info == 20:
                return False
            if info == 21:
                return True
            if info in (22, 23):
                return None
            if info == 25:
                half = int.from_bytes(need(2), "big")
                return struct.unpack(">e", half.to_bytes(2, "big"))[0]
            if info == 26:
                return struct.unpack(">f", need(4))[0]
            if info == 27:
                return struct.unpack(">d", need(8))[0]
            if info == 31:
                return StopIteration
            raise ValueError("unsupported CBOR simple value")
        n = length(info)
        if major == 0:
            return n
        if major == 1:
            return -1 - n
        if major in (2, 3):
            if n is None:
                chunks = []
                while (chunk := item()) is not StopIteration:
                    chunks.append(chunk)
                raw = b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks)
            else:
                raw = need(n)
            return raw if major == 2 else raw.decode("utf-8", "replace")
        if major == 4:
            out = []
            while n is None or len(out) < n:
                value = item()
                if value is StopIteration:
                    break
                out.append(value)
            return out
        if major == 5:
            out = {}
            while n is None or len(out) < n:
                key = item()
                if key is StopIteration:
                    break
                out[key] = item()
            return out
        if major == 6:
            return item()  # a tag: keep the tagged value (timestamps, bignums)
        raise ValueError("bad CBOR")

    return item()


def cbor_encode_text_map(values: dict) -> bytes:
    """Encodes a map of text to text (error bodies)."""
    def text(s: str) -> bytes:
        raw = s.encode()
        n = len(raw)
        if n < 24:
            head = bytes([0x60 | n])
        elif n < 256:
            head = bytes([0x78, n])
        elif n < 65536:
            head = bytes([0x79]) + n.to_bytes(2, "big")
        else:
            head = bytes([0x7A]) + n.to_bytes(4, "big")
        return head + raw
    out = bytes([0xA0 | len(values)]) if len(values) < 24 else bytes([0xB8, len(values)])
    for k, v in values.items():
        out += text(k) + text(v)
    return out


# --------------------------------------------------------------------------------------
# Denials, shaped per protocol
# --------------------------------------------------------------------------------------


def denial_message(principal: str, action: str, resource: str, explicit: bool) -> str:
    """AWS's message shape for an authorization failure (e.g. the IAM troubleshooting
    page "Access denied error messages")."""
    on = f" on resource: {resource}" if resource and resource != "*" else ""
    why = ("with an explicit deny in an identity-based policy" if explicit else
           f"because no identity-based policy allows the {action} action")
    return f"User: {principal} is not authorized to perform: {action}{on} {why}"


def denial_response(op: Operation, method: str, message: str) -> tuple[str, list, bytes]:
    """(status line, headers, body) of an AccessDenied answer in the operation's protocol."""
    request_id = str(uuid.uuid4())
    if op.protocol == "s3":
        body = b"" if method == "HEAD" else (
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>"
            f"<Message>{_xml(message)}</Message><RequestId>{request_id}</RequestId>"
            "</Error>").encode()
        return "403 Forbidden", [("Content-Type", "application/xml"),
                                 ("x-amz-request-id", request_id)], body
    if op.protocol == "rest-json":
        body = json.dumps({"Type": "User", "Message": message}).encode()
        return "403 Forbidden", [("Content-Type", "application/json"),
                                 ("x-amzn-ErrorType", "AccessDeniedException"),
                                 ("x-amzn-RequestId", request_id)], body
    if op.protocol == "query":
        code = op.query_error_code
        body = ("<ErrorResponse><Error><Type>Sender</Type>"
                f"<Code>{code}</Code><Message>{_xml(message)}</Message></Error>"
                f"<RequestId>{request_id}</RequestId></ErrorResponse>").encode()
        return "403 Forbidden", [("Content-Type", "text/xml"),
                                 ("x-amzn-RequestId", request_id)], body
    if op.protocol == "cbor":
        body = cbor_encode_text_map({"__type": "AccessDenied", "message": message})
        return "403 Forbidden", [("Content-Type", "application/cbor"),
                                 ("smithy-protocol", "rpc-v2-cbor"),
                                 ("x-amzn-query-error", "AccessDenied;Sender"),
                                 ("x-amzn-RequestId", request_id)], body
    body = json.dumps({"__type": "AccessDeniedException", "message": message}).encode()
    content_type = ("application/x-amz-json-1.0"
                    if op.target_prefix in ("DynamoDB_20120810", "GraniteServiceVersion20100801")
                    else "application/x-amz-json-1.1")
    headers = [("Content-Type", content_type), ("x-amzn-RequestId", request_id)]
    if op.target_prefix == "GraniteServiceVersion20100801":
        # CloudWatch is awsQueryCompatible: clients take the query protocol's error code
        # from this header (Smithy's awsQueryCompatible trait).
        headers.append(("x-amzn-query-error", "AccessDenied;Sender"))
        return "403 Forbidden", headers, body
    return "400 Bad Request", headers, body


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def caller_identity_response(op: Operation, identity: Identity, account: str
                             ) -> tuple[str, list, bytes]:
    """sts:GetCallerIdentity for a registered identity: its principal, not moto's."""
    request_id = str(uuid.uuid4())
    session = identity.principal.rsplit("/", 1)[-1]
    user_id = f"AROA{uuid.uuid5(uuid.NAMESPACE_URL, identity.principal).hex[:17].upper()}" \
              f":{session}"
    if op.protocol == "json":
        body = json.dumps({"Account": account, "Arn": identity.principal,
                           "UserId": user_id}).encode()
        return "200 OK", [("Content-Type", "application/x-amz-json-1.1")], body
    body = ('<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<GetCallerIdentityResult><Arn>{_xml(identity.principal)}</Arn>"
            f"<UserId>{user_id}</UserId><Account>{account}</Account>"
            "</GetCallerIdentityResult><ResponseMetadata>"
            f"<RequestId>{request_id}</RequestId></ResponseMetadata>"
            "</GetCallerIdentityResponse>").encode()
    return "200 OK", [("Content-Type", "text/xml")], body
