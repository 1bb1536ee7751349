"""The synthesized CloudFormation template, read back, and a small evaluator of the
intrinsic functions it uses.

Only what CloudFormation itself would supply is filled in: physical ids of resources
(secret ARNs from the emulator, the bucket name), pseudo parameters, and attributes of
resources that are local processes here (the database endpoint). Anything the template
references that the harness did not provide is an error, never a silent blank.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any


class Unresolved(KeyError):
    pass


@dataclass
class Context:
    """What CloudFormation would know when it evaluates the template."""

    region: str
    stack_name: str
    stack_id: str
    account: str = "123456789012"
    refs: dict[str, str] = field(default_factory=dict)
    getatts: dict[tuple[str, str], Any] = field(default_factory=dict)
    # The template, for physical ids CloudFormation derives from a resource's own
    # properties (a log group's ARN from its name, ...): see `derived`.
    template: "Template | None" = None

    def derived(self, logical: str, attr: str | None) -> Any:
        """The Ref (attr None) or attribute CloudFormation gives a resource whose
        physical id follows from its properties, the same way AWS builds it; anything
        else is Unresolved, so the harness never invents an id it did not create."""
        if self.template is None or logical not in self.template.resources:
            raise Unresolved(f"{logical}: not in the template")
        res = self.template.resources[logical]
        kind, props = res["Type"], res.get("Properties", {})
        region, account = self.region, self.account

        def name_of(key: str) -> str:
            # Without an explicit name CloudFormation generates `<stack>-<logical>-<random>`.
            if key not in props:
                return f"{self.stack_name}-{logical}-E2E{zlib.crc32(logical.encode()):08x}"[:64]
            return str(self.resolve(props[key]))

        if kind == "AWS::Logs::LogGroup":
            name = name_of("LogGroupName")
            return name if attr is None else {
                "Arn": f"arn:aws:logs:{region}:{account}:log-group:{name}:*"}[attr]
        if kind == "AWS::Lambda::Function":
            name = name_of("FunctionName")
            return name if attr is None else {
                "Arn": f"arn:aws:lambda:{region}:{account}:function:{name}"}[attr]
        if kind == "AWS::ECR::Repository":
            # Generated names are lower case: ECR repository names must be.
            name = name_of("RepositoryName").lower()
            return name if attr is None else {
                "Arn": f"arn:aws:ecr:{region}:{account}:repository/{name}",
                "RepositoryUri": f"{account}.dkr.ecr.{region}.amazonaws.com/{name}"}[attr]
        if kind == "AWS::CodeBuild::Project":
            name = name_of("Name")
            return name if attr is None else {
                "Arn": f"arn:aws:codebuild:{region}:{account}:project/{name}"}[attr]
        if kind == "AWS::ECS::TaskDefinition" and attr is None:
            return f"arn:aws:ecs:{region}:{account}:task-definition/{name_of('Family')}:1"
        raise Unresolved(f"{'Ref' if attr is None else 'Fn::GetAtt'} {logical}"
                         f"{'' if attr is None else '.' + attr} ({kind}): the harness has no value for it")

    def ref(self, name: str) -> str:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": self.stack_id,
            "AWS::AccountId": self.account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name not in self.refs:
            return self.derived(name, None)
        return self.refs[name]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::Join":
                sep, parts = arg
                return sep.join(str(self.resolve(p)) for p in self.resolve(parts))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(sep)
            if key == "Fn::GetAtt":
                res, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                if (res, attr) not in self.getatts:
                    return self.derived(res, attr)
                return self.getatts[(res, attr)]
            if key == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else arg
                extra = {k: self.resolve(v) for k, v in extra.items()}
                return _sub(text, extra, self)
            if key.startswith("Fn::"):
                raise Unresolved(f"{key}: not evaluated by the harness")
        return {k: self.resolve(v) for k, v in value.items()}


def _sub(text: str, extra: dict, ctx: Context) -> str:
    out, i = [], 0
    while i < len(text):
        start = text.find("${", i)
        if start < 0:
            out.append(text[i:])
            break
        end = text.index("}", start)
        out.append(text[i:start])
        name = text[start + 2:end]
        if name.startswith("!"):
            out.append("${" + name[1:] + "}")
        elif name in extra:
            out.append(str(extra[name]))
        elif "." in name:
            res, attr = name.split(".", 1)
            out.append(str(ctx.resolve({"Fn::GetAtt": [res, attr]})))
        else:
            out.append(str(ctx.ref(name)))
        i = end + 1
    return "".join(out)


class Template:
    def __init__(self, body: dict):
        self.body = body
        self.resources: dict[str, dict] = body["Resources"]

    @classmethod
    def from_json(cls, text: str) -> "Template":
        return cls(json.loads(text))

    def of_type(self, type_: str) -> dict[str, dict]:
        return {k: v for k, v in self.resources.items() if v["Type"] == type_}

    def one_of_type(self, type_: str) -> tuple[str, dict]:
        found = self.of_type(type_)
        assert len(found) == 1, f"expected one {type_} in the template, found {sorted(found)}"
        return next(iter(found.items()))

    def container(self, name: str) -> tuple[str, dict]:
        """(task definition logical id, container definition) of the container `name`."""
        for logical, res in self.of_type("AWS::ECS::TaskDefinition").items():
            for c in res["Properties"]["ContainerDefinitions"]:
                if c["Name"] == name:
                    return logical, c
        raise KeyError(f"no container named {name!r} in any task definition")

    def container_names(self) -> list[str]:
        return [c["Name"] for res in self.of_type("AWS::ECS::TaskDefinition").values()
                for c in res["Properties"]["ContainerDefinitions"]]
