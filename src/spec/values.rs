//! Typed stack-file values: parsed once, at the edge, into what the rest of the code
//! uses ("parse, don't validate"). Each refuses what AWS refuses, with AWS's rule in the
//! message, and writes the same rule into the JSON Schema.
//!
//! The rules across fields (a KMS key in the stack's region, subnets only with a VPC id)
//! stay in [`super::validate`], which runs on these parsed values.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;

/// A text value with a rule: parsed with [`FromStr`] (the rule and AWS's wording in the
/// error), read from YAML through it, and written into the JSON Schema as `pattern`.
/// Reads as `&str` everywhere else.
macro_rules! checked_text {
    ($(#[$doc:meta])* $name:ident, pattern: $pattern:expr, check: $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl $name {
            /// The value as written.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                let check: fn(&str) -> Result<(), String> = $check;
                check(s).map(|()| $name(s.to_string()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(s: String) -> Result<Self, String> {
                s.parse()
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({"type": "string", "pattern": $pattern})
            }
        }
    };
}

checked_text!(
    /// A CloudFormation stack name, also the prefix of every named resource: 1-32
    /// letters, digits and hyphens, starting with a letter and not ending with a hyphen
    /// (CloudFormation allows 128; the prefix is kept short so that resource names built
    /// from it stay within their own limits, such as 32 for a target group).
    StackName,
    pattern: "^[A-Za-z]([A-Za-z0-9-]{0,30}[A-Za-z0-9])?$",
    check: |n| {
        let ok = (1..=32).contains(&n.len())
            && n.starts_with(|c: char| c.is_ascii_alphabetic())
            && !n.ends_with('-')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if ok {
            Ok(())
        } else {
            Err(format!("{n:?} is not a valid stack name: use 1-32 letters, digits and hyphens, starting with a letter"))
        }
    }
);

checked_text!(
    /// An AWS region name, `xx-name-N` or `xx-gov-name-N` (e.g. `us-east-1`).
    Region,
    pattern: "^[a-z]{2}(-[a-z]+){1,2}-[0-9]+$",
    check: |r| {
        if super::validate::is_region(r) {
            Ok(())
        } else {
            Err(format!("{r:?} is not an AWS region name such as us-east-1 or eu-west-1"))
        }
    }
);

checked_text!(
    /// An EC2 VPC id, `vpc-` and 8 or 17 lower-case hex digits.
    VpcId,
    pattern: "^vpc-[0-9a-f]{8,17}$",
    check: |v| {
        if super::validate::is_aws_id(v, "vpc-") {
            Ok(())
        } else {
            Err(format!("{v:?} is not a VPC id such as vpc-0a1b2c3d4e5f60718"))
        }
    }
);

checked_text!(
    /// An EC2 subnet id, `subnet-` and 8 or 17 lower-case hex digits.
    SubnetId,
    pattern: "^subnet-[0-9a-f]{8,17}$",
    check: |v| {
        if super::validate::is_aws_id(v, "subnet-") {
            Ok(())
        } else {
            Err(format!("{v:?} is not a subnet id such as subnet-0a1b2c3d"))
        }
    }
);

checked_text!(
    /// A Secrets Manager name prefix for `airflow.secrets_backend`: parts of the
    /// characters a secret name may hold (letters, digits and `_+=.@-`, "CreateSecret",
    /// Secrets Manager API reference) joined by single `/`, without a `/` at either end.
    /// No `*` or `?`: the prefix is also written into an IAM resource ARN
    /// (`...:secret:<prefix>/*`), where those would be wildcards.
    SecretPrefix,
    pattern: "^[A-Za-z0-9_+=.@-]+(/[A-Za-z0-9_+=.@-]+)*$",
    check: |p| {
        let part_ok = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+=.@-".contains(c))
        };
        if p.split('/').all(part_ok) {
            Ok(())
        } else {
            Err(format!("{p:?} is not a secret name prefix such as airflow/connections: letters, digits and _ + = . @ - in parts joined by single /, no / at either end"))
        }
    }
);

/// The CIDR block of a VPC the stack creates: IPv4, /16 (the largest a VPC takes) to
/// /24, with no host bits set (EC2 CreateVpc refuses `10.40.7.0/16`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct VpcCidr {
    network: Ipv4Addr,
    prefix: u8,
}

impl VpcCidr {
    /// The prefix length (16 to 24).
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

impl FromStr for VpcCidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parsed = s.split_once('/').and_then(|(ip, bits)| {
            let ip = ip.parse::<Ipv4Addr>().ok()?;
            let bits = bits.parse::<u8>().ok().filter(|b| (16..=24).contains(b))?;
            Some((ip, bits))
        });
        let Some((ip, prefix)) = parsed else {
            return Err(format!(
                "{s:?} is not an IPv4 CIDR block from /16 to /24, e.g. 10.40.0.0/16"
            ));
        };
        let network = Ipv4Addr::from(u32::from(ip) & (u32::MAX << (32 - u32::from(prefix))));
        if network != ip {
            return Err(format!(
                "{s:?} has host bits set: a /{prefix} block starts at {network}/{prefix}, which is what AWS accepts"
            ));
        }
        Ok(VpcCidr { network, prefix })
    }
}

impl TryFrom<String> for VpcCidr {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for VpcCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl JsonSchema for VpcCidr {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "VpcCidr".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        super::schema_rules::vpc_cidr(generator)
    }
}

checked_text!(
    /// A PostgreSQL engine version as RDS names it, `MAJOR` or `MAJOR.MINOR`, of a major
    /// version Airflow 3 supports (14 to 17).
    PostgresVersion,
    pattern: "^1[4-7](\\.[0-9]{1,2})?$",
    check: |v| {
        let digits = |s: &str| (1..=2).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
        let (major, minor_ok) = match v.split_once('.') {
            Some((major, minor)) => (major, digits(minor)),
            None => (v, true),
        };
        let supported = digits(major) && major.parse::<u32>().is_ok_and(|m| (14..=17).contains(&m));
        if supported && minor_ok {
            Ok(())
        } else {
            Err(format!("{v:?} is not a PostgreSQL version Airflow 3 supports (14 to 17), as RDS names them: MAJOR or MAJOR.MINOR, e.g. 17.7"))
        }
    }
);

checked_text!(
    /// A Secrets Manager secret's full ARN,
    /// `arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-<6 characters>`.
    /// The full one: a partial ARN (without the suffix) works for reading, but not as the
    /// IAM resource the execution role is limited to.
    SecretArn,
    pattern: "^arn:aws[a-z-]*:secretsmanager:[a-z]{2}(-[a-z]+){1,2}-[0-9]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$",
    check: |arn| {
        let parts: Vec<&str> = arn.splitn(7, ':').collect();
        let name_ok = |resource: &str| {
            resource.rsplit_once('-').is_some_and(|(name, suffix)| {
                !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c))
                    && suffix.len() == 6
                    && suffix.chars().all(|c| c.is_ascii_alphanumeric())
            })
        };
        let ok = parts.len() == 7
            && parts[0] == "arn"
            && parts[1].starts_with("aws")
            && parts[2] == "secretsmanager"
            && super::validate::is_region(parts[3])
            && parts[4].len() == 12
            && parts[4].bytes().all(|b| b.is_ascii_digit())
            && parts[5] == "secret"
            && name_ok(parts[6]);
        if ok {
            Ok(())
        } else {
            Err(format!("{arn:?} is not a secret's full ARN such as arn:aws:secretsmanager:us-east-1:123456789012:secret:smtp-AbCdEf (with the 6 characters Secrets Manager adds to the name; the execution role is allowed exactly this ARN)"))
        }
    }
);

/// An EventBridge Scheduler expression: `cron(minutes hours day-of-month month
/// day-of-week year)` with exactly one of the day fields `?`, or `rate(N unit)`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum ScheduleExpression {
    /// `cron(...)`, its six fields in order.
    Cron([String; 6]),
    /// `rate(N minutes|hours|days)`, as written.
    Rate(String),
}

impl ScheduleExpression {
    /// The cron fields, for a cron expression.
    pub fn cron_fields(&self) -> Option<&[String; 6]> {
        match self {
            ScheduleExpression::Cron(fields) => Some(fields),
            ScheduleExpression::Rate(_) => None,
        }
    }
}

impl FromStr for ScheduleExpression {
    type Err = String;

    fn from_str(e: &str) -> Result<Self, String> {
        if let Some(body) = e.strip_prefix("cron(").and_then(|b| b.strip_suffix(')')) {
            let fields: Vec<String> = body.split_whitespace().map(str::to_string).collect();
            let fields: [String; 6] = fields.try_into().map_err(|_| {
                format!("{e:?}: a cron expression has six fields: minutes hours day-of-month month day-of-week year, e.g. cron(0 7 ? * MON-FRI *)")
            })?;
            // EventBridge: "You can't specify the Day-of-month and Day-of-week fields in
            // the same cron expression. If you specify a value or a * in one of the
            // fields, you must use a ? in the other." (Scheduler User Guide, "Cron
            // expressions").
            if (fields[2] == "?") == (fields[4] == "?") {
                return Err(format!("{e:?}: exactly one of day-of-month (3rd field) and day-of-week (5th field) must be `?`, as EventBridge requires, e.g. cron(0 7 ? * MON-FRI *) or cron(0 7 1 * ? *)"));
            }
            return Ok(ScheduleExpression::Cron(fields));
        }
        if let Some(body) = e.strip_prefix("rate(").and_then(|b| b.strip_suffix(')')) {
            let parts: Vec<&str> = body.split_whitespace().collect();
            let ok = matches!(parts.as_slice(), [n, unit]
                if n.parse::<u32>().is_ok_and(|n| n > 0) && !n.starts_with('0')
                    && ["minute", "minutes", "hour", "hours", "day", "days"].contains(unit));
            return if ok {
                Ok(ScheduleExpression::Rate(e.to_string()))
            } else {
                Err(format!(
                    "{e:?}: a rate expression is rate(<positive number> minutes|hours|days)"
                ))
            };
        }
        Err(format!("{e:?}: use cron(minutes hours day-of-month month day-of-week year), e.g. cron(0 19 ? * MON-FRI *), or rate(12 hours)"))
    }
}

impl TryFrom<String> for ScheduleExpression {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for ScheduleExpression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleExpression::Cron(fields) => write!(f, "cron({})", fields.join(" ")),
            ScheduleExpression::Rate(text) => f.write_str(text),
        }
    }
}

impl JsonSchema for ScheduleExpression {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ScheduleExpression".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        super::schema_rules::schedule_expression(generator)
    }
}

/// The characters of a Lambda function name: letters, digits, `-` and `_`, 1 to 64
/// (Lambda API reference, "CreateFunction": `FunctionName`).
pub const LAMBDA_NAME_PATTERN: &str = "[A-Za-z0-9_-]{1,64}";

/// A version or alias qualifier: `$LATEST`, a version number or an alias name, 1 to 128
/// letters, digits, `-` and `_` ("Invoke": `Qualifier`).
pub const LAMBDA_QUALIFIER_PATTERN: &str = "(\\$LATEST|[A-Za-z0-9_-]{1,128})";

/// A function ARN's partition, region, account and qualifier: what a function given as
/// an ARN says beyond its name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LambdaArn {
    /// `aws`, `aws-cn`, `aws-us-gov`, ...
    pub partition: String,
    /// The function's region.
    pub region: String,
    /// The function's account (12 digits).
    pub account: String,
    /// The version or alias the ARN ends in, if any.
    pub qualifier: Option<String>,
}

/// A function of `airflow.lambda_functions`: its name (in the stack's own account and
/// region), or its ARN `arn:<partition>:lambda:<region>:<account>:function:<name>`,
/// optionally with `:<version or alias>`, which limits the grant to that version or
/// alias. Nothing else: the value is written into IAM resource ARNs, where `*` or `?`
/// would be wildcards.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct LambdaFunctionRef {
    text: String,
    name: String,
    arn: Option<LambdaArn>,
}

impl LambdaFunctionRef {
    /// The value as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The function's name (without a qualifier).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the function is, when it was given as an ARN (`None`: a name, in the
    /// stack's account and region).
    pub fn arn(&self) -> Option<&LambdaArn> {
        self.arn.as_ref()
    }
}

fn is_lambda_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn is_lambda_qualifier(s: &str) -> bool {
    s == "$LATEST"
        || ((1..=128).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
}

fn is_partition(s: &str) -> bool {
    s.strip_prefix("aws").is_some_and(|rest| {
        rest.is_empty()
            || rest.strip_prefix('-').is_some_and(|parts| {
                parts
                    .split('-')
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
            })
    })
}

impl FromStr for LambdaFunctionRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parsed = if let Some(rest) = s.strip_prefix("arn:") {
            let parts: Vec<&str> = rest.split(':').collect();
            match parts.as_slice() {
                [partition, "lambda", region, account, "function", name, qualifier @ ..]
                    if is_partition(partition)
                        && super::validate::is_region(region)
                        && account.len() == 12
                        && account.bytes().all(|b| b.is_ascii_digit())
                        && is_lambda_name(name)
                        && qualifier.len() <= 1
                        && qualifier.iter().all(|q| is_lambda_qualifier(q)) =>
                {
                    Some(LambdaFunctionRef {
                        text: s.to_string(),
                        name: name.to_string(),
                        arn: Some(LambdaArn {
                            partition: partition.to_string(),
                            region: region.to_string(),
                            account: account.to_string(),
                            qualifier: qualifier.first().map(|q| q.to_string()),
                        }),
                    })
                }
                _ => None,
            }
        } else {
            is_lambda_name(s).then(|| LambdaFunctionRef {
                text: s.to_string(),
                name: s.to_string(),
                arn: None,
            })
        };
        parsed.ok_or_else(|| {
            format!("{s:?} is neither a Lambda function name (1-64 letters, digits, - and _, e.g. load-orders) nor a function ARN such as arn:aws:lambda:eu-west-1:123456789012:function:load-orders, optionally ending in :<version or alias> (arn:aws:lambda:eu-west-1:123456789012:function:load-orders:live)")
        })
    }
}

impl TryFrom<String> for LambdaFunctionRef {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for LambdaFunctionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl JsonSchema for LambdaFunctionRef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "LambdaFunctionRef".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        super::schema_rules::lambda_function_ref(generator)
    }
}

checked_text!(
    /// A CloudWatch Logs log group name for `airflow.lambda_functions[].log_group`: 1 to
    /// 512 letters, digits and `.`, `-`, `_`, `/`, `#` (CloudWatch Logs API reference,
    /// "CreateLogGroup": `logGroupName`). No `*` or `?`: the name is written into an IAM
    /// resource ARN, where those would be wildcards.
    LogGroupName,
    pattern: "^[.\\-_/#A-Za-z0-9]{1,512}$",
    check: |g| {
        let ok = (1..=512).contains(&g.len())
            && g.chars().all(|c| c.is_ascii_alphanumeric() || ".-_/#".contains(c));
        if ok {
            Ok(())
        } else {
            Err(format!("{g:?} is not a log group name: 1-512 letters, digits and . - _ / #, e.g. /aws/lambda/load-orders or /team/functions"))
        }
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_expressions_parse_into_their_fields() {
        let e: ScheduleExpression = "cron(0 7 ? * MON-FRI *)".parse().unwrap();
        assert_eq!(e.cron_fields().unwrap()[4], "MON-FRI");
        assert_eq!(e.to_string(), "cron(0 7 ? * MON-FRI *)");
        assert!("rate(12 hours)".parse::<ScheduleExpression>().is_ok());
        for bad in [
            "cron(0 7 * * MON-FRI *)",
            "cron(0 7 ? * ? *)",
            "cron(0 7 * *)",
            "rate(0 hours)",
            "rate(5 weeks)",
            "at(2026-01-01T00:00:00)",
        ] {
            assert!(bad.parse::<ScheduleExpression>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_cidr_parses_into_its_block_and_refuses_host_bits() {
        let c: VpcCidr = "10.40.128.0/17".parse().unwrap();
        assert_eq!((c.prefix(), c.to_string().as_str()), (17, "10.40.128.0/17"));
        let e = "10.40.7.0/16".parse::<VpcCidr>().unwrap_err();
        assert!(e.contains("starts at 10.40.0.0/16"), "{e}");
        for bad in ["10.0.0.0/8", "10.0.0/16", "10.0.0.0/25", "x"] {
            assert!(bad.parse::<VpcCidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_postgres_version_is_major_or_major_minor() {
        for ok in ["17", "17.7", "14.12"] {
            assert!(ok.parse::<PostgresVersion>().is_ok(), "{ok}");
        }
        for bad in ["17.x", "17.", "17.7.1", "11.22", "18.1", "v17"] {
            assert!(bad.parse::<PostgresVersion>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_secret_prefix_is_parts_joined_by_single_slashes() {
        for ok in ["airflow/connections", "team-a/airflow.vars", "x"] {
            assert!(ok.parse::<SecretPrefix>().is_ok(), "{ok}");
        }
        for bad in ["", "/airflow", "airflow/", "a//b", "airflow/*", "a b", "a?"] {
            assert!(bad.parse::<SecretPrefix>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_secret_arn_must_be_the_full_one() {
        assert!(
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:team/api-x1Y2z3"
                .parse::<SecretArn>()
                .is_ok()
        );
        for bad in [
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:smtp",
            "arn:aws:secretsmanager:eu-west-1:12345:secret:smtp-AbCdEf",
            "arn:aws:ssm:eu-west-1:123456789012:secret:smtp-AbCdEf",
            "smtp-AbCdEf",
        ] {
            assert!(bad.parse::<SecretArn>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_lambda_function_is_a_name_or_a_function_arn() {
        let name: LambdaFunctionRef = "load_orders-2".parse().unwrap();
        assert_eq!((name.name(), name.arn()), ("load_orders-2", None));
        let arn: LambdaFunctionRef =
            "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f:live"
                .parse()
                .unwrap();
        let at = arn.arn().unwrap();
        assert_eq!(arn.name(), "f");
        assert_eq!(
            (
                at.partition.as_str(),
                at.region.as_str(),
                at.account.as_str()
            ),
            ("aws-us-gov", "us-gov-west-1", "123456789012")
        );
        assert_eq!(at.qualifier.as_deref(), Some("live"));
        for ok in [
            "arn:aws:lambda:eu-west-1:123456789012:function:f",
            "arn:aws:lambda:eu-west-1:123456789012:function:f:$LATEST",
            "arn:aws:lambda:eu-west-1:123456789012:function:f:7",
            "arn:aws-cn:lambda:cn-north-1:123456789012:function:f",
            &"a".repeat(64),
        ] {
            assert!(ok.parse::<LambdaFunctionRef>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "load.orders",
            "load*",
            &"a".repeat(65),
            "arn:aws:lambda:eu-west-1:123456789012:function:",
            "arn:aws:lambda:eu-west-1:12345:function:f",
            "arn:aws:lambda:eu-west-1:123456789012:layer:f",
            "arn:aws:s3:eu-west-1:123456789012:function:f",
            "arn:aws:lambda:moon:123456789012:function:f",
            "arn:azure:lambda:eu-west-1:123456789012:function:f",
            "arn:aws:lambda:eu-west-1:123456789012:function:f:a:b",
            "arn:aws:lambda:eu-west-1:123456789012:function:f:*",
            "arn:aws:lambda:eu-west-1:123456789012:function:f:",
            "123456789012:function:f",
        ] {
            assert!(bad.parse::<LambdaFunctionRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_log_group_name_takes_cloudwatchs_characters() {
        for ok in ["/aws/lambda/f", "team.logs#1", "a", &"a".repeat(512)] {
            assert!(ok.parse::<LogGroupName>().is_ok(), "{ok}");
        }
        for bad in ["", "/aws/lambda/*", "a b", "a:b", &"a".repeat(513)] {
            assert!(bad.parse::<LogGroupName>().is_err(), "{bad}");
        }
    }
}

checked_text!(
    /// A Debian package for `airflow.build.os_packages`: a package name as Debian policy
    /// allows it (lower-case letters, digits, `+`, `-`, `.`; at least two characters,
    /// starting with a letter or digit), optionally `=version`. Nothing else: the value is
    /// written into the Dockerfile's `apt-get install` line, where a space or a shell
    /// character would be another argument or another command.
    OsPackage,
    pattern: "^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+:~-]+)?$",
    check: |v| {
        let (name, version) = match v.split_once('=') {
            Some((name, version)) => (name, Some(version)),
            None => (v, None),
        };
        let name_ok = name.len() >= 2
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c));
        let version_ok = version.is_none_or(|v| {
            !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || ".+:~-".contains(c))
        });
        if name_ok && version_ok {
            Ok(())
        } else {
            Err(format!("{v:?} is not a Debian package: a name of lower-case letters, digits, '+', '-' and '.' (at least two characters), optionally =version, e.g. libpq5 or curl=7.88.1-10+deb12u12"))
        }
    }
);

checked_text!(
    /// A stream's name (`streams[].name`): 1 to 20 lower-case letters, digits and
    /// single hyphens, starting with a letter and not ending with a hyphen. It is part of the
    /// manager's function name (`<stack>-stream-<name>`, within Lambda's 64 characters
    /// for any stack name), of every DAG run id the stream starts, and of table keys.
    StreamName,
    pattern: "^(?=.{1,20}$)[a-z](-?[a-z0-9])*$",
    check: |n| {
        let ok = (1..=20).contains(&n.len())
            && n.starts_with(|c: char| c.is_ascii_lowercase())
            && !n.ends_with('-')
            && !n.contains("--")
            && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(())
        } else {
            Err(format!("{n:?} is not a stream name: 1-20 lower-case letters, digits and single hyphens, starting with a letter and not ending with a hyphen, e.g. orders"))
        }
    }
);

checked_text!(
    /// A stream's URL: `https://` and a host, no spaces, at most 2048 characters. Plain
    /// `http://` is refused: the stream carries its auth header and the events.
    StreamUrl,
    pattern: "^https://[^\\s/?#]+\\S*$",
    check: |u| {
        let host_ok = u
            .strip_prefix("https://")
            .is_some_and(|rest| rest.split(['/', '?', '#']).next().is_some_and(|h| !h.is_empty()));
        if host_ok && u.len() <= 2048 && !u.chars().any(char::is_whitespace) {
            Ok(())
        } else {
            Err(format!("{u:?} is not an https:// URL such as https://events.example.com/v1/stream (at most 2048 characters, no spaces)"))
        }
    }
);

checked_text!(
    /// An HTTP header name (RFC 9110 `token`, limited to letters, digits and `-`): 1 to
    /// 64 characters, e.g. `Authorization` or `X-Api-Key`.
    HeaderName,
    pattern: "^[A-Za-z0-9-]{1,64}$",
    check: |h| {
        if (1..=64).contains(&h.len()) && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            Ok(())
        } else {
            Err(format!("{h:?} is not an HTTP header name: 1-64 letters, digits and hyphens, e.g. Authorization"))
        }
    }
);

checked_text!(
    /// A top-level JSON field name identifying a stream's events: 1 to 128 letters,
    /// digits and `_`, `-`, `.` (taken literally, not as a path).
    EventField,
    pattern: "^[A-Za-z0-9_.-]{1,128}$",
    check: |f| {
        if (1..=128).contains(&f.len()) && f.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
            Ok(())
        } else {
            Err(format!("{f:?} is not a field name: 1-128 letters, digits and _ . -, e.g. id"))
        }
    }
);

checked_text!(
    /// A DAG id as Airflow allows it (`KEY_REGEX` in airflow/utils/helpers.py: letters,
    /// digits, `_`, `.` and `-`; at most 250 characters, the `dag_id` column's length).
    DagId,
    pattern: "^[A-Za-z0-9_.-]{1,250}$",
    check: |d| {
        if (1..=250).contains(&d.len()) && d.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
            Ok(())
        } else {
            Err(format!("{d:?} is not a DAG id: 1-250 letters, digits and _ . -, e.g. orders_ingest"))
        }
    }
);

checked_text!(
    /// An Asset's URI as Airflow stores it: 1 to 1500 characters (the `asset.uri`
    /// column), no spaces, with a scheme, e.g. `s3://bucket/orders`.
    AssetUri,
    pattern: "^[A-Za-z][A-Za-z0-9+.-]*://\\S{1,1490}$",
    check: |u| {
        let scheme_ok = u.split_once("://").is_some_and(|(scheme, rest)| {
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
                && !rest.is_empty()
        });
        if scheme_ok && u.len() <= 1500 && !u.chars().any(char::is_whitespace) {
            Ok(())
        } else {
            Err(format!("{u:?} is not an Asset URI such as s3://bucket/orders (a scheme, ://, no spaces, at most 1500 characters)"))
        }
    }
);
