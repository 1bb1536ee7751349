"""Fixtures of the emulator's tests: one server for the whole session (started on a free
127.0.0.1 port, stopped by pid), its state reset before each test."""

import os
import sys
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import BOOTSTRAP, client, running_server, zip_bytes  # noqa: E402


@pytest.fixture(scope="session")
def endpoint(tmp_path_factory):
    # Lambda retries a failed asynchronous invocation after 1 and 2 minutes; 1 s here
    # (server.py RETRY_DELAYS_ENV), unless the caller chose.
    os.environ.setdefault("AIRFLOW_STACK_EMULATOR_LAMBDA_RETRY_DELAYS", "1,1")
    # Lambda polls a DynamoDB stream 4 times a second; 20 times here (stream_mappings.py).
    os.environ.setdefault("AIRFLOW_STACK_EMULATOR_STREAM_POLL_S", "0.05")
    log_path = tmp_path_factory.mktemp("emulator") / "server.log"
    with running_server(log_path) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def aws(endpoint):
    """Operator clients (the unregistered key `testing`: not restricted), after a reset
    of moto and of the emulator's identities, calls and task state."""
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
    return lambda service: client(endpoint, service)


@pytest.fixture
def lambda_code(aws, tmp_path):
    """Uploads the fake bootstrap zip; returns (bucket, key, record file)."""
    aws("s3").create_bucket(Bucket="code")
    aws("s3").put_object(Bucket="code", Key="cr.zip", Body=zip_bytes(BOOTSTRAP))
    record = tmp_path / "invocations.jsonl"
    record.touch()
    return "code", "cr.zip", record
