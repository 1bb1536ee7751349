"""CodeBuild builds that take time, can fail, write their log and push their image.

moto 5.2.5's CodeBuild (moto/codebuild/models.py) has no CloudFormation model, ignores
StartBuild's overrides (source, environment variables, idempotency token), and reports
every build SUCCEEDED, with random phase durations and a log location of
`group:null`, the moment BatchGetBuilds is called. A custom resource waiting for a
build would never see one run, fail or outlast a Lambda invocation. Here:

- AWS::CodeBuild::Project is created through CloudFormation (Ref = name, GetAtt Arn).
- StartBuild takes sourceTypeOverride/sourceLocationOverride (an S3 source is
  `bucket/key`), environmentVariablesOverride and idempotencyToken (the same token within
  five minutes returns the same build; with other parameters it is refused).
- A build runs for a while in a thread, phase after phase (SUBMITTED, QUEUED,
  PROVISIONING, DOWNLOAD_SOURCE, INSTALL, PRE_BUILD, BUILD, POST_BUILD,
  UPLOAD_ARTIFACTS, FINALIZING, COMPLETED), as the service role allows:
  PROVISIONING creates the log stream `/aws/codebuild/<project>` / `<build uuid>` (or
  the project's LogsConfig names) and needs logs:CreateLogStream/PutLogEvents (and
  logs:CreateLogGroup for a new group); DOWNLOAD_SOURCE needs s3:GetObject on the
  source, which must exist and be a zip holding the buildspec (or the project has an
  inline one); the buildspec's commands are "run" in their phases (logged as CodeBuild
  logs them) and a `docker push <registry>/<repository>:<tag>` to this account's ECR
  puts the image there (what the push would do), with the role's ECR push permissions.
- How a build ends is the test's: `POST /_emulator/codebuild-next-build` with
  {"status": "FAILED"|"FAULT"|"TIMED_OUT"|"STOPPED"|"SUCCEEDED", "phase": "BUILD",
  "seconds": 2.0, "lines": ["..."]} applies to the next build (once): it runs for
  `seconds`, prints `lines` as the output of the failing phase's last command, and ends
  with that status in that phase. Without it a build succeeds after DEFAULT_SECONDS.
- BatchGetBuilds answers as AWS's `Build` does: buildStatus, currentPhase, phases with
  phaseStatus, durations and `contexts` (statusCode, message) for a failed phase, logs
  (groupName, streamName, deepLink, cloudWatchLogsArn), environment with the overrides.
- StopBuild stops a running build at the end of its current phase (STOPPED).

References: CodeBuild API reference (StartBuild, BatchGetBuilds, Build, BuildPhase,
PhaseContext, LogsLocation), https://docs.aws.amazon.com/codebuild/latest/APIReference/;
build phase transitions, https://docs.aws.amazon.com/codebuild/latest/userguide/view-build-details.html#view-build-details-phases;
the service role's permissions, https://docs.aws.amazon.com/codebuild/latest/userguide/setting-up-service-role.html;
the log stream (LogsConfig StreamName is the stream name's prefix; the build's own part is its
id's UUID), https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-codebuild-project-cloudwatchlogsconfig.html;
pushing to ECR, https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-push.html
(ecr:GetAuthorizationToken on *, then BatchCheckLayerAvailability, InitiateLayerUpload,
UploadLayerPart, CompleteLayerUpload and PutImage on the repository).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import re
import shlex
import threading
import time
import uuid
import zipfile
from datetime import datetime, timezone

import yaml
from moto.codebuild.exceptions import InvalidInputException, ResourceNotFoundException
from moto.codebuild.models import CodeBuildBackend, codebuild_backends
from moto.codebuild.responses import CodeBuildResponse
from moto.core.common_models import CloudFormationModel
from moto.core.responses import ActionResult
from moto.ecr.models import ecr_backends
from moto.iam.models import iam_backends
from moto.logs.models import logs_backends
from moto.s3.models import s3_backends

import iam_eval
import moto_state

LOCK = threading.Lock()
DEFAULT_SECONDS = 2.0            # how long a build runs unless a test says otherwise
IDEMPOTENCY_SECONDS = 300        # "valid for 5 minutes" (StartBuild, idempotencyToken)
FINAL = ("SUCCEEDED", "FAILED", "FAULT", "TIMED_OUT", "STOPPED")
# The phases a build goes through after SUBMITTED and QUEUED, in order (the build's time
# is shared among them).
WORKING = ["PROVISIONING", "DOWNLOAD_SOURCE", "INSTALL", "PRE_BUILD", "BUILD",
           "POST_BUILD", "UPLOAD_ARTIFACTS", "FINALIZING"]
# Buildspec phase -> build phase.
BUILDSPEC_PHASES = {"install": "INSTALL", "pre_build": "PRE_BUILD", "build": "BUILD",
                    "post_build": "POST_BUILD"}
ECR_PUSH_ACTIONS = ["ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload",
                    "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage"]

NEXT: dict = {}                  # "build": the next build's ending (set_next)
BUILDS: dict[str, "Build"] = {}  # build id -> build
TOKENS: dict = {}                # (account, region, project, token) -> (build id, time, params)
GENERATION = {"n": 0}            # bumped by reset(): running builds stop writing


def reset() -> None:
    with LOCK:
        NEXT.clear()
        BUILDS.clear()
        TOKENS.clear()
        GENERATION["n"] += 1


def set_next(body: dict) -> dict:
    """Validates and stores how the next build ends (POST /_emulator/codebuild-next-build)."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    status = body.get("status", "SUCCEEDED")
    if status not in FINAL:
        raise ValueError(f"status must be one of {', '.join(FINAL)}")
    phase = body.get("phase", "BUILD")
    if phase not in WORKING:
        raise ValueError(f"phase must be one of {', '.join(WORKING)}")
    seconds = float(body.get("seconds", DEFAULT_SECONDS))
    if not 0 <= seconds <= 3600:
        raise ValueError("seconds must be between 0 and 3600")
    lines = body.get("lines", [])
    if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
        raise ValueError('lines must be a list of strings')
    ending = {"status": status, "phase": phase, "seconds": seconds, "lines": lines}
    with LOCK:
        NEXT["build"] = ending
    return ending


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _log_time() -> str:
    """CodeBuild's agent prefix: `[Container] 2026/12/01 18:00:00.123456 `."""
    return "[Container] " + _now().strftime("%Y/%m/%d %H:%M:%S.%f") + " "


# --------------------------------------------------------------------------------------
# AWS::CodeBuild::Project through CloudFormation
# --------------------------------------------------------------------------------------


def _api_shape(value):
    """CloudFormation's PascalCase property names as the API's camelCase ones."""
    special = {"BuildSpec": "buildspec", "S3Logs": "s3Logs"}
    if isinstance(value, dict):
        return {special.get(k, k[:1].lower() + k[1:]): _api_shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_api_shape(v) for v in value]
    return value


def _role_arn(account: str, role: str) -> str:
    if role.startswith("arn:"):
        return role
    try:
        return iam_backends[account]["aws"].get_role(role).arn
    except Exception:  # noqa: BLE001 - an unknown role fails at the build, as on AWS
        return f"arn:aws:iam::{account}:role/{role}"


class Project(CloudFormationModel):
    """AWS::CodeBuild::Project, created in moto's CodeBuild (Ref = name, GetAtt Arn)."""

    __module__ = "moto.codebuild.emulator_project"  # moto's model registry keys on it

    def __init__(self, name: str, account_id: str, region: str):
        self.name, self.account_id, self.region = name, account_id, region
        self.arn = f"arn:aws:codebuild:{region}:{account_id}:project/{name}"

    @property
    def physical_resource_id(self):
        return self.name

    @staticmethod
    def cloudformation_type():
        return "AWS::CodeBuild::Project"

    @staticmethod
    def cloudformation_name_type():
        return "Name"

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr == "Arn"

    def get_cfn_attribute(self, attr):
        if attr == "Arn":
            return self.arn
        raise KeyError(attr)

    @classmethod
    def _create(cls, name, props, account_id, region_name):
        api = _api_shape(props)
        for required in ("source", "artifacts", "environment", "serviceRole"):
            if not api.get(required):
                raise ValueError(f"AWS::CodeBuild::Project {name}: {required[:1].upper()}"
                                 f"{required[1:]} is required")
        backend = codebuild_backends[account_id][region_name]
        backend.create_project(
            project_name=name, description=api.get("description"),
            project_source=api["source"], artifacts=api["artifacts"],
            environment=api["environment"],
            service_role=_role_arn(account_id, api["serviceRole"]), tags=api.get("tags"),
            cache=api.get("cache"), timeout=int(api.get("timeoutInMinutes") or 60),
            queued_timeout=int(api.get("queuedTimeoutInMinutes") or 480),
            source_version=api.get("sourceVersion"), logs_config=api.get("logsConfig"),
            vpc_config=api.get("vpcConfig"))
        return cls(name, account_id, region_name)

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        props = cloudformation_json.get("Properties") or {}
        return cls._create(props.get("Name") or resource_name, props, account_id,
                           region_name)

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        props = cloudformation_json.get("Properties") or {}
        name = props.get("Name") or original_resource.name
        codebuild_backends[account_id][region_name].codebuild_projects.pop(
            original_resource.name, None)
        history = codebuild_backends[account_id][region_name].build_history.get(
            original_resource.name, [])
        project = cls._create(name, props, account_id, region_name)
        codebuild_backends[account_id][region_name].build_history[name] = history
        return project

    def delete(self, account_id, region_name):
        codebuild_backends[account_id][region_name].delete_project(self.name)


# --------------------------------------------------------------------------------------
# Builds
# --------------------------------------------------------------------------------------


class PhaseFailed(Exception):
    """A phase ends unsuccessfully: (status code, message) of its context, log lines."""

    def __init__(self, code: str, message: str, lines: list[str] | None = None,
                 status: str = "FAILED"):
        super().__init__(message)
        self.code, self.message, self.lines, self.status = code, message, lines or [], status


class Build:
    """One build: its `Build` document and the thread that moves it through its phases."""

    def __init__(self, backend: CodeBuildBackend, project, params: dict, ending: dict):
        self.account, self.region = backend.account_id, backend.region_name
        self.project = project.project_metadata
        self.uuid = str(uuid.uuid4())
        self.id = f"{self.project['name']}:{self.uuid}"
        self.arn = f"arn:aws:codebuild:{self.region}:{self.account}:build/{self.id}"
        self.params, self.ending = params, ending
        self.generation = GENERATION["n"]
        self.log_target: tuple[str, str] | None = None
        self.stop_requested = False
        self.commands: dict[str, list[str]] = {}
        self.env: dict[str, str] = {}
        self.source_bytes = b""
        started = _now()
        env_vars = [dict(v) for v in self.project["environment"].get("environmentVariables")
                    or []]
        for override in params["environment_variables"]:
            env_vars = [v for v in env_vars if v.get("name") != override["name"]]
            env_vars.append(dict(override))
        environment = copy.deepcopy(self.project["environment"])
        environment["environmentVariables"] = env_vars
        source = dict(self.project["source"])
        source["type"], source["location"] = params["source_type"], params["source_location"]
        if params.get("source_version"):
            source["sourceVersion"] = params["source_version"]
        number = len(backend.build_history.get(self.project["name"], [])) + 1
        self.doc = {
            "id": self.id, "arn": self.arn, "buildNumber": number, "startTime": started,
            "currentPhase": "SUBMITTED", "buildStatus": "IN_PROGRESS",
            "projectName": self.project["name"],
            **({"sourceVersion": params["source_version"]} if params.get("source_version")
               else {}),
            "phases": [{"phaseType": "SUBMITTED", "phaseStatus": "SUCCEEDED",
                        "startTime": started, "endTime": started, "durationInSeconds": 0},
                       {"phaseType": "QUEUED", "startTime": started}],
            "source": source, "secondarySources": [], "secondarySourceVersions": [],
            "artifacts": {"location": ""}, "cache": {"type": "NO_CACHE"},
            "environment": environment, "serviceRole": self.project["serviceRole"],
            "logs": {"deepLink": "", "cloudWatchLogs": {"status": "ENABLED"},
                     "s3Logs": {"status": "DISABLED", "encryptionDisabled": False}},
            "timeoutInMinutes": self.project.get("timeoutInMinutes") or 60,
            "queuedTimeoutInMinutes": self.project.get("queuedTimeoutInMinutes") or 480,
            "buildComplete": False, "initiator": params.get("initiator", "emulator"),
            "encryptionKey": self.project.get("encryptionKey"),
        }

    # --- the document -----------------------------------------------------------------

    def snapshot(self) -> dict:
        with LOCK:
            return copy.deepcopy(self.doc)

    def _begin(self, phase: str) -> None:
        with LOCK:
            last = self.doc["phases"][-1]
            if "phaseStatus" not in last:   # QUEUED ends when PROVISIONING begins
                self._close(last, "SUCCEEDED")
            self.doc["phases"].append({"phaseType": phase, "startTime": _now()})
            self.doc["currentPhase"] = phase

    @staticmethod
    def _close(phase: dict, status: str, context: tuple[str, str] | None = None) -> None:
        end = _now()
        phase["phaseStatus"], phase["endTime"] = status, end
        phase["durationInSeconds"] = int((end - phase["startTime"]).total_seconds())
        phase["contexts"] = [{"statusCode": context[0], "message": context[1]}] if context \
            else [{"statusCode": "", "message": ""}]

    def _end_phase(self, status: str, context: tuple[str, str] | None = None) -> None:
        with LOCK:
            self._close(self.doc["phases"][-1], status, context)

    def _finish(self, status: str) -> None:
        with LOCK:
            end = _now()
            self.doc["phases"].append({"phaseType": "COMPLETED", "startTime": end})
            self.doc.update(currentPhase="COMPLETED", buildStatus=status, endTime=end,
                            buildComplete=True)

    def _log(self, *lines: str, agent: bool = True) -> None:
        if self.log_target is None or self.generation != GENERATION["n"]:
            return
        now = int(time.time() * 1000)
        events = [{"timestamp": now, "message": (_log_time() + line) if agent else line}
                  for line in lines]
        try:
            logs_backends[self.account][self.region].put_log_events(*self.log_target, events)
        except Exception:  # noqa: BLE001 - a group deleted under a running build
            pass

    # --- the run ----------------------------------------------------------------------

    def run(self) -> None:
        per_phase = self.ending["seconds"] / len(WORKING)
        status = "SUCCEEDED"
        for phase in WORKING:
            if self.generation != GENERATION["n"]:
                return  # the emulator was reset
            self._begin(phase)
            time.sleep(per_phase)
            if self.stop_requested:  # StopBuild: the running phase and the build stop
                self._log(f"Phase complete: {phase} State: STOPPED")
                self._end_phase("STOPPED", ("BUILD_STOPPED", "Build was stopped by request"))
                status = "STOPPED"
                break
            try:
                self._run_phase(phase)
            except PhaseFailed as failure:
                self._log(*failure.lines, agent=False)
                self._log(f"Phase complete: {phase} State: {failure.status}",
                          f"Phase context status code: {failure.code} Message: "
                          f"{failure.message}")
                self._end_phase(failure.status, (failure.code, failure.message))
                status = failure.status
                break
            self._log(f"Phase complete: {phase} State: SUCCEEDED",
                      "Phase context status code:  Message: ")
            self._end_phase("SUCCEEDED")
        self._finish(status)

    def _run_phase(self, phase: str) -> None:
        getattr(self, f"_phase_{phase.lower()}", lambda: None)()
        commands = self.commands.get(phase, [])
        for command in commands:
            self._log(f"Running command {command}")
        if self.ending["status"] != "SUCCEEDED" and self.ending["phase"] == phase:
            command = commands[-1] if commands else None
            lines = list(self.ending["lines"])
            status = self.ending["status"]
            if command and status == "FAILED":
                lines.append(f"{_log_time()}Command did not exit successfully {command} "
                             "exit status 1")
                raise PhaseFailed("COMMAND_EXECUTION_ERROR", "Error while executing command: "
                                  f"{command}. Reason: exit status 1", lines)
            messages = {"FAULT": ("INTERNAL_ERROR", "Internal service error"),
                        "TIMED_OUT": ("BUILD_TIMED_OUT", "Build has timed out. "),
                        "STOPPED": ("BUILD_STOPPED", "Build was stopped by request"),
                        "FAILED": ("CLIENT_ERROR", "The phase failed (emulator hook)")}
            code, message = messages[status]
            raise PhaseFailed(code, message, lines, status)
        for command in commands:
            reference = self._pushed_reference(command)
            if reference:
                self._docker_push(reference)

    # --- phases -----------------------------------------------------------------------

    def _role(self):
        """The service role's statements; PhaseFailed when CodeBuild cannot assume it."""
        role = self.doc["serviceRole"]
        try:
            _, policies = moto_state.role_policies(self.account, self.region, role)
            return iam_eval.parse_policies(policies)
        except (moto_state.RoleError, ValueError) as e:
            raise PhaseFailed("CLIENT_ERROR", f"CodeBuild is not authorized to perform: "
                              f"sts:AssumeRole on {role} ({e})") from None

    def _allowed(self, statements, action: str, resource: str) -> tuple[bool, str]:
        decision = iam_eval.evaluate(statements, action, resource, {})
        return decision.allowed, decision.reason

    def _denied_message(self, action: str, resource: str) -> str:
        role_name = self.doc["serviceRole"].rsplit("/", 1)[-1]
        return (f"User: arn:aws:sts::{self.account}:assumed-role/{role_name}/"
                f"AWSCodeBuild-{self.uuid} is not authorized to perform: {action} on "
                f"resource: {resource} because no identity-based policy allows the "
                f"{action} action")

    def _phase_provisioning(self) -> None:
        """The log stream is created with the service role: denied, the build fails here
        with CodeBuild's ACCESS_DENIED message and writes no log."""
        statements = self._role()
        config = (self.project.get("logsConfig") or {}).get("cloudWatchLogs") or {}
        if config.get("status", "ENABLED") == "DISABLED":
            return
        group = config.get("groupName") or f"/aws/codebuild/{self.project['name']}"
        stream = f"{config['streamName']}/{self.uuid}" if config.get("streamName") \
            else self.uuid
        logs = logs_backends[self.account][self.region]
        group_arn = f"arn:aws:logs:{self.region}:{self.account}:log-group:{group}"
        needed = [("logs:CreateLogStream", f"{group_arn}:log-stream:{stream}"),
                  ("logs:PutLogEvents", f"{group_arn}:log-stream:{stream}")]
        if group not in logs.groups:
            needed.insert(0, ("logs:CreateLogGroup", f"{group_arn}:*"))
        for action, resource in needed:
            allowed, _ = self._allowed(statements, action, resource)
            if not allowed:
                raise PhaseFailed("ACCESS_DENIED", f"Service role {self.doc['serviceRole']} "
                                  "does not allow AWS CodeBuild to create Amazon CloudWatch "
                                  f"Logs log streams for build {self.arn}. Error message: "
                                  f"{self._denied_message(action, resource)}")
        logs.ensure_log_group(group)
        logs.create_log_stream(group, stream)
        self.log_target = (group, stream)
        with LOCK:
            self.doc["logs"].update(
                groupName=group, streamName=stream,
                deepLink=f"https://console.aws.amazon.com/cloudwatch/home?region="
                         f"{self.region}#logsV2:log-groups/log-group/{group}/log-events/"
                         f"{stream}",
                cloudWatchLogsArn=f"{group_arn}:log-stream:{stream}")
            self.doc["logs"]["cloudWatchLogs"].update(groupName=group, streamName=stream)
        self._log("Running on CodeBuild On-demand", "Waiting for agent ping",
                  "Waiting for DOWNLOAD_SOURCE")

    def _phase_download_source(self) -> None:
        """An S3 source is `bucket/key` of a zip the service role may read."""
        source = self.doc["source"]
        src_dir = f"/codebuild/output/src{abs(hash(self.uuid)) % 10**9}/src"
        self.env.update(self._base_env(src_dir))
        if source["type"] == "S3":
            bucket, _, key = source["location"].partition("/")
            arn = f"arn:aws:s3:::{bucket}/{key}"
            # An S3 sourceVersion is the object's version id: that version is read
            # (s3:GetObjectVersion), not whatever the key holds now.
            version = self.doc.get("sourceVersion")
            where = f"for primary source and source version {arn}" + (
                f" (version {version})" if version else "")
            action = "s3:GetObjectVersion" if version else "s3:GetObject"
            allowed, _ = self._allowed(self._role(), action, arn)
            if not allowed:
                raise PhaseFailed("CLIENT_ERROR", f"AccessDenied: Access Denied {where}")
            try:
                obj = s3_backends[self.account]["aws"].get_object(bucket, key,
                                                                  version_id=version)
            except Exception:  # noqa: BLE001 - moto raises MissingBucket / MissingKey
                obj = None
            if obj is None:
                missing = ("NoSuchVersion: The specified version does not exist."
                           if version else "NoSuchKey: The specified key does not exist.")
                raise PhaseFailed("CLIENT_ERROR", f"{missing} {where}")
            self.source_bytes = bytes(obj.value)
            if not zipfile.is_zipfile(io.BytesIO(self.source_bytes)):
                raise PhaseFailed("CLIENT_ERROR", f"zip: not a valid zip file {where}")
        self._log(f"CODEBUILD_SRC_DIR={src_dir}")
        self._read_buildspec(src_dir)
        self._log("Processing environment variables", f"Moving to directory {src_dir}")

    def _base_env(self, src_dir: str) -> dict:
        env = {"AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region,
               "CODEBUILD_BUILD_ID": self.id, "CODEBUILD_BUILD_ARN": self.arn,
               "CODEBUILD_BUILD_NUMBER": str(self.doc["buildNumber"]),
               "CODEBUILD_SRC_DIR": src_dir, "CODEBUILD_INITIATOR": self.doc["initiator"]}
        for var in self.doc["environment"].get("environmentVariables") or []:
            # Parameter Store and Secrets Manager values are not looked up here.
            if var.get("type", "PLAINTEXT") == "PLAINTEXT":
                env[var["name"]] = str(var.get("value", ""))
        return env

    def _read_buildspec(self, src_dir: str) -> None:
        """The project's inline buildspec, else buildspec.yml at the root of the zip."""
        text = self.doc["source"].get("buildspec") or ""
        location = "the project's inline buildspec"
        if not text or "\n" not in text and text.endswith((".yml", ".yaml")):
            name = text or "buildspec.yml"
            location = f"{src_dir}/{name}"
            try:
                with zipfile.ZipFile(io.BytesIO(self.source_bytes)) as archive:
                    text = archive.read(name).decode()
            except (KeyError, zipfile.BadZipFile):
                raise PhaseFailed("YAML_FILE_ERROR", "YAML file does not exist") from None
        self._log(f"YAML location is {location}")
        try:
            spec = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise PhaseFailed("YAML_FILE_ERROR", f"Error parsing YAML: {e}") from None
        for name, value in ((spec.get("env") or {}).get("variables") or {}).items():
            self.env.setdefault(str(name), str(value))
        for name, phase in BUILDSPEC_PHASES.items():
            commands = ((spec.get("phases") or {}).get(name) or {}).get("commands") or []
            self.commands[phase] = [str(c) for c in commands]

    def _expand(self, command: str) -> str:
        """$VAR and ${VAR} from the build's environment, as the shell would (unset:
        empty)."""
        return re.sub(r"\$\{(\w+)\}|\$(\w+)",
                      lambda m: self.env.get(m.group(1) or m.group(2), ""), command)

    def _pushed_reference(self, command: str) -> str | None:
        """The image of a `docker push <image>` command (after `;`/`&&`, quoted or not),
        with the build's variables expanded; None for any other command."""
        for part in re.split(r";|&&", command):
            try:
                words = shlex.split(self._expand(part))
            except ValueError:  # unbalanced quotes: the shell would fail, nothing pushed
                continue
            if len(words) >= 3 and words[:2] == ["docker", "push"]:
                return words[-1]
        return None

    def _docker_push(self, reference: str) -> None:
        """What `docker push` to this account's ECR does: the image (a manifest whose
        digests follow from the source and the tag) under the tag, if the service role
        may push to the repository."""
        registry = f"{self.account}.dkr.ecr.{self.region}.amazonaws.com/"
        if not reference.startswith(registry) or ":" not in reference[len(registry):]:
            return  # another registry, or no tag: nothing the emulator keeps
        repository, tag = reference[len(registry):].rsplit(":", 1)
        ecr = ecr_backends[self.account][self.region]
        self._log(f"The push refers to repository [{registry}{repository}]", agent=False)
        if repository not in ecr.repositories:
            raise PhaseFailed(
                "COMMAND_EXECUTION_ERROR", f"Error while executing command: docker push "
                f"{reference}. Reason: exit status 1",
                [f"name unknown: The repository with name '{repository}' does not exist in "
                 f"the registry with id '{self.account}'"])
        repo_arn = f"arn:aws:ecr:{self.region}:{self.account}:repository/{repository}"
        statements = self._role()
        for action, resource in [("ecr:GetAuthorizationToken", "*")] + [
                (a, repo_arn) for a in ECR_PUSH_ACTIONS]:
            allowed, _ = self._allowed(statements, action, resource)
            if not allowed:
                raise PhaseFailed(
                    "COMMAND_EXECUTION_ERROR", f"Error while executing command: docker push "
                    f"{reference}. Reason: exit status 1",
                    [f"denied: {self._denied_message(action, resource)}"])
        layer = hashlib.sha256(self.source_bytes + tag.encode()).hexdigest()
        config = hashlib.sha256(b"config" + layer.encode()).hexdigest()
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "size": 7023, "digest": f"sha256:{config}"},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "size": 32654, "digest": f"sha256:{layer}"}]})
        try:
            image = ecr.put_image(repository, manifest, tag,
                                  "application/vnd.docker.distribution.manifest.v2+json")
        except Exception as e:  # noqa: BLE001 - e.g. an immutable tag that exists
            raise PhaseFailed("COMMAND_EXECUTION_ERROR", "Error while executing command: "
                              f"docker push {reference}. Reason: exit status 1",
                              [f"tag invalid: {e}"]) from None
        self._log(f"{tag}: digest: {image.image_digest} size: 529", agent=False)


# --------------------------------------------------------------------------------------
# The API
# --------------------------------------------------------------------------------------


def start_build_response(self: CodeBuildResponse):
    """StartBuild with its overrides and idempotency token (moto ignored them)."""
    name = self._get_param("projectName") or ""
    backend = self.codebuild_backend
    project = backend.codebuild_projects.get(name.rsplit("/", 1)[-1])
    if project is None:
        raise ResourceNotFoundException(
            f"Project cannot be found: arn:aws:codebuild:{self.region}:{self.current_account}"
            f":project/{name}")
    params = {
        "source_type": self._get_param("sourceTypeOverride")
        or project.project_metadata["source"].get("type"),
        "source_location": self._get_param("sourceLocationOverride")
        or project.project_metadata["source"].get("location", ""),
        "environment_variables": [
            {"name": v["name"], "value": v.get("value", ""), "type": v.get("type", "PLAINTEXT")}
            for v in self._get_param("environmentVariablesOverride") or []],
        # "If sourceVersion is specified at the project level, then this sourceVersion (at
        # the build level) takes precedence" (StartBuild); for S3, an object version id.
        "source_version": self._get_param("sourceVersion")
        or project.project_metadata.get("sourceVersion"),
    }
    if params["source_type"] == "S3":
        bucket, _, key = params["source_location"].partition("/")
        if not bucket or not key:
            raise InvalidInputException("Invalid source location: an S3 source location "
                                        "must be <bucket>/<key>")
    token = self._get_param("idempotencyToken")
    with LOCK:
        if token:
            key = (backend.account_id, backend.region_name, project.project_metadata["name"],
                   token)
            seen = TOKENS.get(key)
            if seen and time.time() - seen[1] < IDEMPOTENCY_SECONDS:
                if seen[2] != params:
                    raise InvalidInputException("Idempotency token was used with different "
                                                "parameters")
                return ActionResult({"build": copy.deepcopy(BUILDS[seen[0]].doc)})
        ending = NEXT.pop("build", None) or {"status": "SUCCEEDED", "phase": "BUILD",
                                             "seconds": DEFAULT_SECONDS, "lines": []}
        build = Build(backend, project, params, ending)
        BUILDS[build.id] = build
        if token:
            TOKENS[key] = (build.id, time.time(), params)
        backend.build_history.setdefault(project.project_metadata["name"], []).append(build.id)
        doc = copy.deepcopy(build.doc)
    threading.Thread(target=build.run, daemon=True, name=f"codebuild {build.id}").start()
    return ActionResult({"build": doc})


ORIGINAL: dict = {}


def batch_get_builds(self: CodeBuildBackend, ids: list[str]) -> list[dict]:
    """Builds started here as they are now; others (none in practice) as moto has them."""
    ours = [BUILDS[i].snapshot() for i in ids if i in BUILDS]
    others = [i for i in ids if i not in BUILDS]
    return ours + (ORIGINAL["batch_get_builds"](self, others) if others else [])


def stop_build(self: CodeBuildBackend, build_id: str):
    """StopBuild of a running build: it stops at the end of its current phase (moto's
    stop_build only knew its own build records)."""
    build = BUILDS.get(build_id)
    if build is None:
        return ORIGINAL["stop_build"](self, build_id)
    build.stop_requested = True
    return build.snapshot()


def batch_get_builds_response(self: CodeBuildResponse):
    """BatchGetBuilds lists unknown ids in buildsNotFound, as AWS does."""
    ids = self._get_param("ids") or []
    for build_id in ids:
        if ":" not in build_id:
            raise InvalidInputException("Invalid build ID provided")
    found = self.codebuild_backend.batch_get_builds(ids)
    known = {b["id"] for b in found}
    return ActionResult({"builds": found,
                         "buildsNotFound": [i for i in ids if i not in known]})


def _generated_name(original):
    """Gap: moto generates `<stack>-<LogicalId>-<suffix>` for an ECR repository without a
    RepositoryName, which ECR itself then refuses (repository names are lower case:
    `(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*`); CloudFormation
    generates a lower-case name for it."""
    def generate_resource_name(resource_type: str, stack_name: str, logical_id: str) -> str:
        name = original(resource_type, stack_name, logical_id)
        return name.lower() if resource_type == "AWS::ECR::Repository" else name
    return generate_resource_name


def install() -> None:
    """Patches moto's CodeBuild (once, at server start)."""
    ORIGINAL["batch_get_builds"] = CodeBuildBackend.batch_get_builds
    CodeBuildBackend.batch_get_builds = batch_get_builds
    ORIGINAL["stop_build"] = CodeBuildBackend.stop_build
    CodeBuildBackend.stop_build = stop_build
    CodeBuildResponse.start_build = start_build_response
    CodeBuildResponse.batch_get_builds = batch_get_builds_response
    # moto caches its list of CloudFormation models (lru_cache): make it see Project.
    from moto.cloudformation import parsing
    parsing.generate_resource_name = _generated_name(parsing.generate_resource_name)
    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()
    assert parsing.get_model_map()["AWS::CodeBuild::Project"] is Project
