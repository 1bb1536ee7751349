"""The tracked Lambda operator against the example Rust function (issue 16; shape `secrets`,
whose stack file lists the function under `airflow.lambda_functions`;
tests/e2e/test_tracked_lambda_e2e.py).

The example function (crates/tracked-example) does what its payload says (`action`:
succeed, fail, sleep; `message`; `seconds`). The harness creates it in the AWS emulator
as `e2e-tracked-example` with a 30 s timeout (and as `e2e-tracked-slow` with 240 s) and
no asynchronous retries of Lambda's own (`MaximumRetryAttempts: 0`), as the provider's
README asks.

The operator comes from the image (the build installs providers/airflow-stack-lambda); the
shapes without it skip defining these DAGs, so the file parses everywhere.
"""

from datetime import timedelta
import importlib.util

import pendulum
from airflow.sdk import dag

FUNCTION = "e2e-tracked-example"
SLOW_FUNCTION = "e2e-tracked-slow"  # the same code with a 240 s timeout, for the load
# Each case names its exact error; the test finds it in the task log.
ASYNC_ERROR = "E2E-EXACT async: the vendor API answered 418 I'm a teapot"
SYNC_ERROR = "E2E-EXACT sync: the input file s3://e2e/in.csv has no header"
STOCK_ERROR = "E2E-EXACT stock: this failure is invisible to the stock operator"
LOAD_WAITERS = 50
LOAD_SLEEP_S = 150  # long enough for 4 worker slots to defer all 50

HAS_PROVIDER = importlib.util.find_spec("airflow_stack_lambda") is not None

if HAS_PROVIDER:
    from airflow.providers.amazon.aws.operators.lambda_function import (
        LambdaInvokeFunctionOperator,
    )
    from airflow_stack_lambda.operators import TrackedLambdaInvokeOperator

    # aws_conn_id=None: the task role's credentials through boto's default chain, as on
    # ECS (no connection to look up). Short polls keep the e2e quick.
    FAST = {"function_name": FUNCTION, "aws_conn_id": None, "poll_interval": 2.0,
            "lookback": 30.0, "grace_period": 10.0, "sync_log_wait": 15.0}

    @dag(dag_id="e2e_tracked_lambda", schedule=None,
         start_date=pendulum.datetime(2025, 1, 1), catchup=False, tags=["e2e"],
         default_args={"retries": 0}, max_active_tasks=16)
    def e2e_tracked_lambda():
        TrackedLambdaInvokeOperator(
            task_id="async_success",
            payload={"lines": 3, "action": "succeed", "result": {"rows": 42}}, **FAST)
        TrackedLambdaInvokeOperator(
            task_id="async_failure",
            payload={"lines": 2, "action": "fail", "message": ASYNC_ERROR,
                     "cause": "connection reset by peer"}, **FAST)
        TrackedLambdaInvokeOperator(
            task_id="sync_failure", invocation_type="RequestResponse",
            payload={"lines": 1, "action": "fail", "message": SYNC_ERROR}, **FAST)
        # Sleeps past the function's 30 s timeout: Lambda ends it, no end marker comes.
        TrackedLambdaInvokeOperator(
            task_id="no_end_marker", payload={"lines": 1, "action": "sleep"}, **FAST)
        # Try 1 fails, try 2 succeeds: each try has its own correlation ID and lines.
        TrackedLambdaInvokeOperator(
            task_id="retried", retries=1, retry_delay=timedelta(seconds=1),
            payload={"lines": 2, "message": "E2E-EXACT first try fails",
                     "action": "{{ 'fail' if ti.try_number == 1 else 'succeed' }}",
                     "result": "second try"}, **FAST)
        # The comparison that motivates the feature: Lambda accepts the call (202), the
        # stock operator reports success, and the function then fails.
        LambdaInvokeFunctionOperator(
            task_id="stock_async_failure", function_name=FUNCTION, aws_conn_id=None,
            invocation_type="Event",
            payload='{"lines": 1, "action": "fail", "message": "%s"}' % STOCK_ERROR)

    @dag(dag_id="e2e_tracked_lambda_load", schedule=None,
         start_date=pendulum.datetime(2025, 1, 1), catchup=False, tags=["e2e"],
         default_args={"retries": 0}, max_active_tasks=LOAD_WAITERS)
    def e2e_tracked_lambda_load():
        # LOAD_WAITERS invocations waiting at once on the triggerer, with the operator's
        # default poll interval: the figure of triggerer overhead per waiting invocation.
        TrackedLambdaInvokeOperator.partial(
            task_id="wait", function_name=SLOW_FUNCTION, aws_conn_id=None,
        ).expand(payload=[{"action": "sleep", "seconds": LOAD_SLEEP_S, "result": i}
                          for i in range(LOAD_WAITERS)])

    e2e_tracked_lambda()
    e2e_tracked_lambda_load()
