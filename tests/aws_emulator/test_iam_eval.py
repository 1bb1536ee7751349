"""The IAM evaluator on its own (tests/aws_emulator/iam_eval.py), case by case against
the rules of the AWS IAM documentation cited in that module.

    $AIRFLOW_STACK_VENV/bin/python -m pytest tests/aws_emulator/test_iam_eval.py -q
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from iam_eval import (  # noqa: E402
    PolicyError,
    action_matches,
    evaluate,
    parse_policies,
    resource_matches,
)

BUCKET = "arn:aws:s3:::data"


def policy(*statements, name="p"):
    return {"PolicyName": name, "PolicyDocument": {"Version": "2012-10-17",
                                                   "Statement": list(statements)}}


def allow(action, resource="*", condition=None, sid=None, effect="Allow"):
    stmt = {"Effect": effect, "Action": action, "Resource": resource}
    if condition:
        stmt["Condition"] = condition
    if sid:
        stmt["Sid"] = sid
    return stmt


def deny(action, resource="*", condition=None, sid=None):
    return allow(action, resource, condition, sid, effect="Deny")


def decide(statements, action, resource="*", context=None):
    return evaluate(parse_policies([policy(*statements)]), action, resource, context)


# --- the decision order ---------------------------------------------------------------


def test_implicit_deny_without_any_statement():
    d = decide([], "s3:GetObject", f"{BUCKET}/k")
    assert not d.allowed and d.kind == "implicit-deny"
    assert "no identity-based policy allows the s3:GetObject action" in d.reason


def test_allow():
    d = decide([allow("s3:GetObject", f"{BUCKET}/*", sid="Read")], "s3:GetObject",
               f"{BUCKET}/dags/a.py")
    assert d.allowed and d.kind == "allow"
    assert d.reason == "allowed by statement 'Read' of policy p"


def test_explicit_deny_wins_over_allow_in_any_order_and_policy():
    statements = parse_policies([
        policy(deny("s3:*", f"{BUCKET}/secret/*", sid="NoSecrets"), name="guard"),
        policy(allow("s3:GetObject", f"{BUCKET}/*"), name="read"),
    ])
    d = evaluate(statements, "s3:GetObject", f"{BUCKET}/secret/x")
    assert not d.allowed and d.kind == "explicit-deny"
    assert "'NoSecrets' of policy guard" in d.reason
    assert evaluate(statements, "s3:GetObject", f"{BUCKET}/public/x").allowed


def test_deny_whose_condition_fails_does_not_apply():
    # moto's evaluator gets this wrong the other way round for Allow (local-aws.md §9).
    statements = [allow("s3:ListBucket", BUCKET),
                  deny("s3:ListBucket", BUCKET, {"StringEquals": {"s3:prefix": "secret"}})]
    assert decide(statements, "s3:ListBucket", BUCKET, {"s3:prefix": "dags"}).allowed
    assert not decide(statements, "s3:ListBucket", BUCKET, {"s3:prefix": "secret"}).allowed


def test_allow_whose_condition_fails_is_not_a_deny():
    statements = [allow("s3:ListBucket", BUCKET, {"StringLike": {"s3:prefix": "dags/*"}}),
                  allow("s3:ListBucket", BUCKET)]
    assert decide(statements, "s3:ListBucket", BUCKET, {"s3:prefix": "logs/"}).allowed


# --- Action / NotAction ---------------------------------------------------------------


@pytest.mark.parametrize("pattern,action,expected", [
    ("s3:GetObject", "s3:GetObject", True),
    ("s3:getobject", "s3:GetObject", True),       # action names are case-insensitive
    ("S3:GET*", "s3:GetObject", True),
    ("s3:Get*", "s3:PutObject", False),
    ("s3:?etObject", "s3:GetObject", True),
    ("s3:?etObject", "s3:GGetObject", False),
    ("*", "ecs:RunTask", True),
    ("ecs:*", "ecs:RunTask", True),
    ("ecs:*", "iam:PassRole", False),
    ("s3:GetObject", "s3:GetObjectVersion", False),  # no implicit prefix match
])
def test_action_patterns(pattern, action, expected):
    assert action_matches(pattern, action) is expected


def test_not_action():
    statements = [{"Effect": "Allow", "NotAction": ["iam:*", "s3:Delete*"], "Resource": "*"}]
    assert decide(statements, "s3:GetObject", f"{BUCKET}/k").allowed
    assert not decide(statements, "s3:DeleteObject", f"{BUCKET}/k").allowed
    assert not decide(statements, "iam:PassRole", "arn:aws:iam::1:role/r").allowed


# --- Resource / NotResource -----------------------------------------------------------


@pytest.mark.parametrize("pattern,resource,expected", [
    (f"{BUCKET}/*", f"{BUCKET}/dags/a.py", True),    # * may span "/" ...
    (f"{BUCKET}/dags/*", f"{BUCKET}/logs/a", False),
    (f"{BUCKET}/*", BUCKET, False),                  # the bucket is not an object
    ("arn:aws:s3:::Data/*", f"{BUCKET}/k", False),   # ARNs are case-sensitive
    ("*", "arn:aws:ecs:us-east-1:1:task/c/abc", True),
    ("*", "*", True),                                # actions without a resource type
    ("arn:aws:ecs:*:*:*", "*", False),
    # A * that ends a segment may expand beyond the colon boundaries ...
    ("arn:aws:logs:us-east-1:1:log-group:/g:*",
     "arn:aws:logs:us-east-1:1:log-group:/g:log-stream:migrate/migrate/abc", True),
    ("arn:aws:logs:us-east-1:1:log-group:/g:*",
     "arn:aws:logs:us-east-1:1:log-group:/g:*", True),
    ("arn:aws:logs:us-east-1:1:log-group:/airflow/dev/*",
     "arn:aws:logs:us-east-1:1:log-group:/airflow/dev/scheduler:log-stream:x", True),
    # ... but the log-group ARN without ":*" is not matched by a pattern that has it.
    ("arn:aws:logs:us-east-1:1:log-group:/g:*",
     "arn:aws:logs:us-east-1:1:log-group:/g", False),
    # A * inside a segment stays inside it.
    ("arn:aws:logs:us-east-1:1:log-group:/g*x",
     "arn:aws:logs:us-east-1:1:log-group:/g:log-stream:x", False),
    ("arn:aws:ecs:us-east-1:1:task/c/*", "arn:aws:ecs:us-east-1:1:task/c/0a1b", True),
    ("arn:aws:ecs:us-east-1:1:task/c/*", "arn:aws:ecs:us-east-1:1:task/other/0a1b", False),
    ("arn:aws:ecs:us-east-1:1:task-definition/f:?", "arn:aws:ecs:us-east-1:1:task-definition/f:7", True),
    ("arn:aws:ecs:us-east-1:1:task-definition/f:?", "arn:aws:ecs:us-east-1:1:task-definition/f:17", False),
])
def test_resource_patterns(pattern, resource, expected):
    assert resource_matches(pattern, resource) is expected


def test_not_resource():
    statements = [{"Effect": "Allow", "Action": "s3:*", "NotResource": f"{BUCKET}/private/*"}]
    assert decide(statements, "s3:GetObject", f"{BUCKET}/public/k").allowed
    assert not decide(statements, "s3:GetObject", f"{BUCKET}/private/k").allowed


def test_resource_mismatch_is_explained():
    d = decide([allow("s3:GetObject", f"{BUCKET}/dags/*", sid="Dags")], "s3:GetObject",
               f"{BUCKET}/logs/x")
    assert not d.allowed
    assert "statement 'Dags' of policy p allows s3:GetObject but not on this resource" in d.reason


# --- conditions -----------------------------------------------------------------------

PREFIX = {"StringLike": {"s3:prefix": ["dags", "dags/*", "logs", "logs/*"]}}


def test_prefix_conditioned_list_bucket():
    statements = [allow("s3:ListBucket", BUCKET, PREFIX, sid="List")]
    assert decide(statements, "s3:ListBucket", BUCKET, {"s3:prefix": "dags/"}).allowed
    assert decide(statements, "s3:ListBucket", BUCKET, {"s3:prefix": "logs"}).allowed
    assert not decide(statements, "s3:ListBucket", BUCKET, {"s3:prefix": "other/"}).allowed
    # HeadBucket (and the 404-vs-403 check) has no s3:prefix in the request: denied ...
    d = decide(statements, "s3:ListBucket", BUCKET, {})
    assert not d.allowed
    assert "s3:prefix is not in the request context" in d.reason
    assert "StringLike s3:prefix" in d.reason
    # ... unless the condition is StringLikeIfExists.
    statements = [allow("s3:ListBucket", BUCKET,
                        {"StringLikeIfExists": {"s3:prefix": ["dags", "dags/*"]}})]
    assert decide(statements, "s3:ListBucket", BUCKET, {}).allowed
    assert decide(statements, "s3:ListBucket", BUCKET, {"s3:prefix": "dags/x"}).allowed
    assert not decide(statements, "s3:ListBucket", BUCKET, {"s3:prefix": "logs/"}).allowed


def test_condition_keys_are_case_insensitive_values_are_not():
    statements = [allow("s3:ListBucket", BUCKET, {"StringEquals": {"S3:Prefix": "Dags"}})]
    assert decide(statements, "s3:ListBucket", BUCKET, {"s3:prefix": "Dags"}).allowed
    assert not decide(statements, "s3:ListBucket", BUCKET, {"s3:prefix": "dags"}).allowed


@pytest.mark.parametrize("operator,values,context_value,expected", [
    ("StringEquals", ["a", "b"], "b", True),           # values: OR
    ("StringEquals", ["a", "b"], "c", False),
    ("StringNotEquals", ["a", "b"], "c", True),        # negated: matches none
    ("StringNotEquals", ["a", "b"], "a", False),
    ("StringEqualsIgnoreCase", ["ABC"], "abc", True),
    ("StringNotEqualsIgnoreCase", ["ABC"], "abc", False),
    ("StringLike", ["da?s/*"], "dags/x/y", True),
    ("StringLike", ["dags/*"], "Dags/x", False),
    ("StringNotLike", ["dags/*"], "logs/x", True),
    ("StringNotLike", ["dags/*", "logs/*"], "logs/x", False),
    ("NumericLessThan", ["10"], "9", True),
    ("NumericLessThan", ["10"], "10", False),
    ("NumericLessThanEquals", ["10"], "10", True),
    ("NumericGreaterThan", ["10"], "11", True),
    ("NumericGreaterThanEquals", ["10"], "9", False),
    ("NumericEquals", ["1000"], "1000.0", True),
    ("NumericNotEquals", ["5"], "6", True),
    ("NumericEquals", ["5"], "five", False),
    ("Bool", ["true"], "True", True),
    ("Bool", ["false"], "true", False),
    ("IpAddress", ["10.0.0.0/16"], "10.0.3.4", True),
    ("NotIpAddress", ["10.0.0.0/16"], "10.1.3.4", True),
])
def test_operators(operator, values, context_value, expected):
    statements = [allow("x:Y", "*", {operator: {"k:key": values}})]
    assert decide(statements, "x:Y", "*", {"k:key": context_value}).allowed is expected


def test_arn_operators_compare_the_six_components():
    cluster = "arn:aws:ecs:us-east-1:123456789012:cluster/airflow"
    for operator, pattern, value, expected in [
        ("ArnEquals", cluster, cluster, True),
        ("ArnEquals", cluster, cluster + "-2", False),
        ("ArnLike", "arn:aws:ecs:*:123456789012:cluster/*", cluster, True),
        ("ArnLike", "arn:aws:ecs:*:999999999999:cluster/*", cluster, False),
        ("ArnLike", "arn:aws:ecs:us-east-1:*", cluster, False),  # 5 components
        ("ArnNotEquals", cluster, "arn:aws:ecs:us-east-1:123456789012:cluster/x", True),
        ("ArnNotLike", "arn:aws:ecs:*:*:cluster/air*", cluster, False),
        ("ArnLike", "arn:aws:ecs:us-east-1:123456789012:cluster/*", "not-an-arn", False),
    ]:
        statements = [allow("ecs:RunTask", "*", {operator: {"ecs:cluster": pattern}})]
        got = decide(statements, "ecs:RunTask", "*", {"ecs:cluster": value}).allowed
        assert got is expected, (operator, pattern, value)


def test_missing_key():
    ctx = {}
    cases = [
        ({"StringEquals": {"k:a": "x"}}, False),
        ({"StringLike": {"k:a": "*"}}, False),
        ({"ArnLike": {"k:a": "arn:*:*:*:*:*"}}, False),
        ({"NumericLessThan": {"k:a": "3"}}, False),
        ({"Bool": {"k:a": "false"}}, False),
        # Negated operators hold when the key is absent (condition operators page).
        ({"StringNotEquals": {"k:a": "x"}}, True),
        ({"StringNotLike": {"k:a": "x*"}}, True),
        ({"ArnNotEquals": {"k:a": "arn:aws:s3:::b"}}, True),
        # IfExists holds when absent, whatever the operator.
        ({"StringEqualsIfExists": {"k:a": "x"}}, True),
        ({"ArnLikeIfExists": {"k:a": "arn:aws:s3:::b"}}, True),
        ({"NumericLessThanIfExists": {"k:a": "3"}}, True),
        ({"BoolIfExists": {"k:a": "true"}}, True),
        # Null: true = must be absent, false = must be present.
        ({"Null": {"k:a": "true"}}, True),
        ({"Null": {"k:a": "false"}}, False),
        # Set operators on a missing key.
        ({"ForAnyValue:StringEquals": {"k:a": "x"}}, False),
        ({"ForAllValues:StringEquals": {"k:a": "x"}}, True),
        ({"ForAnyValue:StringEqualsIfExists": {"k:a": "x"}}, True),
    ]
    for condition, expected in cases:
        assert decide([allow("x:Y", "*", condition)], "x:Y", "*", ctx).allowed is expected, \
            condition


def test_present_key_with_if_exists_and_null():
    assert not decide([allow("x:Y", "*", {"StringEqualsIfExists": {"k:a": "x"}})], "x:Y",
                      "*", {"k:a": "y"}).allowed
    assert decide([allow("x:Y", "*", {"Null": {"k:a": "false"}})], "x:Y", "*",
                  {"k:a": "y"}).allowed
    assert not decide([allow("x:Y", "*", {"Null": {"k:a": "true"}})], "x:Y", "*",
                      {"k:a": "y"}).allowed


def test_keys_and_operators_are_anded():
    condition = {"StringEquals": {"k:a": "1", "k:b": "2"},
                 "StringLike": {"k:c": "x*"}}
    statements = [allow("x:Y", "*", condition)]
    assert decide(statements, "x:Y", "*", {"k:a": "1", "k:b": "2", "k:c": "xyz"}).allowed
    assert not decide(statements, "x:Y", "*", {"k:a": "1", "k:b": "3", "k:c": "xyz"}).allowed
    assert not decide(statements, "x:Y", "*", {"k:a": "1", "k:b": "2", "k:c": "yz"}).allowed
    d = decide(statements, "x:Y", "*", {"k:a": "1", "k:c": "xyz"})
    assert not d.allowed and "k:b is not in the request context" in d.reason


def test_multi_valued_keys():
    tags = {"aws:TagKeys": ["env", "team"]}
    any_env = [allow("x:Y", "*", {"ForAnyValue:StringEquals": {"aws:TagKeys": "env"}})]
    all_known = [allow("x:Y", "*", {"ForAllValues:StringEquals":
                                    {"aws:TagKeys": ["env", "team", "owner"]}})]
    all_env = [allow("x:Y", "*", {"ForAllValues:StringEquals": {"aws:TagKeys": "env"}})]
    assert decide(any_env, "x:Y", "*", tags).allowed
    assert decide(all_known, "x:Y", "*", tags).allowed
    assert not decide(all_env, "x:Y", "*", tags).allowed
    assert decide(all_env, "x:Y", "*", {"aws:TagKeys": []}).allowed      # empty: true
    assert not decide(any_env, "x:Y", "*", {"aws:TagKeys": []}).allowed  # empty: false
    none_secret = [allow("x:Y", "*", {"ForAllValues:StringNotEquals":
                                      {"aws:TagKeys": "secret"}})]
    assert decide(none_secret, "x:Y", "*", tags).allowed
    assert not decide(none_secret, "x:Y", "*", {"aws:TagKeys": ["env", "secret"]}).allowed


def test_pass_role_with_passed_to_service():
    role = "arn:aws:iam::123456789012:role/exec"
    statements = [allow("iam:PassRole", role,
                        {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}})]
    ctx = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    assert decide(statements, "iam:PassRole", role, ctx).allowed
    assert not decide(statements, "iam:PassRole", role,
                      {"iam:PassedToService": "lambda.amazonaws.com"}).allowed
    assert not decide(statements, "iam:PassRole", role.replace("exec", "other"), ctx).allowed


def test_json_booleans_and_numbers_in_policies():
    statements = [allow("x:Y", "*", {"Bool": {"aws:SecureTransport": True},
                                     "NumericLessThan": {"s3:max-keys": 100}})]
    assert decide(statements, "x:Y", "*", {"aws:SecureTransport": "true",
                                            "s3:max-keys": "10"}).allowed
    assert decide(statements, "x:Y", "*", {"aws:SecureTransport": True,
                                            "s3:max-keys": 99}).allowed


# --- documents ------------------------------------------------------------------------


def test_documents_in_every_accepted_shape():
    doc = {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "sns:Publish",
                                                  "Resource": "*"}}
    import json
    for shape in (doc, json.dumps(doc), {"PolicyName": "n", "PolicyDocument": json.dumps(doc)}):
        assert evaluate(parse_policies([shape]), "sns:Publish", "arn:aws:sns:r:1:t").allowed


@pytest.mark.parametrize("statement,message", [
    ({"Effect": "Permit", "Action": "*", "Resource": "*"}, "Effect must be Allow or Deny"),
    ({"Effect": "Allow", "Resource": "*"}, "exactly one of Action and NotAction"),
    ({"Effect": "Allow", "Action": "*", "NotAction": "s3:*", "Resource": "*"},
     "exactly one of Action and NotAction"),
    ({"Effect": "Allow", "Action": "*"}, "exactly one of Resource and NotResource"),
    ({"Effect": "Allow", "Action": "*", "Resource": "*",
      "Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}},
     "not supported by the emulator"),
    ({"Effect": "Allow", "Action": "*", "Resource": "*",
      "Condition": {"ForSomeValues:StringEquals": {"a:b": "c"}}}, "unknown set operator"),
    ({"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b/${aws:username}/*"},
     "policy variables"),
    ({"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}, "Principal"),
    ({"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"Null": {"a:b": "x"}}},
     "Null takes true or false"),
])
def test_invalid_documents_are_refused(statement, message):
    with pytest.raises(PolicyError, match=message):
        parse_policies([policy(statement)])


def test_not_a_list_or_no_statement():
    with pytest.raises(PolicyError):
        parse_policies({"Statement": []})
    with pytest.raises(PolicyError, match="has no Statement"):
        parse_policies([{"Version": "2012-10-17"}])
    with pytest.raises(PolicyError, match="not JSON"):
        parse_policies(["{nope"])


def test_the_airflow_core_role_shape():
    """The CoreTaskRole policy of the dev template before issue 11's fix: listings with
    the component prefixes pass, HeadBucket and the missing-key check do not."""
    statements = parse_policies([policy(
        allow("s3:ListBucket", BUCKET, PREFIX, sid="List"),
        allow("s3:GetObject", [f"{BUCKET}/dags/*", f"{BUCKET}/logs/*"]),
        allow("s3:PutObject", f"{BUCKET}/logs/*"),
        name="airflow-bucket")])
    assert evaluate(statements, "s3:ListBucket", BUCKET, {"s3:prefix": "dags/"}).allowed
    assert not evaluate(statements, "s3:ListBucket", BUCKET, {}).allowed
    assert evaluate(statements, "s3:GetObject", f"{BUCKET}/dags/x.py").allowed
    assert not evaluate(statements, "s3:PutObject", f"{BUCKET}/dags/x.py").allowed
    assert not evaluate(statements, "s3:DeleteObject", f"{BUCKET}/logs/x").allowed
