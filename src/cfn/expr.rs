//! CloudFormation values and intrinsic functions as one typed enum.
//!
//! An [`Expr`] is used wherever a template property may hold either a literal string or
//! an intrinsic function. Intrinsics serialise only in the long form (`{"Fn::GetAtt":
//! [..]}`), never as encoded strings, so nothing downstream has to parse them back.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use super::LogicalId;

/// The pseudo parameters CloudFormation resolves at deploy time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pseudo {
    /// `AWS::AccountId`
    AccountId,
    /// `AWS::Region`
    Region,
    /// `AWS::Partition`
    Partition,
    /// `AWS::StackName`
    StackName,
    /// `AWS::StackId`
    StackId,
    /// `AWS::URLSuffix`
    UrlSuffix,
    /// `AWS::NoValue`: removes the property it is assigned to.
    NoValue,
}

impl Pseudo {
    fn name(self) -> &'static str {
        match self {
            Pseudo::AccountId => "AWS::AccountId",
            Pseudo::Region => "AWS::Region",
            Pseudo::Partition => "AWS::Partition",
            Pseudo::StackName => "AWS::StackName",
            Pseudo::StackId => "AWS::StackId",
            Pseudo::UrlSuffix => "AWS::URLSuffix",
            Pseudo::NoValue => "AWS::NoValue",
        }
    }
}

/// A string-valued template expression: a literal or an intrinsic function.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A literal string.
    Lit(String),
    /// `Ref` to a resource or parameter of the same template.
    Ref(LogicalId),
    /// `Ref` to a pseudo parameter.
    Pseudo(Pseudo),
    /// `Fn::GetAtt` of a resource attribute.
    GetAtt(LogicalId, &'static str),
    /// `Fn::Join` with a delimiter.
    Join(String, Vec<Expr>),
    /// `Fn::Select` of the n-th element of a list expression.
    Select(u32, Box<ListExpr>),
    /// `Fn::If`: the first expression when the condition holds, else the second (use
    /// [`Pseudo::NoValue`] to leave the property out).
    If(Condition, Box<Expr>, Box<Expr>),
}

/// A list-valued template expression.
#[derive(Clone, Debug, PartialEq)]
pub enum ListExpr {
    /// `Fn::GetAZs` for the stack's region.
    GetAzs,
    /// `Fn::Split` of a string expression.
    Split(String, Expr),
    /// `Fn::Cidr`: `count` blocks with `bits` host bits carved from `ip_block`.
    Cidr(Expr, u32, u32),
    /// `Fn::GetAtt` of a list-valued resource attribute.
    GetAtt(LogicalId, &'static str),
}

/// A condition of the template's `Conditions` section, as returned by
/// [`Template::condition`](super::Template::condition). Resources
/// ([`Attributes::with_condition`](super::Attributes::with_condition)), `Fn::If` and
/// other conditions refer to it by this handle, so a condition that is not in the
/// template cannot be named by the constructs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition(pub(super) LogicalId);

impl Condition {
    /// The condition's name in the `Conditions` section.
    pub fn id(&self) -> &LogicalId {
        &self.0
    }
}

/// The value of a `Conditions` entry: a boolean built from `Fn::Equals`, `Fn::Not`,
/// `Fn::And`, `Fn::Or` and other conditions. CloudFormation evaluates conditions before
/// creating anything, so they may use parameters and pseudo parameters but no resource
/// (checked by [`Template::check`](super::Template::check)).
#[derive(Clone, Debug, PartialEq)]
pub enum ConditionExpr {
    /// `Fn::Equals`: the two values are equal.
    Equals(Expr, Expr),
    /// `Fn::Not`.
    Not(Box<ConditionExpr>),
    /// `Fn::And` of 2 to 10 conditions.
    And(Vec<ConditionExpr>),
    /// `Fn::Or` of 2 to 10 conditions.
    Or(Vec<ConditionExpr>),
    /// Another condition of the template (`{"Condition": "Name"}`).
    Condition(Condition),
}

impl Expr {
    /// A literal string.
    pub fn lit(s: impl Into<String>) -> Expr {
        Expr::Lit(s.into())
    }

    /// `Fn::Join` with an empty delimiter: concatenation.
    pub fn concat(parts: Vec<Expr>) -> Expr {
        Expr::Join(String::new(), parts)
    }

    /// `Fn::Select` of `index` from `list`.
    pub fn select(index: u32, list: ListExpr) -> Expr {
        Expr::Select(index, Box::new(list))
    }

    /// `arn:${Partition}:service:${Region}:${AccountId}:resource`, built with `Fn::Join`.
    pub fn arn(service: &str, resource: Expr) -> Expr {
        Expr::concat(vec![
            Expr::lit("arn:"),
            Expr::Pseudo(Pseudo::Partition),
            Expr::lit(format!(":{service}:")),
            Expr::Pseudo(Pseudo::Region),
            Expr::lit(":"),
            Expr::Pseudo(Pseudo::AccountId),
            Expr::lit(":"),
            resource,
        ])
    }

    /// A CloudFormation dynamic reference to the whole string value of a secret.
    ///
    /// CloudFormation resolves it at deploy time and never shows the value in the
    /// template, events or the console, which is what a database master password needs.
    pub fn resolve_secret(secret_arn: Expr) -> Expr {
        Expr::concat(vec![
            Expr::lit("{{resolve:secretsmanager:"),
            secret_arn,
            Expr::lit(":SecretString}}"),
        ])
    }

    /// A dynamic reference to one key of a JSON secret.
    pub fn resolve_secret_key(secret_arn: Expr, key: &str) -> Expr {
        Expr::concat(vec![
            Expr::lit("{{resolve:secretsmanager:"),
            secret_arn,
            Expr::lit(format!(":SecretString:{key}}}}}")),
        ])
    }

    /// `Fn::If` on `condition`.
    pub fn if_else(condition: &Condition, then: Expr, otherwise: Expr) -> Expr {
        Expr::If(condition.clone(), Box::new(then), Box::new(otherwise))
    }

    /// Every logical id this expression refers to, for dangling-reference checks.
    pub fn references(&self, out: &mut Vec<LogicalId>) {
        match self {
            Expr::Lit(_) | Expr::Pseudo(_) => {}
            Expr::Ref(id) | Expr::GetAtt(id, _) => out.push(id.clone()),
            Expr::Join(_, parts) => parts.iter().for_each(|p| p.references(out)),
            Expr::Select(_, list) => list.references(out),
            Expr::If(_, a, b) => {
                a.references(out);
                b.references(out);
            }
        }
    }
}

impl ListExpr {
    fn references(&self, out: &mut Vec<LogicalId>) {
        match self {
            ListExpr::GetAzs => {}
            ListExpr::Split(_, e) => e.references(out),
            ListExpr::Cidr(e, _, _) => e.references(out),
            ListExpr::GetAtt(id, _) => out.push(id.clone()),
        }
    }
}

impl ConditionExpr {
    /// `Fn::Equals` of two values.
    pub fn equals(a: impl Into<Expr>, b: impl Into<Expr>) -> ConditionExpr {
        ConditionExpr::Equals(a.into(), b.into())
    }

    /// The condition named by a handle.
    pub fn holds(condition: &Condition) -> ConditionExpr {
        ConditionExpr::Condition(condition.clone())
    }

    /// Visits every value compared by `Fn::Equals` and every condition named, depth
    /// first, for the checks of [`Template::check`](super::Template::check).
    pub(super) fn visit<'a>(
        &'a self,
        values: &mut Vec<&'a Expr>,
        conditions: &mut Vec<&'a Condition>,
    ) {
        match self {
            ConditionExpr::Equals(a, b) => values.extend([a, b]),
            ConditionExpr::Not(c) => c.visit(values, conditions),
            ConditionExpr::And(cs) | ConditionExpr::Or(cs) => {
                cs.iter().for_each(|c| c.visit(values, conditions))
            }
            ConditionExpr::Condition(c) => conditions.push(c),
        }
    }

    /// The number of operands of every `Fn::And` and `Fn::Or` inside, for the arity
    /// check (CloudFormation takes 2 to 10).
    pub(super) fn arities(&self, out: &mut Vec<usize>) {
        match self {
            ConditionExpr::Equals(..) | ConditionExpr::Condition(_) => {}
            ConditionExpr::Not(c) => c.arities(out),
            ConditionExpr::And(cs) | ConditionExpr::Or(cs) => {
                out.push(cs.len());
                cs.iter().for_each(|c| c.arities(out));
            }
        }
    }
}

impl std::ops::Not for ConditionExpr {
    type Output = ConditionExpr;

    /// `Fn::Not`.
    fn not(self) -> ConditionExpr {
        ConditionExpr::Not(Box::new(self))
    }
}

impl From<&str> for Expr {
    fn from(s: &str) -> Expr {
        Expr::Lit(s.to_string())
    }
}

impl From<String> for Expr {
    fn from(s: String) -> Expr {
        Expr::Lit(s)
    }
}

/// Serialises `{"<name>": <value>}`.
fn single<S: Serializer, V: Serialize + ?Sized>(
    s: S,
    name: &str,
    value: &V,
) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(1))?;
    map.serialize_entry(name, value)?;
    map.end()
}

/// A two-element heterogeneous JSON array, as several intrinsics take.
struct Pair<'a, A: Serialize + ?Sized, B: Serialize + ?Sized>(&'a A, &'a B);

impl<A: Serialize + ?Sized, B: Serialize + ?Sized> Serialize for Pair<'_, A, B> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(2))?;
        seq.serialize_element(self.0)?;
        seq.serialize_element(self.1)?;
        seq.end()
    }
}

impl Serialize for Expr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Expr::Lit(v) => s.serialize_str(v),
            Expr::Ref(id) => single(s, "Ref", id.as_str()),
            Expr::Pseudo(p) => single(s, "Ref", p.name()),
            Expr::GetAtt(id, attr) => single(s, "Fn::GetAtt", &Pair(id.as_str(), *attr)),
            Expr::Join(delim, parts) => single(s, "Fn::Join", &Pair(delim, parts)),
            Expr::Select(i, list) => single(s, "Fn::Select", &Pair(&i.to_string(), list.as_ref())),
            Expr::If(cond, a, b) => single(s, "Fn::If", &(cond.0.as_str(), a.as_ref(), b.as_ref())),
        }
    }
}

impl Serialize for ListExpr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ListExpr::GetAzs => single(s, "Fn::GetAZs", ""),
            ListExpr::Split(delim, e) => single(s, "Fn::Split", &Pair(delim, e)),
            ListExpr::Cidr(block, count, bits) => {
                single(s, "Fn::Cidr", &(block, count.to_string(), bits.to_string()))
            }
            ListExpr::GetAtt(id, attr) => single(s, "Fn::GetAtt", &Pair(id.as_str(), *attr)),
        }
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl Serialize for ConditionExpr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ConditionExpr::Equals(a, b) => single(s, "Fn::Equals", &Pair(a, b)),
            ConditionExpr::Not(c) => single(s, "Fn::Not", &[c.as_ref()]),
            ConditionExpr::And(cs) => single(s, "Fn::And", cs),
            ConditionExpr::Or(cs) => single(s, "Fn::Or", cs),
            ConditionExpr::Condition(c) => single(s, "Condition", c.0.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(s: &str) -> LogicalId {
        LogicalId::new(s).unwrap()
    }

    #[test]
    fn intrinsics_use_the_long_form() {
        let e = Expr::concat(vec![
            Expr::lit("s3://"),
            Expr::Ref(id("Bucket")),
            Expr::GetAtt(id("Db"), "Endpoint.Address"),
            Expr::Pseudo(Pseudo::Region),
        ]);
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"Fn::Join": ["", ["s3://", {"Ref": "Bucket"},
                {"Fn::GetAtt": ["Db", "Endpoint.Address"]}, {"Ref": "AWS::Region"}]]})
        );
    }

    #[test]
    fn select_cidr_and_azs_serialise_as_cloudformation_expects() {
        let az = Expr::select(1, ListExpr::GetAzs);
        assert_eq!(
            serde_json::to_value(&az).unwrap(),
            json!({"Fn::Select": ["1", {"Fn::GetAZs": ""}]})
        );
        let cidr = Expr::select(0, ListExpr::Cidr(Expr::lit("10.0.0.0/16"), 4, 12));
        assert_eq!(
            serde_json::to_value(&cidr).unwrap(),
            json!({"Fn::Select": ["0", {"Fn::Cidr": ["10.0.0.0/16", "4", "12"]}]})
        );
    }

    #[test]
    fn references_are_collected_through_nesting() {
        let e = Expr::If(
            Condition(id("C")),
            Box::new(Expr::Ref(id("A"))),
            Box::new(Expr::select(
                0,
                ListExpr::Split(",".into(), Expr::GetAtt(id("B"), "X")),
            )),
        );
        let mut refs = Vec::new();
        e.references(&mut refs);
        assert_eq!(refs, vec![id("A"), id("B")]);
    }

    #[test]
    fn conditions_serialise_in_the_long_form() {
        let prod = Condition(id("IsProd"));
        let c = ConditionExpr::And(vec![
            ConditionExpr::equals(Expr::Ref(id("Shape")), "prod"),
            !ConditionExpr::holds(&prod),
        ]);
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"Fn::And": [{"Fn::Equals": [{"Ref": "Shape"}, "prod"]},
                {"Fn::Not": [{"Condition": "IsProd"}]}]})
        );
        let e = Expr::if_else(&prod, "a".into(), Expr::Pseudo(Pseudo::NoValue));
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"Fn::If": ["IsProd", "a", {"Ref": "AWS::NoValue"}]})
        );
    }

    #[test]
    fn list_attributes_are_get_att_lists() {
        let l = ListExpr::GetAtt(id("Vpc"), "Ipv6CidrBlocks");
        assert_eq!(
            serde_json::to_value(&l).unwrap(),
            json!({"Fn::GetAtt": ["Vpc", "Ipv6CidrBlocks"]})
        );
        let mut refs = Vec::new();
        Expr::select(0, l).references(&mut refs);
        assert_eq!(refs, vec![id("Vpc")]);
    }
}
