"""Lambda event source mappings for DynamoDB streams, as Lambda runs them.

moto 5.2.5 keeps a table's stream records, but its delivery is not Lambda's: every write
called the function at once (through Docker) with *every* record kept so far, and a
truthy answer then cleared the stream (sequence numbers restarted, GetRecords lost them);
no filter, batch size, retry, bisection, partial batch response or destination was
applied, and no permission was checked. Here moto's StreamShard only records (patched
`add`), and a poller per mapping (a daemon thread, `Poller`) reads the records the way
Lambda's does:

- one shard per stream (moto keeps one; AWS splits a busy stream into several, each read
  in order on its own: ordering holds per shard, which is per item key on AWS, and here
  over the whole table);
- polled every POLL_S seconds (AIRFLOW_STACK_EMULATOR_STREAM_POLL_S; AWS's base rate is
  4 times a second: "Lambda polls shards in your DynamoDB stream for records at a base
  rate of 4 times per second", https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html),
  which is also the wait before a failed batch is retried (AWS backs off, undocumented);
- FilterCriteria (https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html):
  a record no filter matches is dropped - never delivered, never retried; the checkpoint
  moves past it;
- BatchSize (default 100) and MaximumBatchingWindowInSeconds (default 0) make the batch,
  StartingPosition (LATEST, TRIM_HORIZON; required) where reading starts;
- the function runs synchronously through the same path as every invocation (run_lambda:
  its bootstrap, as its role, its logs, its Timeout); the event is {"Records": [...]} in
  Lambda's format (eventID, eventName, eventVersion, eventSource aws:dynamodb, awsRegion,
  dynamodb{Keys, NewImage/OldImage, SequenceNumber, SizeBytes, StreamViewType,
  ApproximateCreationDateTime (epoch seconds)}, eventSourceARN);
- success checkpoints after the batch; a function error or timeout retries the batch, split
  in two first with BisectBatchOnFunctionError ("Splitting a batch does not count towards
  the retry quota"), until MaximumRetryAttempts (default -1: until the record expires) or
  MaximumRecordAgeInSeconds; then the batch's invocation record goes to
  DestinationConfig.OnFailure (an SQS queue) and reading moves on
  (https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html);
- FunctionResponseTypes [ReportBatchItemFailures]: the lowest reported sequence number is
  the checkpoint, the records before it are done (not delivered again), the rest are
  retried; an empty or null list (or response) is a success, an empty or null
  itemIdentifier or one under a wrong key name fails the whole batch; with bisection the
  batch is split at the reported record
  (https://docs.aws.amazon.com/lambda/latest/dg/services-ddb-batchfailurereporting.html).

Permissions: Lambda reads the stream and sends to the destination with the function's
execution role. CreateEventSourceMapping (and UpdateEventSourceMapping, and a template's
AWS::Lambda::EventSourceMapping) is refused with AWS's InvalidParameterValueException when
the role may not dynamodb:DescribeStream, GetRecords, GetShardIterator and ListStreams on
the stream ("Cannot access stream ... Please ensure the role can perform the GetRecords,
GetShardIterator, DescribeStream, and ListStreams Actions on your stream in IAM.", AWS's
text as users quote it, e.g. github.com/aws-samples/lambda-refarch-webapp/issues/7) or
sqs:SendMessage on the destination ("The provided execution role does not have
permissions to call SendMessage on SQS"). The poller checks the same again before each
batch and each delivery to the destination (a role that lost them stops the mapping, as
on AWS: LastProcessingResult says so). Every decision is listed at /_emulator/calls under
the identity "<function>.event-source-mapping".

Emulator assumptions, where AWS's documents say nothing:
- a retried batch is the same records (after a partial failure: from the reported one to
  the end of the batch), not a fresh read from the checkpoint;
- a partial failure with bisection that does not make the batch smaller counts as a retry
  (else a record failing at the head of its batch would be retried for ever);
- an itemIdentifier that is no sequence number of the batch fails the whole batch;
- approximateInvokeCount counts the invocations that carried the discarded records;
- a batch discarded for its age has the condition "MaximumRecordAgeExceeded" (other
  emulators' spelling; not in AWS's pages);
- the DynamoDB stream keeps every record (AWS: 24 hours).
Not modelled: SNS and S3 destinations (refused: fail closed), ParallelizationFactor > 1,
TumblingWindowInSeconds, the 6 MB payload limit of a batch.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import threading
import time
import uuid
from datetime import datetime, timezone

import authz
import iam_eval
import moto_state
from moto.awslambda import models as lambda_models
from moto.awslambda.exceptions import InvalidParameterValueException
from moto.awslambda.utils import get_backend as lambda_backend
from moto.core.utils import unix_time
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.table import StreamRecord, StreamShard
from moto.sqs.models import sqs_backends

log = logging.getLogger("aws_emulator.streams")

POLL_ENV = "AIRFLOW_STACK_EMULATOR_STREAM_POLL_S"
POLL_S = [0.25]  # AWS: 4 polls a second
EPOCH = [0]  # bumped by /moto-api/reset: pollers of an older epoch stop
RUN = {}  # set by install(): "lambda" -> run_lambda(fn, event, request_id), "registry"
STREAM_READ = ("dynamodb:DescribeStream", "dynamodb:GetRecords",
               "dynamodb:GetShardIterator", "dynamodb:ListStreams")
MAX_FILTERS = 5  # "Filters per event source mapping: 5" (Lambda quotas; adjustable to 10)
MAX_PATTERN = 4096  # a filter pattern's maximum length (API_Filter)
_SHARD_LOCK = threading.Lock()


def poll_interval_from(value: str | None) -> float:
    """POLL_ENV's value (seconds, > 0); AWS's 0.25 when unset. Raises ValueError."""
    if not (value or "").strip():
        return 0.25
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"{POLL_ENV}={value!r}: want a positive number of seconds, how "
                         "often a stream's event source mapping polls (AWS: 0.25)")
    return seconds


# --------------------------------------------------------------------------------------
# The stream: moto's shard, records only
# --------------------------------------------------------------------------------------


def stream_shard_add(self, old, new) -> None:
    """moto's StreamShard.add, without its delivery (the pollers read the shard) and with
    the table's region in awsRegion (moto wrote us-east-1). Sequence numbers are taken
    under a lock: writes arrive on concurrent request threads."""
    view = self.table.stream_specification["StreamViewType"]
    name = "INSERT" if old is None else ("REMOVE" if new is None else "MODIFY")
    with _SHARD_LOCK:
        record = StreamRecord(self.table, view, name, old, new,
                              len(self.items) + self.starting_sequence_number)
        record.record["awsRegion"] = self.table.region_name
        self.items.append(record)


def _stream_parts(arn: str) -> tuple[str, str, str, str] | None:
    """(region, account, table, label) of a DynamoDB stream ARN, else None."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[2] != "dynamodb":
        return None
    resource = parts[5].split("/")
    if len(resource) != 4 or resource[0] != "table" or resource[2] != "stream":
        return None
    return parts[3], parts[4], resource[1], resource[3]


def is_stream_arn(arn) -> bool:
    return isinstance(arn, str) and _stream_parts(arn) is not None


def find_shard(arn: str):
    """The stream's shard, None once the table or that stream (label) is gone."""
    region, account, table_name, label = _stream_parts(arn)
    table = dynamodb_backends[account][region].tables.get(table_name)
    if table is None or table.latest_stream_label != label or table.stream_shard is None:
        return None
    return table.stream_shard


def lambda_record(item, stream_arn: str) -> dict:
    """A stream record as Lambda hands it to the function."""
    raw = item.to_json()
    dynamodb = dict(raw["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = int(unix_time(created))
    return {"eventID": raw["eventID"], "eventName": raw["eventName"],
            "eventVersion": raw["eventVersion"], "eventSource": "aws:dynamodb",
            "awsRegion": raw["awsRegion"], "dynamodb": dynamodb,
            "eventSourceARN": stream_arn}


# --------------------------------------------------------------------------------------
# Filter patterns (Lambda's subset of EventBridge's syntax)
# --------------------------------------------------------------------------------------


class PatternError(ValueError):
    pass


_OPERATORS = {"prefix", "suffix", "equals-ignore-case", "anything-but", "numeric", "exists"}
_NUMERIC_OPS = {"=", "<", "<=", ">", ">="}


def _check_leaf(rule, where: str) -> None:
    if isinstance(rule, dict):
        if len(rule) != 1 or next(iter(rule)) not in _OPERATORS:
            raise PatternError(f"{where}: unknown operator {json.dumps(rule)}")
        op, arg = next(iter(rule.items()))
        if op in ("prefix", "suffix", "equals-ignore-case") and not isinstance(arg, str):
            raise PatternError(f"{where}: {op} takes a string")
        if op == "exists" and not isinstance(arg, bool):
            raise PatternError(f"{where}: exists takes true or false")
        if op == "anything-but":
            ok = (isinstance(arg, (str, int, float)) and not isinstance(arg, bool)) or (
                isinstance(arg, list) and arg and all(isinstance(v, (str, int, float))
                                                      for v in arg)) or (
                isinstance(arg, dict) and list(arg) == ["prefix"])
            if not ok:
                raise PatternError(f"{where}: anything-but takes a value, a list of "
                                   "values or {\"prefix\": ...}")
        if op == "numeric":
            if not (isinstance(arg, list) and arg and len(arg) % 2 == 0 and len(arg) <= 4
                    and all(arg[i] in _NUMERIC_OPS and isinstance(arg[i + 1], (int, float))
                            and not isinstance(arg[i + 1], bool)
                            for i in range(0, len(arg), 2))):
                raise PatternError(f"{where}: numeric takes [op, number(, op, number)]")
    elif isinstance(rule, list):
        raise PatternError(f"{where}: nested arrays are not a pattern")


def _check(pattern, where: str = "pattern") -> None:
    if not isinstance(pattern, dict) or not pattern:
        raise PatternError(f"{where}: must be a non-empty JSON object")
    for key, rule in pattern.items():
        if key == "$or":
            if not isinstance(rule, list) or len(rule) < 2:
                raise PatternError(f"{where}.$or: takes a list of at least two patterns")
            for i, sub in enumerate(rule):
                _check(sub, f"{where}.$or[{i}]")
        elif isinstance(rule, dict):
            _check(rule, f"{where}.{key}")
        elif isinstance(rule, list) and rule:
            for leaf in rule:
                _check_leaf(leaf, f"{where}.{key}")
        else:
            raise PatternError(f"{where}.{key}: a value to match must be in an array "
                               f"(got {json.dumps(rule)})")


def parse_filter_criteria(criteria) -> list[dict]:
    """FilterCriteria {"Filters": [{"Pattern": "<JSON>"}, ...]} as parsed patterns.
    Raises PatternError with what is wrong."""
    if criteria in (None, {}):
        return []
    filters = criteria.get("Filters") if isinstance(criteria, dict) else None
    if not isinstance(filters, list):
        raise PatternError("FilterCriteria must be {\"Filters\": [{\"Pattern\": ...}]}")
    if len(filters) > MAX_FILTERS:
        raise PatternError(f"{len(filters)} filters: at most {MAX_FILTERS} per event "
                           "source mapping")
    patterns = []
    for i, item in enumerate(filters):
        text = item.get("Pattern") if isinstance(item, dict) else None
        if not isinstance(text, str):
            raise PatternError(f"Filters[{i}]: Pattern must be a string")
        if len(text) > MAX_PATTERN:
            raise PatternError(f"Filters[{i}]: Pattern longer than {MAX_PATTERN} characters")
        try:
            pattern = json.loads(text)
        except ValueError as e:
            raise PatternError(f"Filters[{i}]: Pattern is not JSON: {e}") from None
        _check(pattern, f"Filters[{i}].Pattern")
        patterns.append(pattern)
    return patterns


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _leaf(rule, present: bool, value) -> bool:
    if isinstance(value, list):  # an array matches when one of its elements does
        return any(_leaf(rule, True, v) for v in value) if value else False
    if isinstance(rule, dict):
        op, arg = next(iter(rule.items()))
        if op == "exists":
            return present == arg and not isinstance(value, dict)
        if not present:
            return False
        if op == "prefix":
            return isinstance(value, str) and value.startswith(arg)
        if op == "suffix":
            return isinstance(value, str) and value.endswith(arg)
        if op == "equals-ignore-case":
            return isinstance(value, str) and value.lower() == arg.lower()
        if op == "anything-but":
            if isinstance(arg, dict):
                return isinstance(value, str) and not value.startswith(arg["prefix"])
            values = arg if isinstance(arg, list) else [arg]
            return not any(_leaf(v, True, value) for v in values)
        if op == "numeric":
            if not _is_number(value):
                return False
            checks = {"=": value.__eq__, "<": value.__lt__, "<=": value.__le__,
                      ">": value.__gt__, ">=": value.__ge__}
            return all(checks[arg[i]](arg[i + 1]) for i in range(0, len(arg), 2))
    if not present:
        return False
    if rule is None or isinstance(rule, bool):
        return value is rule
    if _is_number(rule):
        return _is_number(value) and value == rule
    return isinstance(value, str) and value == rule


def matches(pattern: dict, event) -> bool:
    """Whether `event` (a record as the function gets it) matches one parsed pattern."""
    for key, rule in pattern.items():
        if key == "$or":
            if not any(matches(sub, event) for sub in rule):
                return False
            continue
        present = isinstance(event, dict) and key in event
        value = event.get(key) if present else None
        if isinstance(rule, dict):
            if not (present and isinstance(value, dict) and matches(rule, value)):
                return False
        elif not any(_leaf(leaf, present, value) for leaf in rule):
            return False
    return True


# --------------------------------------------------------------------------------------
# Creating, updating, describing mappings
# --------------------------------------------------------------------------------------


def _int(spec: dict, key: str, default, low: int, high: int, also=()) -> int:
    value = spec.get(key, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or str(number) != str(value).strip() or not (
            low <= number <= high or number in also):
        raise InvalidParameterValueException(
            f"{key} {value!r} is out of range: between {low} and {high}"
            + (f" or {', '.join(map(str, also))}" if also else ""))
    return number


def _bool(value) -> bool:
    return value is True or str(value).lower() == "true"


def destination_of(config) -> str | None:
    """DestinationConfig.OnFailure.Destination, None when not set."""
    return (((config or {}).get("OnFailure") or {}).get("Destination")) or None


def validate(spec: dict, creating: bool) -> dict:
    """The stream-related settings of a Create/UpdateEventSourceMapping request, checked
    as Lambda checks them (services-ddb-params.html: ranges and defaults); returns what
    the poller reads. Raises InvalidParameterValueException."""
    checked = {}
    if creating:
        position = spec.get("StartingPosition")
        if position not in ("LATEST", "TRIM_HORIZON"):
            raise InvalidParameterValueException(
                f"StartingPosition {position!r}: a DynamoDB stream needs LATEST or "
                "TRIM_HORIZON")
    if creating or "BatchSize" in spec:
        checked["BatchSize"] = _int(spec, "BatchSize", 100, 1, 10000)
    if creating or "MaximumBatchingWindowInSeconds" in spec:
        checked["MaximumBatchingWindowInSeconds"] = _int(
            spec, "MaximumBatchingWindowInSeconds", 0, 0, 300)
    if creating or "MaximumRetryAttempts" in spec:
        checked["MaximumRetryAttempts"] = _int(spec, "MaximumRetryAttempts", -1, 0, 10000,
                                               also=(-1,))
    if creating or "MaximumRecordAgeInSeconds" in spec:
        checked["MaximumRecordAgeInSeconds"] = _int(spec, "MaximumRecordAgeInSeconds", -1,
                                                    60, 604800, also=(-1,))
    if creating or "ParallelizationFactor" in spec:
        if _int(spec, "ParallelizationFactor", 1, 1, 10) != 1:
            raise InvalidParameterValueException(
                "ParallelizationFactor > 1 is not modelled by the emulator (one batch per "
                "shard at a time)")
    types = spec.get("FunctionResponseTypes")
    if types is not None:
        if not isinstance(types, list) or any(t != "ReportBatchItemFailures" for t in types):
            raise InvalidParameterValueException(
                f"FunctionResponseTypes {types!r}: the only value is ReportBatchItemFailures")
    if "FilterCriteria" in spec:
        try:
            parse_filter_criteria(spec["FilterCriteria"])
        except PatternError as e:
            raise InvalidParameterValueException(f"Invalid filter pattern definition. {e}")
    destination = destination_of(spec.get("DestinationConfig"))
    if destination is not None:
        if destination.split(":")[2:3] != ["sqs"] or destination.endswith(".fifo"):
            raise InvalidParameterValueException(
                f"DestinationConfig.OnFailure.Destination {destination!r}: the emulator "
                "models a standard SQS queue (AWS also takes SNS topics and S3 buckets)")
        if _queue(destination) is None:
            raise InvalidParameterValueException(
                f"The destination {destination} does not exist")
    if "TumblingWindowInSeconds" in spec and int(spec["TumblingWindowInSeconds"] or 0):
        raise InvalidParameterValueException(
            "TumblingWindowInSeconds is not modelled by the emulator")
    return checked


def _queue(arn: str):
    _, _, _, region, account, name = (arn.split(":") + [""] * 6)[:6]
    try:
        return sqs_backends[account][region].get_queue(name)
    except Exception:
        return None


class RoleView:
    """The function's role as the mapping's service uses it: its statements (re-read each
    time: a stack update may change them) and the decisions, recorded."""

    def __init__(self, fn):
        self.fn = fn
        role_name, policies = moto_state.role_policies(fn.account_id, fn.region, fn.role)
        self.identity = authz.Identity(
            "", f"{fn.function_name}.event-source-mapping",
            f"arn:aws:sts::{fn.account_id}:assumed-role/{role_name}/{fn.function_name}",
            iam_eval.parse_policies(policies), policies)

    def check(self, checks, operation: str, record=True) -> list[str]:
        """The denied actions among (action, resource) pairs."""
        registry = RUN["registry"]
        request_no = registry.next_request()
        denied = []
        for action, resource in checks:
            decision = iam_eval.evaluate(self.identity.statements, action, resource, {})
            if record:
                registry.record(self.identity, request_no, action.split(":")[0], operation,
                                action, resource, {}, decision.allowed, decision.reason)
            if not decision.allowed:
                denied.append(action)
        return denied


def check_role(fn, stream_arn: str, destination: str | None) -> None:
    """What Lambda checks of the execution role when a mapping is created or changed."""
    try:
        role = RoleView(fn)
    except (moto_state.RoleError, ValueError) as e:
        raise InvalidParameterValueException(
            f"The role defined for the function cannot be assumed by Lambda. ({e})")
    if role.check([(a, stream_arn) for a in STREAM_READ], "CreateEventSourceMapping"):
        raise InvalidParameterValueException(
            f"Cannot access stream {stream_arn}. Please ensure the role can perform the "
            "GetRecords, GetShardIterator, DescribeStream, and ListStreams Actions on your "
            "stream in IAM.")
    if destination and role.check([("sqs:SendMessage", destination)],
                                  "CreateEventSourceMapping"):
        raise InvalidParameterValueException(
            "The provided execution role does not have permissions to call SendMessage on SQS")


ORIGINAL = {}


def create_event_source_mapping(self, spec):
    """moto's CreateEventSourceMapping, with Lambda's checks and a poller for a stream."""
    arn = spec.get("EventSourceArn")
    if not is_stream_arn(arn):
        return ORIGINAL["create"](self, spec)
    checked = validate(spec, creating=True)
    if find_shard(arn) is None:
        raise InvalidParameterValueException(f"Stream not found: {arn}")
    fn = self.get_function(spec.get("FunctionName", ""))
    check_role(fn, arn, destination_of(spec.get("DestinationConfig")))
    spec = {**spec, **checked}
    esm = ORIGINAL["create"](self, spec)
    esm.emu_last_result = "No records processed"
    esm.bisect_on_error = _bool(spec.get("BisectBatchOnFunctionError", False))
    esm.function_response_types = spec.get("FunctionResponseTypes") or []
    esm.max_batch_window = checked["MaximumBatchingWindowInSeconds"]
    esm.max_retry_attempts = checked["MaximumRetryAttempts"]
    esm.max_record_age = checked["MaximumRecordAgeInSeconds"]
    esm.parallelization_factor = 1
    esm.enabled = _bool(spec.get("Enabled", True))
    shard = find_shard(arn)
    start = len(shard.items) if spec["StartingPosition"] == "LATEST" else 0
    Poller(esm, start).start()
    return esm


def update_event_source_mapping(self, uuid_, spec):
    esm = self.get_event_source_mapping(uuid_)
    if esm is None or not is_stream_arn(esm.event_source_arn):
        return ORIGINAL["update"](self, uuid_, spec)
    spec = {k: v for k, v in spec.items() if k not in ("EventSourceArn", "StartingPosition")}
    checked = validate(spec, creating=False)
    fn = self.get_function(spec.get("FunctionName") or esm.function_arn)
    destination = destination_of(spec["DestinationConfig"]) if "DestinationConfig" in spec \
        else destination_of(esm.destination_config)
    check_role(fn, esm.event_source_arn, destination)
    if "Enabled" in spec:
        spec["Enabled"] = _bool(spec["Enabled"])
    if "BisectBatchOnFunctionError" in spec:
        spec["BisectBatchOnFunctionError"] = _bool(spec["BisectBatchOnFunctionError"])
    return ORIGINAL["update"](self, uuid_, {**spec, **checked})


def get_configuration(self):
    config = ORIGINAL["get_configuration"](self)
    if is_stream_arn(self.event_source_arn):
        config.setdefault("FunctionResponseTypes", [])
        config["BisectBatchOnFunctionError"] = bool(self.bisect_on_error)
        config["LastProcessingResult"] = getattr(self, "emu_last_result",
                                                 "No records processed")
    return config


# --------------------------------------------------------------------------------------
# The poller
# --------------------------------------------------------------------------------------


class Batch:
    def __init__(self, records: list[tuple[int, dict]], retries=0, invokes=0):
        self.records, self.retries, self.invokes = records, retries, invokes
        self.request_id = None
        self.function_error = False

    @property
    def end(self) -> int:
        return self.records[-1][0] + 1


def _iso(seconds: float, ms=False) -> str:
    stamp = datetime.fromtimestamp(seconds, timezone.utc)
    if ms:
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def failed_item(payload: bytes, batch: Batch):
    """A ReportBatchItemFailures response: None (complete success), "whole" (complete
    failure: a missing or empty itemIdentifier, or none of the batch's sequence numbers),
    else the position in the batch of the lowest reported record."""
    try:
        response = json.loads(payload) if payload.strip() else None
    except ValueError:
        return None  # not an EventResponse at all: treated as none (a success)
    failures = response.get("batchItemFailures") if isinstance(response, dict) else None
    if not failures:
        return None
    if not isinstance(failures, list):
        return "whole"
    where = {rec["dynamodb"]["SequenceNumber"]: i for i, (_, rec) in enumerate(batch.records)}
    found = []
    for failure in failures:
        ident = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(ident, str) or not ident or ident not in where:
            return "whole"
        found.append(where[ident])
    return min(found)


class Poller(threading.Thread):
    """Reads one mapping's stream for as long as the mapping exists (see the module's
    docstring); one batch at a time, in order."""

    def __init__(self, esm, position: int):
        super().__init__(daemon=True, name=f"esm-{esm.uuid[:8]}")
        self.esm, self.uuid = esm, esm.uuid
        self.account, self.region = esm.account_id, esm.region
        self.position = position
        self.pending: collections.deque[Batch] = collections.deque()
        self.window_start = None
        self.epoch = EPOCH[0]
        self.denied = False  # the last permission check failed (recorded once)

    def alive(self) -> bool:
        if EPOCH[0] != self.epoch:
            return False
        try:
            return lambda_backend(self.account, self.region).get_event_source_mapping(
                self.uuid) is self.esm
        except Exception:
            return False

    def run(self) -> None:
        while self.alive():
            try:
                busy = self.step()
            except Exception:  # never let one bad batch kill the mapping
                log.exception("event source mapping %s", self.uuid)
                busy = False
            if not busy:
                time.sleep(POLL_S[0])

    def result(self, text: str) -> None:
        self.esm.emu_last_result = text

    def step(self) -> bool:
        """One poll: True when it delivered a batch that succeeded (poll again at once)."""
        esm = self.esm
        if not esm.enabled:
            return False
        shard = find_shard(esm.event_source_arn)
        if shard is None:
            self.result("PROBLEM: Stream not found or disabled")
            return False
        if not self.pending:
            batch = self.next_batch(shard)
            if batch is None:
                return False
            self.pending.append(batch)
        try:
            fn = lambda_backend(self.account, self.region).get_function(esm.function_arn)
            role = RoleView(fn)
        except Exception as e:
            self.result(f"PROBLEM: Function call failed ({e})")
            return False
        denied = role.check([(a, esm.event_source_arn) for a in STREAM_READ],
                            "event source mapping poll", record=False)
        if denied:
            if not self.denied:  # record the decisions once per change
                role.check([(a, esm.event_source_arn) for a in STREAM_READ],
                           "event source mapping poll")
            self.denied = True
            self.result("PROBLEM: Lambda cannot read the stream with the function's "
                        "execution role")
            return False
        self.denied = False
        batch = self.pending[0]
        if self.expire(batch, esm, fn, role):
            return True
        return self.deliver(batch, esm, fn, role)

    def next_batch(self, shard) -> Batch | None:
        esm = self.esm
        try:
            patterns = parse_filter_criteria(esm.filter_criteria)
        except PatternError:
            patterns = []  # validated when set
        items, records, i = shard.items, [], self.position
        while i < len(items) and len(records) < esm.batch_size:
            record = lambda_record(items[i], esm.event_source_arn)
            if not patterns or any(matches(p, record) for p in patterns):
                records.append((i, record))
            i += 1
        if not records:
            self.position = i  # the records no filter matched are dropped
            self.window_start = None
            return None
        window = int(esm.max_batch_window or 0)
        if window and len(records) < esm.batch_size:
            now = time.time()
            self.window_start = self.window_start or now
            if now - self.window_start < window:
                return None
        self.window_start = None
        return Batch(records)

    def expire(self, batch: Batch, esm, fn, role) -> bool:
        """Discards the batch's records older than MaximumRecordAgeInSeconds."""
        age = int(esm.max_record_age if esm.max_record_age is not None else -1)
        if age < 0:
            return False
        oldest_kept = time.time() - age
        old = [r for r in batch.records
               if r[1]["dynamodb"]["ApproximateCreationDateTime"] < oldest_kept]
        if not old:
            return False
        expired = Batch(old, batch.retries, batch.invokes)
        expired.request_id, expired.function_error = batch.request_id, batch.function_error
        self.discard(expired, "MaximumRecordAgeExceeded", esm, fn, role)
        batch.records = batch.records[len(old):]
        if not batch.records:
            self.pending.popleft()
        return True

    def deliver(self, batch: Batch, esm, fn, role) -> bool:
        batch.request_id = str(uuid.uuid4())
        event = json.dumps({"Records": [r for _, r in batch.records]}).encode()
        payload, error = RUN["lambda"](fn, event, batch.request_id)
        batch.invokes += 1
        batch.function_error = error
        if not self.alive():
            return False
        failed = None
        if not error and "ReportBatchItemFailures" in (esm.function_response_types or []):
            failed = failed_item(payload, batch)
        if not error and failed is None:
            self.position = max(self.position, batch.end)
            self.pending.popleft()
            self.result("OK")
            return True
        self.result("PROBLEM: Function call failed")
        bisect = bool(esm.bisect_on_error)
        self.pending.popleft()
        if isinstance(failed, int):  # partial: the records before the reported one are done
            self.position = max(self.position, batch.records[failed][0])
            rest = batch.records[failed:]
            split = bisect and len(rest) < len(batch.records)
            retry = [Batch(rest, batch.retries + (0 if split else 1), batch.invokes)]
        elif bisect and len(batch.records) > 1:
            half = len(batch.records) // 2
            retry = [Batch(batch.records[:half], batch.retries, batch.invokes),
                     Batch(batch.records[half:], batch.retries, batch.invokes)]
        else:
            retry = [Batch(batch.records, batch.retries + 1, batch.invokes)]
        limit = int(esm.max_retry_attempts if esm.max_retry_attempts is not None else -1)
        if limit >= 0 and len(retry) == 1 and retry[0].retries > limit:
            retry[0].request_id, retry[0].function_error = batch.request_id, error
            self.discard(retry[0], "RetryAttemptsExhausted", esm, fn, role)
            return True
        self.pending.extendleft(reversed(retry))
        return False  # wait a poll interval before the retry

    def discard(self, batch: Batch, condition: str, esm, fn, role) -> None:
        """Sends the batch's invocation record to the OnFailure destination (if any) and
        moves the checkpoint past it."""
        if self.pending and self.pending[0] is batch:
            self.pending.popleft()
        self.position = max(self.position, batch.end)
        first, last = batch.records[0][1], batch.records[-1][1]
        response = {"statusCode": 200, "executedVersion": "$LATEST"}
        if batch.function_error:
            response["functionError"] = "Unhandled"
        record = {
            "requestContext": {"requestId": batch.request_id, "functionArn": fn.function_arn,
                               "condition": condition,
                               "approximateInvokeCount": batch.invokes},
            "responseContext": response,
            "version": "1.0",
            "timestamp": _iso(time.time(), ms=True),
            "DDBStreamBatchInfo": {
                "shardId": find_shard(esm.event_source_arn).id
                if find_shard(esm.event_source_arn) else "",
                "startSequenceNumber": first["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": last["dynamodb"]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso(
                    first["dynamodb"]["ApproximateCreationDateTime"]),
                "approximateArrivalOfLastRecord": _iso(
                    last["dynamodb"]["ApproximateCreationDateTime"]),
                "batchSize": len(batch.records),
                "streamArn": esm.event_source_arn}}
        destination = destination_of(esm.destination_config)
        log.info("event source mapping %s discarded records %s-%s (%s)%s", self.uuid,
                 record["DDBStreamBatchInfo"]["startSequenceNumber"],
                 record["DDBStreamBatchInfo"]["endSequenceNumber"], condition,
                 f", sent to {destination}" if destination else "")
        if destination is None:
            return
        if role.check([("sqs:SendMessage", destination)], "OnFailure destination"):
            log.warning("event source mapping %s: the role may not send to %s; the "
                        "invocation record is lost, as on AWS", self.uuid, destination)
            return
        queue = _queue(destination)
        if queue is None:
            log.warning("event source mapping %s: %s is gone", self.uuid, destination)
            return
        _, _, _, region, account, name = destination.split(":")
        sqs_backends[account][region].send_message(name, json.dumps(record))


def reset() -> None:
    EPOCH[0] += 1


def install(run_lambda, registry) -> None:
    """Patches moto; `run_lambda(fn, event, request_id)` runs an invocation (server.py)."""
    RUN["lambda"], RUN["registry"] = run_lambda, registry
    StreamShard.add = stream_shard_add
    backend = lambda_models.LambdaBackend
    ORIGINAL["create"] = backend.create_event_source_mapping
    ORIGINAL["update"] = backend.update_event_source_mapping
    backend.create_event_source_mapping = create_event_source_mapping
    backend.update_event_source_mapping = update_event_source_mapping
    model = lambda_models.EventSourceMapping
    ORIGINAL["get_configuration"] = model.get_configuration
    model.get_configuration = get_configuration
    POLL_S[0] = poll_interval_from(os.environ.get(POLL_ENV))
