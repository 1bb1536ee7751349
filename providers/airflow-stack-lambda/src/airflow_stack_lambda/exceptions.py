"""The errors a tracked invocation fails its task with."""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException

from airflow_stack_lambda.records import FunctionError


class LambdaFunctionError(AirflowException):
    """The function failed; the message is its own error, type and stack included."""

    def __init__(self, function_name: str, correlation_id: str, error: FunctionError) -> None:
        self.function_name = function_name
        self.correlation_id = correlation_id
        self.error = error
        super().__init__(self._describe())

    def _describe(self) -> str:
        kind = f"{self.error.error_type}: " if self.error.error_type else ""
        lines = [
            f"{kind}{self.error.error_message}",
            f"(Lambda function {self.function_name}, correlation ID {self.correlation_id})",
        ]
        if self.error.stack_trace:
            lines.append("stack:")
            lines.extend(f"  {frame}" for frame in self.error.stack_trace)
        return "\n".join(lines)

    def __reduce__(self) -> tuple[type[LambdaFunctionError], tuple[str, str, FunctionError]]:
        # Exceptions are pickled between processes; the default would pass only the message.
        return (type(self), (self.function_name, self.correlation_id, self.error))


class LambdaInvocationTimeout(AirflowException):
    """Neither an end marker nor an error record came before the function's timeout plus
    the grace period."""


class LambdaInvokeError(AirflowException):
    """Lambda did not accept the invocation (a status code other than the expected one)."""
