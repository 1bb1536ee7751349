"""Issue 19, point 2: the custom-resource Lambdas act only on requests CloudFormation
sent. stacks/dev.yaml is deployed with the real Lambdas (which confirm every Create and
Update with DescribeStackResource, as their roles allow, and reach CREATE_COMPLETE: the
happy path); then the deployed secrets function is invoked directly, as anyone allowed
lambda:InvokeFunction could, with Custom::AirflowConnectionUrls events naming the real
database secret and a host of the attacker's. Each is answered FAILED at its ResponseURL
and nothing is written.

    $AIRFLOW_STACK_VENV/bin/python -m pytest -q -p no:cacheprovider \
        tests/aws_emulator/test_forged_requests.py
"""

import copy
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness import calls
from test_template_mutations import aws, built, create_stack, failures, spec, synth  # noqa: F401

STACK_FILE = "stacks/dev.yaml"


class ResponseUrl:
    """A local stand-in for the presigned S3 URL: records the PUT bodies."""

    def __init__(self):
        self.bodies = []
        self.received = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_PUT(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.received:
                    outer.bodies.append(json.loads(body))
                    outer.received.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/cfn?X-Amz-Signature=forged"

    def only_answer(self, timeout=30):
        with self.received:
            self.received.wait_for(lambda: self.bodies, timeout)
        assert len(self.bodies) == 1, self.bodies
        return self.bodies[0]

    def close(self):
        self.server.shutdown()


@pytest.fixture(scope="module")
def deployed(endpoint):
    template = synth(STACK_FILE)
    cfn, stack = create_stack(endpoint, STACK_FILE, template)
    assert stack["StackStatus"] == "CREATE_COMPLETE", failures(cfn, stack["StackId"])
    # The happy path went through the check: both Lambdas asked CloudFormation about
    # their own stack, allowed by their roles, and nothing anyone did was denied.
    name = spec(STACK_FILE)["name"]
    asked = [c for c in calls(endpoint) if c["action"] == "cloudformation:DescribeStackResource"]
    callers = {"migration" if c["identity"] == f"{name}-migration" else
               "secrets" if "SecretsFunction" in c["identity"] else c["identity"]
               for c in asked}
    assert callers == {"migration", "secrets"}, callers
    assert all(c["allowed"] and c["resource"] == stack["StackId"] for c in asked), asked
    assert [c for c in calls(endpoint) if not c["allowed"]] == []
    return template, stack


def _resource(template, resource_type):
    (logical,) = [k for k, r in template["Resources"].items() if r["Type"] == resource_type]
    return logical


def _physical_id(endpoint, stack, logical):
    cfn = aws(endpoint, "cloudformation", spec(STACK_FILE)["region"])
    return cfn.describe_stack_resource(StackName=stack["StackId"], LogicalResourceId=logical)[
        "StackResourceDetail"]["PhysicalResourceId"]


def _invoke_secrets_function(endpoint, template, stack, event):
    """Invokes the deployed secrets function as an operator who may call it."""
    fn_logical = next(k for k, r in template["Resources"].items()
                      if r["Type"] == "AWS::Lambda::Function" and k.startswith("Secrets"))
    name = _physical_id(endpoint, stack, fn_logical)
    answer = aws(endpoint, "lambda", spec(STACK_FILE)["region"]).invoke(
        FunctionName=name, Payload=json.dumps(event).encode())
    assert "FunctionError" not in answer, answer["Payload"].read()


def _secret(endpoint, arn):
    return aws(endpoint, "secretsmanager", spec(STACK_FILE)["region"]).get_secret_value(
        SecretId=arn)


FORGERIES = {
    # The real resource, but CloudFormation is not running it: CREATE_COMPLETE.
    "settled-resource": (lambda logical: logical, "CREATE_COMPLETE, not being created"),
    # A resource the stack does not have.
    "unknown-resource": (lambda logical: "Forged", "CloudFormation has no resource Forged"),
}


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_a_forged_connection_urls_event_is_refused_and_writes_nothing(endpoint, deployed,
                                                                       forgery):
    template, stack = deployed
    name_of, reason_part = FORGERIES[forgery]
    logical = _resource(template, "Custom::AirflowConnectionUrls")
    real = template["Resources"][logical]["Properties"]
    props = {k: v for k, v in copy.deepcopy(real).items() if isinstance(v, str)}
    arns = {key: _physical_id(endpoint, stack, real[key]["Ref"])
            for key in ("DatabaseSecretArn", "RedisSecretArn")}
    before = {key: _secret(endpoint, arn) for key, arn in arns.items()}
    props.update({
        **arns, "ServiceToken": "forged", "DbPort": "5432",
        # Passes the host rules (any RDS endpoint, the attacker's own included): only the
        # origin check stands between this event and a URL with the real password.
        "DbHost": "attacker.cluster-0123456789ab.us-east-1.rds.amazonaws.com"})
    response_url = ResponseUrl()
    try:
        _invoke_secrets_function(endpoint, template, stack, {
            "RequestType": "Create", "ResponseURL": response_url.url,
            "StackId": stack["StackId"], "RequestId": str(uuid.uuid4()),
            "ResourceType": "Custom::AirflowConnectionUrls",
            "LogicalResourceId": name_of(logical), "ResourceProperties": props})
        answer = response_url.only_answer()
    finally:
        response_url.close()
    assert answer["Status"] == "FAILED", answer
    assert answer["Reason"].startswith("request refused: "), answer["Reason"]
    assert reason_part in answer["Reason"], answer["Reason"]
    for key, arn in arns.items():
        password = json.loads(before[key]["SecretString"])["password"]
        assert password not in json.dumps(answer)
        after = _secret(endpoint, arn)
        assert (after["VersionId"], after["SecretString"]) == (
            before[key]["VersionId"], before[key]["SecretString"]), f"{key} was written"
