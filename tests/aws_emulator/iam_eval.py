"""Identity-based IAM policy evaluation, the way AWS documents it. Pure Python, no moto.

moto's own evaluator (moto/iam/access_control.py) fills in no request context besides
sts:ExternalId and treats an Allow whose condition fails as a Deny (local-aws.md §9), so
the emulator decides with this module instead. What it implements, and where AWS says so:

- Decision order: an applicable Deny wins over any Allow; without an applicable Allow the
  request is implicitly denied.
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic_AccessPolicyLanguage_Interplay.html
- Action / NotAction: `service:Action` patterns with `*` and `?`, case-insensitive.
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notaction.html
- Resource / NotResource: ARN patterns, case-sensitive; `*` and `?` match within one
  colon-separated segment, except that a `*` which is the last character of a segment
  "can expand to match beyond the colon boundaries".
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html
- Condition: every operator of a block and every key of an operator must hold (AND); the
  values listed for one key are alternatives (OR); negated operators (StringNotEquals,
  ArnNotLike, ...) hold when the request value matches none of them.
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-logic-multiple-context-keys-or-values.html
- A key missing from the request context makes a condition false, except that a negated
  operator is then true, `...IfExists` is then true, and `Null` tests presence itself.
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
- ForAnyValue / ForAllValues over multi-valued keys (ForAnyValue is false and
  ForAllValues true for a missing or empty key).
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html

Not implemented (a policy using them is refused by parse_policies, so a gap is loud):
Date* and Binary* operators, policy variables (`${aws:username}`), Principal /
NotPrincipal (identity-based policies have none), permissions boundaries, SCPs, session
and resource-based policies.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field

__all__ = ["PolicyError", "Statement", "Decision", "parse_policies", "evaluate",
           "action_matches", "resource_matches", "condition_holds"]


class PolicyError(ValueError):
    """A policy document this evaluator cannot (or AWS would not) accept."""


# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------

STRING_OPS = {"StringEquals", "StringNotEquals", "StringEqualsIgnoreCase",
              "StringNotEqualsIgnoreCase", "StringLike", "StringNotLike"}
NUMERIC_OPS = {"NumericEquals", "NumericNotEquals", "NumericLessThan",
               "NumericLessThanEquals", "NumericGreaterThan", "NumericGreaterThanEquals"}
ARN_OPS = {"ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike"}
IP_OPS = {"IpAddress", "NotIpAddress"}
OTHER_OPS = {"Bool", "Null"}
BASE_OPS = STRING_OPS | NUMERIC_OPS | ARN_OPS | IP_OPS | OTHER_OPS
# Operators that hold when the request value matches none of the policy values, and
# (per the condition operators page) when the key is missing from the request.
NEGATED_OPS = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike",
               "NumericNotEquals", "ArnNotEquals", "ArnNotLike", "NotIpAddress"}


@dataclass(frozen=True)
class Condition:
    operator: str          # as written, e.g. "ForAnyValue:StringLikeIfExists"
    base: str              # e.g. "StringLike"
    qualifier: str | None  # "ForAnyValue", "ForAllValues" or None
    if_exists: bool
    key: str               # as written
    values: tuple[str, ...]

    def describe(self) -> str:
        shown = self.values[0] if len(self.values) == 1 else list(self.values)
        return f"{self.operator} {self.key} {json.dumps(shown)}"


@dataclass(frozen=True)
class Statement:
    policy: str
    index: int
    sid: str | None
    effect: str                       # "Allow" | "Deny"
    actions: tuple[str, ...] | None   # Action (None when NotAction is used)
    not_actions: tuple[str, ...] | None
    resources: tuple[str, ...] | None
    not_resources: tuple[str, ...] | None
    conditions: tuple[Condition, ...] = ()

    @property
    def label(self) -> str:
        name = f"'{self.sid}'" if self.sid else f"#{self.index + 1}"
        return f"statement {name} of policy {self.policy}"


def _as_list(value, what: str, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) for v in items):
        raise PolicyError(f"{where}: {what} must be a string or a non-empty list of strings")
    return tuple(items)


def _value_text(value) -> str:
    """Policy values are strings to IAM; JSON booleans and numbers are compared as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise PolicyError(f"condition value {value!r} is not a string, number or boolean")


def _parse_operator(operator: str, where: str) -> tuple[str, str | None, bool]:
    qualifier = None
    name = operator
    if ":" in name:
        prefix, name = name.split(":", 1)
        if prefix.lower() == "foranyvalue":
            qualifier = "ForAnyValue"
        elif prefix.lower() == "forallvalues":
            qualifier = "ForAllValues"
        else:
            raise PolicyError(f"{where}: unknown set operator {prefix!r} in {operator!r}")
    if_exists = name.endswith("IfExists")
    base = name[: -len("IfExists")] if if_exists else name
    if base not in BASE_OPS:
        raise PolicyError(f"{where}: condition operator {operator!r} is not supported by "
                          "the emulator's IAM evaluator (supported: "
                          f"{', '.join(sorted(BASE_OPS))}, with IfExists and "
                          "ForAnyValue:/ForAllValues:)")
    if base == "Null" and (if_exists or qualifier):
        raise PolicyError(f"{where}: {operator!r}: Null takes no IfExists or set operator")
    return base, qualifier, if_exists


def _parse_statement(raw, policy: str, index: int) -> Statement:
    where = f"policy {policy} statement #{index + 1}"
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: a statement must be an object")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyError(f"{where}: Effect must be Allow or Deny, not {effect!r}")
    if ("Action" in raw) == ("NotAction" in raw):
        raise PolicyError(f"{where}: exactly one of Action and NotAction is required")
    if ("Resource" in raw) == ("NotResource" in raw):
        raise PolicyError(f"{where}: exactly one of Resource and NotResource is required")
    if "Principal" in raw or "NotPrincipal" in raw:
        raise PolicyError(f"{where}: Principal belongs in resource-based policies; an "
                          "identity-based policy may not have it")
    patterns = raw.get("Resource", raw.get("NotResource"))
    for pattern in patterns if isinstance(patterns, list) else [patterns]:
        if isinstance(pattern, str) and "${" in pattern:
            raise PolicyError(f"{where}: policy variables ({pattern!r}) are not supported "
                              "by the emulator's IAM evaluator")
    conditions = []
    block = raw.get("Condition") or {}
    if not isinstance(block, dict):
        raise PolicyError(f"{where}: Condition must be an object")
    for operator, keys in block.items():
        base, qualifier, if_exists = _parse_operator(operator, where)
        if not isinstance(keys, dict) or not keys:
            raise PolicyError(f"{where}: {operator} must map condition keys to values")
        for key, values in keys.items():
            items = values if isinstance(values, list) else [values]
            if not items:
                raise PolicyError(f"{where}: {operator} {key} has no values")
            texts = tuple(_value_text(v) for v in items)
            if base == "Null" and any(t.lower() not in ("true", "false") for t in texts):
                raise PolicyError(f"{where}: Null takes true or false, not {list(texts)}")
            conditions.append(Condition(operator, base, qualifier, if_exists, key, texts))
    return Statement(
        policy=policy, index=index, sid=raw.get("Sid"), effect=effect,
        actions=_as_list(raw["Action"], "Action", where) if "Action" in raw else None,
        not_actions=(_as_list(raw["NotAction"], "NotAction", where)
                     if "NotAction" in raw else None),
        resources=(_as_list(raw["Resource"], "Resource", where)
                   if "Resource" in raw else None),
        not_resources=(_as_list(raw["NotResource"], "NotResource", where)
                       if "NotResource" in raw else None),
        conditions=tuple(conditions))


def parse_policies(policies) -> list[Statement]:
    """Every statement of `policies`: a list of policy documents, each given as a dict, a
    JSON string, or {"PolicyName": ..., "PolicyDocument": ...}. Raises PolicyError."""
    if not isinstance(policies, list):
        raise PolicyError("policies must be a list of policy documents")
    statements: list[Statement] = []
    for number, entry in enumerate(policies, 1):
        name, document = f"#{number}", entry
        if isinstance(entry, dict) and "PolicyDocument" in entry:
            name, document = entry.get("PolicyName") or name, entry["PolicyDocument"]
        if isinstance(document, str):
            try:
                document = json.loads(document)
            except ValueError as e:
                raise PolicyError(f"policy {name} is not JSON: {e}") from None
        if not isinstance(document, dict) or "Statement" not in document:
            raise PolicyError(f"policy {name} has no Statement")
        raw = document["Statement"]
        for index, item in enumerate(raw if isinstance(raw, list) else [raw]):
            statements.append(_parse_statement(item, name, index))
    return statements


# --------------------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------------------

def _glob_regex(pattern: str, segment_aware: bool) -> re.Pattern:
    """`*` any run of characters, `?` one character. Segment-aware (Resource ARNs): a
    wildcard stays inside its colon-separated segment unless the `*` ends the segment."""
    out = []
    for i, ch in enumerate(pattern):
        if ch == "*":
            ends_segment = i + 1 == len(pattern) or pattern[i + 1] == ":"
            out.append(".*" if not segment_aware or ends_segment else "[^:]*")
        elif ch == "?":
            out.append("[^:]" if segment_aware else ".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


_CACHE: dict[tuple[str, bool, bool], re.Pattern] = {}


def _glob(pattern: str, value: str, *, segment_aware=False, ignore_case=False) -> bool:
    key = (pattern, segment_aware, ignore_case)
    regex = _CACHE.get(key)
    if regex is None:
        regex = _glob_regex(pattern.lower() if ignore_case else pattern, segment_aware)
        _CACHE[key] = regex
    return regex.fullmatch(value.lower() if ignore_case else value) is not None


def action_matches(pattern: str, action: str) -> bool:
    """Action names are case-insensitive (`s3:getobject` is `s3:GetObject`)."""
    return _glob(pattern, action, ignore_case=True)


def resource_matches(pattern: str, resource: str) -> bool:
    """ARNs are case-sensitive; see the module docstring for the wildcard rule."""
    return _glob(pattern, resource, segment_aware=True)


def _arn_like(pattern: str, value: str) -> bool:
    """ArnEquals/ArnLike: "each of the six colon-delimited components of the ARN is
    checked separately" with `*` and `?` (the condition operators page)."""
    want, have = pattern.split(":", 5), value.split(":", 5)
    if len(want) != 6 or len(have) != 6:
        return False
    return all(_glob(w, h) for w, h in zip(want, have))


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _single(base: str, value: str, wanted: str) -> bool:
    """Does one request value satisfy one policy value, for the positive form of `base`?"""
    if base in ("StringEquals", "StringNotEquals"):
        return value == wanted
    if base in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return value.lower() == wanted.lower()
    if base in ("StringLike", "StringNotLike"):
        return _glob(wanted, value)
    if base in ARN_OPS:
        return _arn_like(wanted, value)
    if base == "Bool":
        return value.lower() == wanted.lower()
    if base in IP_OPS:
        try:
            return ipaddress.ip_address(value) in ipaddress.ip_network(wanted, strict=False)
        except ValueError:
            return False
    if base in NUMERIC_OPS:
        a, b = _number(value), _number(wanted)
        if a is None or b is None:
            return False
        return {"NumericEquals": a == b, "NumericNotEquals": a == b,
                "NumericLessThan": a < b, "NumericLessThanEquals": a <= b,
                "NumericGreaterThan": a > b, "NumericGreaterThanEquals": a >= b}[base]
    raise AssertionError(base)


def _value_holds(base: str, value: str, wanted: tuple[str, ...]) -> bool:
    """One request value against the policy's values: OR for positive operators; for
    negated ones, true when the value matches none of them."""
    hit = any(_single(base, value, w) for w in wanted)
    return not hit if base in NEGATED_OPS else hit


def _context_values(context: dict, key: str) -> list[str] | None:
    """The request's values for `key` (keys are case-insensitive), or None if absent."""
    for name, value in context.items():
        if name.lower() == key.lower():
            if value is None:
                return None
            items = value if isinstance(value, (list, tuple, set)) else [value]
            return [_value_text(v) for v in items]
    return None


def condition_holds(cond: Condition, context: dict) -> tuple[bool, str]:
    """(holds, why) for one operator/key pair against the request context."""
    values = _context_values(context, cond.key)
    present = values is not None and len(values) > 0
    if cond.base == "Null":
        # Null: true means "the key is absent", false "the key is present".
        ok = any((w.lower() == "true") != present for w in cond.values)
        return ok, f"{cond.key} is {'present' if present else 'absent'}"
    if not present:
        if cond.if_exists:
            return True, f"{cond.key} is absent (IfExists)"
        if cond.qualifier == "ForAllValues":
            return True, f"{cond.key} is absent (ForAllValues holds for no values)"
        if cond.qualifier is None and cond.base in NEGATED_OPS:
            return True, f"{cond.key} is absent (a negated operator then holds)"
        return False, f"{cond.key} is not in the request context"
    if cond.qualifier == "ForAllValues":
        ok = all(_value_holds(cond.base, v, cond.values) for v in values)
    else:
        # ForAnyValue, and (our reading) a single-valued operator given a multi-valued key.
        ok = any(_value_holds(cond.base, v, cond.values) for v in values)
    shown = values[0] if len(values) == 1 else values
    return ok, f"the request has {cond.key}={json.dumps(shown)}"


def _matches_action(stmt: Statement, action: str) -> bool:
    if stmt.actions is not None:
        return any(action_matches(p, action) for p in stmt.actions)
    return not any(action_matches(p, action) for p in stmt.not_actions)


def _matches_resource(stmt: Statement, resource: str) -> bool:
    if stmt.resources is not None:
        return any(resource_matches(p, resource) for p in stmt.resources)
    return not any(resource_matches(p, resource) for p in stmt.not_resources)


def _conditions(stmt: Statement, context: dict) -> tuple[bool, str]:
    for cond in stmt.conditions:
        ok, why = condition_holds(cond, context)
        if not ok:
            return False, f"its condition {cond.describe()} is false: {why}"
    return True, ""


# --------------------------------------------------------------------------------------
# Decision
# --------------------------------------------------------------------------------------

@dataclass
class Decision:
    allowed: bool
    kind: str  # "allow" | "explicit-deny" | "implicit-deny"
    reason: str
    statement: str | None = None
    notes: list[str] = field(default_factory=list)


def evaluate(statements: list[Statement], action: str, resource: str,
             context: dict | None = None) -> Decision:
    """Decide one (action, resource, context) for an identity with these statements.

    `resource` is the ARN the service authorizes the action on, or "*" for actions
    without a resource type (only a Resource "*" pattern matches it)."""
    context = context or {}
    allow = None
    near_misses: list[str] = []
    for stmt in statements:
        if not _matches_action(stmt, action):
            continue
        if not _matches_resource(stmt, resource):
            if stmt.effect == "Allow":
                near_misses.append(f"{stmt.label} allows {action} but not on this resource")
            continue
        ok, why = _conditions(stmt, context)
        if not ok:
            if stmt.effect == "Allow":
                near_misses.append(f"{stmt.label} matches, but {why}")
            continue
        if stmt.effect == "Deny":
            return Decision(False, "explicit-deny",
                            f"explicitly denied by {stmt.label}", stmt.label)
        allow = allow or stmt
    if allow is not None:
        return Decision(True, "allow", f"allowed by {allow.label}", allow.label)
    reason = f"no identity-based policy allows the {action} action"
    if near_misses:
        reason += " (" + "; ".join(near_misses) + ")"
    return Decision(False, "implicit-deny", reason, None, near_misses)
