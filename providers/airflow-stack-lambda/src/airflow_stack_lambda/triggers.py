"""The trigger that follows a tracked invocation's log lines on the triggerer.

It talks to CloudWatch Logs through the amazon provider's ``AwsLogsHook.get_async_conn()``
(an aiobotocore client): the same Airflow connection, region, certificate setting and
botocore options as the worker half, without re-implementing how Airflow resolves AWS
credentials (assumed roles, endpoint overrides in the connection's extra). That needs the
provider's ``aiobotocore`` extra, which this package depends on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.amazon.aws.hooks.logs import AwsLogsHook
from airflow.triggers.base import BaseTrigger, TriggerEvent
from botocore.exceptions import BotoCoreError, ClientError

from airflow_stack_lambda.clock import AsyncClock, SystemAsyncClock
from airflow_stack_lambda.follower import FollowSpec, Outcome, follow_async


class TrackedLambdaTrigger(BaseTrigger):
    """Waits for one invocation's end marker, error record or timeout, copying its lines.

    Serialises only what following needs: the :class:`FollowSpec` (names, correlation ID,
    times, polling settings, a synchronous call's known outcome) and the AWS connection
    settings. A triggerer that restarts runs the trigger again from the start of the
    invocation: lines already copied are copied again, the outcome is the same.

    :param spec: :meth:`FollowSpec.to_json` of the invocation.
    :param aws_conn_id: Airflow connection for AWS (``None``: boto's default chain).
    :param region_name: AWS Region; the connection's when ``None``.
    :param verify: TLS certificate verification, as boto takes it.
    :param botocore_config: botocore ``Config`` options as a dict.
    """

    clock: AsyncClock = SystemAsyncClock()
    """Class-wide so tests can give one trigger a fake clock."""

    def __init__(
        self,
        *,
        spec: dict[str, Any],
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and keyword arguments, as the triggerer rebuilds triggers."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "spec": self.spec,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "verify": self.verify,
                "botocore_config": self.botocore_config,
            },
        )

    def logs_hook(self) -> AwsLogsHook:
        """The CloudWatch Logs hook built from the serialised connection settings."""
        return AwsLogsHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
        )

    async def logs_client(self) -> Any:
        """An async context manager giving the aiobotocore ``logs`` client."""
        return await self.logs_hook().get_async_conn()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Follow until the outcome is known and fire it as the only event."""
        spec = FollowSpec.from_json(self.spec)
        try:
            async with await self.logs_client() as client:
                outcome = await follow_async(client, spec, self.clock, self._copy_line)
        except (ClientError, BotoCoreError) as error:
            # A failed call (no permission, no network) fails the task with AWS's words,
            # in the task's own log, rather than as a trigger crash.
            outcome = Outcome("follow_error", message=f"following {spec.log_group}: {error}")
        yield TriggerEvent(
            {
                "function_name": spec.function_name,
                "correlation_id": spec.correlation_id,
                "outcome": outcome.to_event(),
            }
        )

    def _copy_line(self, line: str) -> None:
        # The triggerer routes a trigger's log to the deferred task's log.
        self.log.info("[lambda] %s", line)
