"""The tracked Lambda operator: invoke, then follow the invocation's own log lines."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.amazon.aws.hooks.lambda_function import LambdaHook
from airflow.providers.amazon.aws.hooks.logs import AwsLogsHook
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from airflow_stack_lambda.clock import Clock, SystemClock
from airflow_stack_lambda.correlation import make_correlation_id, payload_with_correlation_id
from airflow_stack_lambda.exceptions import (
    LambdaFunctionError,
    LambdaInvocationTimeout,
    LambdaInvokeError,
)
from airflow_stack_lambda.follower import FollowSpec, Outcome, follow
from airflow_stack_lambda.records import FunctionError
from airflow_stack_lambda.triggers import TrackedLambdaTrigger

EVENT = "Event"
REQUEST_RESPONSE = "RequestResponse"
_EXPECTED_STATUS = {EVENT: 202, REQUEST_RESPONSE: 200}
# Past the follower's own deadline, so Airflow's deferral timeout is only a backstop.
_DEFERRAL_MARGIN = timedelta(minutes=15)
# A synchronous call may outlast the function's timeout by Lambda's own overhead.
_SYNC_CALL_MARGIN_S = 60.0


class TrackedLambdaInvokeOperator(BaseOperator):
    """Invoke a Lambda function and report its real outcome from its log lines.

    Each try makes a fresh correlation ID (task identity, try number, randomness) and adds it
    to the payload under ``airflow_correlation_id``. The function logs it on every line, with
    a start marker, and an end marker (with its result) or an error record (README, "Record
    format"). The operator follows ``FilterLogEvents`` on the function's log group for that
    ID, copies each line into the task log, and:

    - succeeds on the end marker, returning the function's result (pushed to XCom);
    - fails with the error record's message, type and stack as the exception;
    - fails when neither comes within the function's timeout plus ``grace_period``.

    With ``invocation_type="Event"`` (the default) Lambda queues the call and the wait is all
    in the follower. With ``"RequestResponse"`` the worker waits for the call itself (as any
    synchronous call does); the response then decides the outcome and the follower adds the
    lines and, for a failure, the error record's stack (the response's error when no record
    comes within ``sync_log_wait``).

    Deferrable by default: the follower runs in :class:`TrackedLambdaTrigger` on the
    triggerer, and no worker slot is held while it waits. ``deferrable=False`` runs the same
    follower in the worker, for deployments without a triggerer.

    :param function_name: Function name, ARN or partial ARN.
    :param payload: A JSON object: a dict, or JSON text. ``None`` sends ``{}`` plus the ID.
    :param invocation_type: ``Event`` (asynchronous) or ``RequestResponse`` (synchronous).
    :param qualifier: Version or alias to invoke.
    :param deferrable: Wait on the triggerer (``True``) or in the worker.
    :param function_timeout: The function's timeout in seconds; read with
        ``GetFunctionConfiguration`` when ``None``.
    :param log_group: The function's log group; from ``GetFunctionConfiguration``'s
        ``LoggingConfig`` (default ``/aws/lambda/<name>``) when ``None``. Give both this and
        ``function_timeout`` and the operator needs no ``lambda:GetFunctionConfiguration``.
    :param grace_period: Seconds after the function's timeout before giving up.
    :param poll_interval: Seconds between ``FilterLogEvents`` passes (doubles, up to 60,
        while throttled).
    :param lookback: Seconds each pass re-reads behind the newest line seen (late lines).
    :param settle: Seconds before one last pass after the end marker or error record.
    :param sync_log_wait: For ``RequestResponse``: seconds to wait for the call's lines
        after it returned.
    :param aws_conn_id: Airflow connection for AWS (``None``: boto's default chain).
    :param region_name: AWS Region; the connection's when ``None``.
    :param verify: TLS certificate verification, as boto takes it.
    :param botocore_config: botocore ``Config`` options as a dict.
    """

    template_fields: Sequence[str] = (
        "function_name",
        "payload",
        "invocation_type",
        "qualifier",
        "log_group",
    )
    ui_color = "#ff9900"

    clock: Clock = SystemClock()
    """Class-wide so tests can give one operator a fake clock."""

    def __init__(
        self,
        *,
        function_name: str,
        payload: dict[str, Any] | str | bytes | None = None,
        invocation_type: str = EVENT,
        qualifier: str | None = None,
        deferrable: bool = True,
        function_timeout: float | None = None,
        log_group: str | None = None,
        grace_period: float = 60.0,
        poll_interval: float = 10.0,
        lookback: float = 120.0,
        settle: float = 2.0,
        sync_log_wait: float = 30.0,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.function_name = function_name
        self.payload = payload
        self.invocation_type = invocation_type
        self.qualifier = qualifier
        self.deferrable = deferrable
        self.function_timeout = function_timeout
        self.log_group = log_group
        self.grace_period = grace_period
        self.poll_interval = poll_interval
        self.lookback = lookback
        self.settle = settle
        self.sync_log_wait = sync_log_wait
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config

    # -- AWS clients (overridden in tests) ----------------------------------------------

    def _hook_kwargs(self, config: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "aws_conn_id": self.aws_conn_id,
            "region_name": self.region_name,
            "verify": self.verify,
            "config": config if config is not None else self.botocore_config,
        }

    def lambda_client(self, call_timeout_s: float | None = None) -> Any:
        """A boto3 ``lambda`` client from the operator's connection.

        ``call_timeout_s``: for a synchronous invocation, which lasts as long as the
        function. botocore's default read timeout (60 s) would cut a longer call, and its
        retry would invoke the function a second time; so the read timeout becomes the
        call's length and the call is not retried, unless ``botocore_config`` says
        otherwise.
        """
        config = dict(self.botocore_config or {})
        if call_timeout_s is not None:
            config.setdefault("read_timeout", call_timeout_s)
            config.setdefault("retries", {"total_max_attempts": 1})
        return LambdaHook(**self._hook_kwargs(config or None)).conn

    def logs_client(self) -> Any:
        """A boto3 ``logs`` client from the operator's connection."""
        return AwsLogsHook(**self._hook_kwargs()).conn

    # -- execution ------------------------------------------------------------------------

    def execute(self, context: Any) -> Any:
        """Invoke, then follow (deferred, or here when not deferrable)."""
        if self.invocation_type not in _EXPECTED_STATUS:
            raise ValueError(
                f"invocation_type must be {EVENT!r} or {REQUEST_RESPONSE!r}, "
                f"not {self.invocation_type!r}"
            )
        ti = context["ti"]
        correlation_id = make_correlation_id(
            ti.dag_id, ti.task_id, ti.run_id, ti.map_index, ti.try_number
        )
        self.log.info("Correlation ID of this try: %s", correlation_id)
        client = self.lambda_client()
        timeout_s, log_group = self._function_settings(client)
        if self.invocation_type == REQUEST_RESPONSE:
            client = self.lambda_client(call_timeout_s=timeout_s + _SYNC_CALL_MARGIN_S)
        spec = self._invoke(client, correlation_id, timeout_s, log_group)
        if self.deferrable:
            self.defer(
                trigger=TrackedLambdaTrigger(
                    spec=spec.to_json(),
                    aws_conn_id=self.aws_conn_id,
                    region_name=self.region_name,
                    verify=self.verify,
                    botocore_config=self.botocore_config,
                ),
                method_name="execute_complete",
                timeout=timedelta(milliseconds=spec.timeout_ms + spec.grace_ms) + _DEFERRAL_MARGIN,
            )
        outcome = follow(self.logs_client(), spec, self.clock, self._copy_line)
        return self._finish(outcome, spec.function_name, correlation_id)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """Back from the trigger: report its outcome."""
        outcome = Outcome.from_event(event["outcome"])
        return self._finish(outcome, event["function_name"], event["correlation_id"])

    def _function_settings(self, client: Any) -> tuple[float, str]:
        """The function's timeout (s) and log group: given, or ``GetFunctionConfiguration``."""
        if self.function_timeout is not None and self.log_group:
            return float(self.function_timeout), self.log_group
        request = {"FunctionName": self.function_name}
        if self.qualifier:
            request["Qualifier"] = self.qualifier
        config = client.get_function_configuration(**request)
        timeout_s = (
            float(self.function_timeout)
            if self.function_timeout is not None
            else float(config["Timeout"])
        )
        default_group = f"/aws/lambda/{config['FunctionName']}"
        log_group = (
            self.log_group or (config.get("LoggingConfig") or {}).get("LogGroup") or default_group
        )
        return timeout_s, log_group

    def _invoke(
        self, client: Any, correlation_id: str, timeout_s: float, log_group: str
    ) -> FollowSpec:
        """Call Lambda and describe what is left to follow."""
        body = json.dumps(payload_with_correlation_id(self.payload, correlation_id))
        request: dict[str, Any] = {
            "FunctionName": self.function_name,
            "InvocationType": self.invocation_type,
            "Payload": body.encode(),
        }
        if self.qualifier:
            request["Qualifier"] = self.qualifier
        self.log.info("Invoking %s (%s)", self.function_name, self.invocation_type)
        invoked_at_ms = self.clock.now_ms()
        response = client.invoke(**request)
        status = response.get("StatusCode")
        if status != _EXPECTED_STATUS[self.invocation_type]:
            raise LambdaInvokeError(
                f"Lambda answered {status} to the {self.invocation_type} invocation of "
                f"{self.function_name}: {response.get('ResponseMetadata')}"
            )
        common = {
            "function_name": self.function_name,
            "log_group": log_group,
            "correlation_id": correlation_id,
            "poll_interval_s": self.poll_interval,
            "lookback_ms": int(self.lookback * 1000),
            "settle_s": self.settle,
        }
        if self.invocation_type == EVENT:
            return FollowSpec(
                **common,
                invoked_at_ms=invoked_at_ms,
                timeout_ms=int(timeout_s * 1000),
                grace_ms=int(self.grace_period * 1000),
            )
        known = self._sync_outcome(response)
        # The call has returned: only the lines' ingestion is left to wait for.
        return FollowSpec(
            **common,
            invoked_at_ms=self.clock.now_ms(),
            timeout_ms=0,
            grace_ms=int(self.sync_log_wait * 1000),
            clock_skew_ms=int(timeout_s * 1000) + 60_000,
            known_outcome=known.to_event(),
        )

    def _sync_outcome(self, response: dict[str, Any]) -> Outcome:
        """What a ``RequestResponse`` response says: the result, or the function's error."""
        raw = response["Payload"].read()
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
        try:
            body: Any = json.loads(text) if text else None
        except ValueError:
            body = text
        if "FunctionError" not in response:
            return Outcome.success(body, has_result=bool(text))
        if isinstance(body, dict) and "errorMessage" in body:
            error = FunctionError.from_json(body)
        else:
            error = FunctionError(error_message=text, error_type=response["FunctionError"])
        self.log.error(
            "%s failed (%s): %s; reading its log lines for the error record",
            self.function_name,
            response["FunctionError"],
            error.error_message,
        )
        return Outcome.failure(error)

    def _finish(self, outcome: Outcome, function_name: str, correlation_id: str) -> Any:
        """Return the result or raise the error the outcome describes."""
        self.log.info(
            "Followed %s (correlation ID %s): %s, %s",
            function_name,
            correlation_id,
            outcome.status,
            ", ".join(f"{k}={v}" for k, v in sorted(outcome.stats.items())) or "no stats",
        )
        if outcome.status == "success":
            if outcome.message:
                self.log.warning("%s", outcome.message)
            return outcome.result if outcome.has_result else None
        if outcome.status == "error" and outcome.error is not None:
            raise LambdaFunctionError(function_name, correlation_id, outcome.error)
        if outcome.status == "timeout":
            raise LambdaInvocationTimeout(outcome.message)
        raise AirflowException(outcome.message or f"unexpected outcome {outcome.status!r}")

    def _copy_line(self, line: str) -> None:
        self.log.info("[lambda] %s", line)
