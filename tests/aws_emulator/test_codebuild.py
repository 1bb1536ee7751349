"""CodeBuild in the emulator (codebuild.py): a build runs phase by phase, logs to its
CloudWatch stream, pushes its image to ECR, ends as the test decides, and is bounded by
its service role.

    $AIRFLOW_STACK_VENV/bin/python -m pytest tests/aws_emulator/test_codebuild.py -q
"""

import io
import json
import time
import zipfile

import pytest
from botocore.exceptions import ClientError

from harness import (_LAMBDA_PRELUDE, ACCOUNT, REGION, call, calls, client, deploy, outputs,
                     register, zip_bytes)

BUILDSPEC = """version: 0.2
phases:
  pre_build:
    commands:
      - aws ecr get-login-password | docker login --username AWS --password-stdin $REGISTRY
  build:
    commands:
      - docker build -t $REPOSITORY_URI:$IMAGE_TAG .
  post_build:
    commands:
      - set -o pipefail; docker push "$REPOSITORY_URI:$IMAGE_TAG"
"""


def context_zip(buildspec=BUILDSPEC) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Dockerfile", "FROM apache/airflow:3.1.0\n")
        if buildspec is not None:
            archive.writestr("buildspec.yml", buildspec)
    return buffer.getvalue()


def role_statements(*, logs=True, source=True, push=True):
    statements = []
    if logs:
        statements.append({"Effect": "Allow", "Action": ["logs:CreateLogGroup",
                           "logs:CreateLogStream", "logs:PutLogEvents"],
                           "Resource": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:"
                                       "/aws/codebuild/image:*"})
    if source:
        statements.append({"Effect": "Allow", "Action": ["s3:GetObject",
                                                         "s3:GetObjectVersion"],
                           "Resource": "arn:aws:s3:::ctx/*"})
    if push:
        statements += [
            {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Effect": "Allow", "Action": ["ecr:BatchCheckLayerAvailability",
             "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload",
             "ecr:PutImage"], "Resource": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/app"}]
    return statements


def template(**role):
    """A repository, the build's role and the project, as CloudFormation creates them."""
    uri = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/app"
    return json.dumps({"Resources": {
        "Repo": {"Type": "AWS::ECR::Repository", "Properties": {"RepositoryName": "app"}},
        "BuildRole": {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "sts:AssumeRole",
                "Principal": {"Service": "codebuild.amazonaws.com"}}]},
            "Policies": [{"PolicyName": "build", "PolicyDocument": {
                "Version": "2012-10-17", "Statement": role_statements(**role)}}]}},
        "Project": {"Type": "AWS::CodeBuild::Project", "Properties": {
            "Name": "image", "ServiceRole": {"Fn::GetAtt": ["BuildRole", "Arn"]},
            "Source": {"Type": "S3", "Location": "ctx/initial.zip"},
            "Artifacts": {"Type": "NO_ARTIFACTS"}, "TimeoutInMinutes": 50,
            "Environment": {"Type": "LINUX_CONTAINER", "ComputeType": "BUILD_GENERAL1_SMALL",
                            "Image": "aws/codebuild/standard:7.0", "PrivilegedMode": True,
                            "EnvironmentVariables": [
                                {"Name": "REPOSITORY_URI", "Value": uri},
                                {"Name": "REGISTRY", "Value": uri.split("/")[0]}]}}},
    }, "Outputs": {"ProjectArn": {"Value": {"Fn::GetAtt": ["Project", "Arn"]}},
                   "ProjectName": {"Value": {"Ref": "Project"}}}})


@pytest.fixture
def project(aws):
    """The stack deployed and a build context uploaded; returns the CodeBuild client."""
    s3 = aws("s3")
    s3.create_bucket(Bucket="ctx")
    s3.put_object(Bucket="ctx", Key="image/abc123.zip", Body=context_zip())
    stack, _ = deploy(aws("cloudformation"), "img", template(), "CREATE")
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    out = outputs(stack)
    assert out["ProjectName"] == "image"
    assert out["ProjectArn"] == f"arn:aws:codebuild:{REGION}:{ACCOUNT}:project/image"
    return aws("codebuild")


def start(codebuild, tag="abc123", key="image/abc123.zip", **extra):
    return codebuild.start_build(
        projectName="image", sourceTypeOverride="S3", sourceLocationOverride=f"ctx/{key}",
        environmentVariablesOverride=[{"name": "IMAGE_TAG", "value": tag,
                                       "type": "PLAINTEXT"}], **extra)["build"]


def wait_for_end(codebuild, build_id, timeout=30):
    """Polls BatchGetBuilds until the build ends; returns every document seen."""
    seen, deadline = [], time.time() + timeout
    while time.time() < deadline:
        (build,) = codebuild.batch_get_builds(ids=[build_id])["builds"]
        seen.append(build)
        if build["buildStatus"] != "IN_PROGRESS":
            return seen
        time.sleep(0.1)
    raise AssertionError(f"{build_id} still running: {seen[-1]['currentPhase']}")


def log_lines(aws, build):
    group, stream = build["logs"]["groupName"], build["logs"]["streamName"]
    events = aws("logs").get_log_events(logGroupName=group, logStreamName=stream,
                                        startFromHead=True)["events"]
    return [e["message"] for e in events]


def test_a_build_runs_through_its_phases_logs_and_pushes_the_tag(aws, project):
    call_status, _ = call(aws("s3").meta.endpoint_url, "POST",
                          "/_emulator/codebuild-next-build", {"seconds": 1.6})
    assert call_status == 200
    build = start(project)
    assert build["buildStatus"] == "IN_PROGRESS" and build["id"].startswith("image:")
    seen = wait_for_end(project, build["id"])
    assert len(seen) > 3, "the build took a while"
    assert {b["currentPhase"] for b in seen[:-1]} & {"PROVISIONING", "BUILD", "INSTALL"}
    done = seen[-1]
    assert done["buildStatus"] == "SUCCEEDED" and done["currentPhase"] == "COMPLETED"
    assert done["buildComplete"] is True and done["endTime"] >= done["startTime"]
    phases = [(p["phaseType"], p.get("phaseStatus")) for p in done["phases"]]
    assert phases == [("SUBMITTED", "SUCCEEDED"), ("QUEUED", "SUCCEEDED"),
                      ("PROVISIONING", "SUCCEEDED"), ("DOWNLOAD_SOURCE", "SUCCEEDED"),
                      ("INSTALL", "SUCCEEDED"), ("PRE_BUILD", "SUCCEEDED"),
                      ("BUILD", "SUCCEEDED"), ("POST_BUILD", "SUCCEEDED"),
                      ("UPLOAD_ARTIFACTS", "SUCCEEDED"), ("FINALIZING", "SUCCEEDED"),
                      ("COMPLETED", None)]
    assert done["source"] == {**done["source"], "type": "S3", "location": "ctx/image/abc123.zip"}
    assert {"name": "IMAGE_TAG", "value": "abc123", "type": "PLAINTEXT"} in \
        done["environment"]["environmentVariables"]
    uuid = build["id"].split(":", 1)[1]
    assert done["logs"]["groupName"] == "/aws/codebuild/image"
    assert done["logs"]["streamName"] == uuid
    lines = log_lines(aws, done)
    text = "\n".join(lines)
    uri = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/app"
    assert "Running command docker build -t $REPOSITORY_URI:$IMAGE_TAG ." in text
    assert "Phase complete: POST_BUILD State: SUCCEEDED" in text
    assert f"The push refers to repository [{uri}]" in text
    images = aws("ecr").describe_images(repositoryName="app",
                                        imageIds=[{"imageTag": "abc123"}])["imageDetails"]
    assert images and images[0]["imageTags"] == ["abc123"]
    assert project.list_builds_for_project(projectName="image")["ids"] == [build["id"]]


def test_a_failing_build_reports_phase_context_and_log(aws, project):
    endpoint = aws("s3").meta.endpoint_url
    status, _ = call(endpoint, "POST", "/_emulator/codebuild-next-build", {
        "status": "FAILED", "phase": "BUILD", "seconds": 0.4,
        "lines": ["ERROR: No matching distribution found for nosuchpkg==9.9"]})
    assert status == 200
    done = wait_for_end(project, start(project)["id"])[-1]
    assert done["buildStatus"] == "FAILED" and done["currentPhase"] == "COMPLETED"
    (failed,) = [p for p in done["phases"] if p.get("phaseStatus") == "FAILED"]
    assert failed["phaseType"] == "BUILD"
    assert failed["contexts"] == [{
        "statusCode": "COMMAND_EXECUTION_ERROR",
        "message": "Error while executing command: docker build -t $REPOSITORY_URI:$IMAGE_TAG "
                   ".. Reason: exit status 1"}]
    assert [p["phaseType"] for p in done["phases"]][-1] == "COMPLETED"
    assert "POST_BUILD" not in [p["phaseType"] for p in done["phases"]]
    lines = log_lines(aws, done)
    assert "ERROR: No matching distribution found for nosuchpkg==9.9" in lines
    assert lines[-1].endswith("Phase context status code: COMMAND_EXECUTION_ERROR Message: "
                              "Error while executing command: docker build -t "
                              "$REPOSITORY_URI:$IMAGE_TAG .. Reason: exit status 1")
    with pytest.raises(ClientError, match="ImageNotFoundException"):
        aws("ecr").describe_images(repositoryName="app", imageIds=[{"imageTag": "abc123"}])
    # The next build is back to the default: it succeeds.
    assert wait_for_end(project, start(project, tag="def456")["id"])[-1]["buildStatus"] == \
        "SUCCEEDED"


def test_a_missing_source_fails_in_download_source(aws, project):
    done = wait_for_end(project, start(project, key="image/missing.zip")["id"])[-1]
    assert done["buildStatus"] == "FAILED"
    (failed,) = [p for p in done["phases"] if p.get("phaseStatus") == "FAILED"]
    assert failed["phaseType"] == "DOWNLOAD_SOURCE"
    assert failed["contexts"][0]["statusCode"] == "CLIENT_ERROR"
    assert "NoSuchKey" in failed["contexts"][0]["message"]
    with pytest.raises(ClientError, match="Invalid source location"):
        project.start_build(projectName="image", sourceTypeOverride="S3",
                            sourceLocationOverride="no-key")


def test_an_s3_source_version_is_the_object_version_built(aws, project):
    s3 = aws("s3")
    s3.put_bucket_versioning(Bucket="ctx", VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket="ctx", Key="image/v.zip", Body=context_zip())["VersionId"]
    s3.put_object(Bucket="ctx", Key="image/v.zip", Body=b"not a zip")  # a later object
    done = wait_for_end(project, start(project, key="image/v.zip",
                                       sourceVersion=first)["id"])[-1]
    assert done["buildStatus"] == "SUCCEEDED", done["phases"]
    assert done["sourceVersion"] == first
    done = wait_for_end(project, start(project, key="image/v.zip", tag="latest1")["id"])[-1]
    (failed,) = [p for p in done["phases"] if p.get("phaseStatus") == "FAILED"]
    assert "zip: not a valid zip file" in failed["contexts"][0]["message"]
    done = wait_for_end(project, start(project, key="image/v.zip", tag="gone1",
                                       sourceVersion="no-such-version")["id"])[-1]
    (failed,) = [p for p in done["phases"] if p.get("phaseStatus") == "FAILED"]
    assert "NoSuchVersion" in failed["contexts"][0]["message"]


def test_the_same_idempotency_token_returns_the_same_build(aws, project):
    first = start(project, idempotencyToken="cfn-1")
    again = start(project, idempotencyToken="cfn-1")
    assert again["id"] == first["id"]
    assert len(project.list_builds_for_project(projectName="image")["ids"]) == 1
    with pytest.raises(ClientError, match="different parameters"):
        start(project, tag="other", idempotencyToken="cfn-1")


def test_the_service_role_bounds_the_build(aws):
    s3 = aws("s3")
    s3.create_bucket(Bucket="ctx")
    s3.put_object(Bucket="ctx", Key="image/abc123.zip", Body=context_zip())
    stack, _ = deploy(aws("cloudformation"), "img", template(push=False, logs=True), "CREATE")
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    done = wait_for_end(aws("codebuild"), start(aws("codebuild"))["id"])[-1]
    assert done["buildStatus"] == "FAILED"
    (failed,) = [p for p in done["phases"] if p.get("phaseStatus") == "FAILED"]
    assert failed["phaseType"] == "POST_BUILD"
    assert "denied: User: arn:aws:sts::123456789012:assumed-role/" in "\n".join(
        log_lines(aws, done))

    aws("cloudformation").delete_stack(StackName="img")
    stack, _ = deploy(aws("cloudformation"), "img2", template(logs=False).replace(
        '"image"', '"image2"'), "CREATE")
    done = wait_for_end(aws("codebuild"), aws("codebuild").start_build(
        projectName="image2", sourceTypeOverride="S3",
        sourceLocationOverride="ctx/image/abc123.zip")["build"]["id"])[-1]
    (failed,) = [p for p in done["phases"] if p.get("phaseStatus") == "FAILED"]
    assert failed["phaseType"] == "PROVISIONING"
    assert failed["contexts"][0]["statusCode"] == "ACCESS_DENIED"
    assert "does not allow AWS CodeBuild to create Amazon CloudWatch Logs log streams" in \
        failed["contexts"][0]["message"]
    assert "groupName" not in done["logs"]


def test_codebuild_and_ecr_calls_are_authorized_on_their_arns(aws, project):
    endpoint = aws("s3").meta.endpoint_url
    project_arn = f"arn:aws:codebuild:{REGION}:{ACCOUNT}:project/image"
    repo_arn = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/app"
    key = register(endpoint, "builder",
                   {"Effect": "Allow", "Action": ["codebuild:StartBuild",
                                                  "codebuild:BatchGetBuilds"],
                    "Resource": project_arn},
                   {"Effect": "Allow", "Action": ["ecr:DescribeImages",
                                                  "ecr:DescribeRepositories"],
                    "Resource": repo_arn})
    codebuild, ecr = client(endpoint, "codebuild", key), client(endpoint, "ecr", key)
    build = start(codebuild)
    wait_for_end(codebuild, build["id"])
    assert ecr.describe_repositories(repositoryNames=["app"])["repositories"][0][
        "repositoryUri"] == f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/app"
    ecr.describe_images(repositoryName="app", imageIds=[{"imageTag": "abc123"}])
    with pytest.raises(ClientError, match="AccessDenied"):
        codebuild.list_builds_for_project(projectName="image")
    with pytest.raises(ClientError, match="AccessDenied"):
        ecr.put_image(repositoryName="app", imageManifest="{}", imageTag="x")
    decided = {(c["action"], c["resource"], c["allowed"]) for c in calls(endpoint, "builder")}
    assert ("codebuild:StartBuild", project_arn, True) in decided
    assert ("codebuild:BatchGetBuilds", project_arn, True) in decided
    assert ("ecr:DescribeImages", repo_arn, True) in decided
    assert ("ecr:PutImage", repo_arn, False) in decided


# A custom resource that hands its wait over, as lambdas/image-build and
# lambdas/migration do: the first invocation invokes itself asynchronously with the event
# and returns without answering; the second answers 3 s later, after the emulator's 2 s
# grace for a function that returned without answering.
HANDING_OVER = _LAMBDA_PRELUDE + r'''
import boto3
if "Continuation" in event:
    time.sleep(3)
    original = event["Continuation"]
    body = json.dumps({
        "Status": "SUCCESS", "PhysicalResourceId": "handed-over",
        "StackId": original["StackId"], "RequestId": original["RequestId"],
        "LogicalResourceId": original["LogicalResourceId"], "Data": {"Hops": "1"}}).encode()
    assert put_response(original["ResponseURL"], body) == 200
elif event.get("RequestType") in ("Create", "Update"):
    boto3.client("lambda").invoke(FunctionName=os.environ["AWS_LAMBDA_FUNCTION_NAME"],
                                  InvocationType="Event",
                                  Payload=json.dumps({"Continuation": event}).encode())
else:
    body = json.dumps({"Status": "SUCCESS", "PhysicalResourceId": event["PhysicalResourceId"],
                       "StackId": event["StackId"], "RequestId": event["RequestId"],
                       "LogicalResourceId": event["LogicalResourceId"]}).encode()
    put_response(event["ResponseURL"], body)
api.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/response", body="{}")
api.getresponse().read()
api.request("GET", "/2018-06-01/runtime/invocation/next")
api.getresponse()
'''


def handing_over_template(may_invoke=True):
    statements = [{"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream",
                                                 "logs:PutLogEvents"], "Resource": "*"}]
    if may_invoke:
        statements.append({"Effect": "Allow", "Action": "lambda:InvokeFunction",
                           "Resource": {"Fn::Sub": "arn:aws:lambda:${AWS::Region}:"
                                                   "${AWS::AccountId}:function:hand-over"}})
    return json.dumps({"Resources": {
        "Role": {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "sts:AssumeRole",
                "Principal": {"Service": "lambda.amazonaws.com"}}]},
            "Policies": [{"PolicyName": "p", "PolicyDocument": {
                "Version": "2012-10-17", "Statement": statements}}]}},
        "Fn": {"Type": "AWS::Lambda::Function", "Properties": {
            "FunctionName": "hand-over", "Code": {"S3Bucket": "code", "S3Key": "h.zip"},
            "Handler": "bootstrap", "Runtime": "provided.al2023", "Timeout": 30,
            "Role": {"Fn::GetAtt": ["Role", "Arn"]}}},
        "Wait": {"Type": "Custom::Wait", "Properties": {
            "ServiceToken": {"Fn::GetAtt": ["Fn", "Arn"]}, "ServiceTimeout": "30"}}},
        "Outputs": {"Hops": {"Value": {"Fn::GetAtt": ["Wait", "Hops"]}}}})


def test_a_wait_handed_to_another_invocation_is_answered_by_it(aws):
    aws("s3").create_bucket(Bucket="code")
    aws("s3").put_object(Bucket="code", Key="h.zip", Body=zip_bytes(HANDING_OVER))
    stack, _ = deploy(aws("cloudformation"), "handover", handing_over_template(), "CREATE")
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert outputs(stack)["Hops"] == "1"
    # Without the right to invoke itself nobody carries the request on: the emulator
    # fails it after its grace, naming the function.
    stack, _ = deploy(aws("cloudformation"), "stuck", handing_over_template(False).replace(
        '"hand-over"', '"stuck"').replace("function:hand-over", "function:stuck"), "CREATE")
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    reasons = [e.get("ResourceStatusReason") or "" for e in aws("cloudformation")
               .describe_stack_events(StackName="stuck")["StackEvents"]
               if e["LogicalResourceId"] == "Wait" and e["ResourceStatus"] == "CREATE_FAILED"]
    assert reasons and "returned without sending a response" in reasons[0], reasons


def test_a_repository_without_a_name_gets_one_ecr_accepts(aws):
    body = json.dumps({"Resources": {"ImageRepository": {"Type": "AWS::ECR::Repository"}},
                       "Outputs": {"Name": {"Value": {"Ref": "ImageRepository"}}}})
    stack, _ = deploy(aws("cloudformation"), "Airflow-Built", body, "CREATE")
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    name = outputs(stack)["Name"]
    assert name.startswith("airflow-built-imagerepository-") and name == name.lower()
    assert aws("ecr").describe_repositories(repositoryNames=[name])["repositories"]


def test_stop_build_stops_a_running_build(aws, project):
    endpoint = aws("s3").meta.endpoint_url
    call(endpoint, "POST", "/_emulator/codebuild-next-build", {"seconds": 8})
    build = start(project)
    project.stop_build(id=build["id"])
    done = wait_for_end(project, build["id"])[-1]
    assert done["buildStatus"] == "STOPPED"
    (stopped,) = [p for p in done["phases"] if p.get("phaseStatus") == "STOPPED"]
    assert stopped["contexts"][0]["statusCode"] == "BUILD_STOPPED"
    with pytest.raises(ClientError, match="ImageNotFoundException"):
        aws("ecr").describe_images(repositoryName="app", imageIds=[{"imageTag": "abc123"}])
