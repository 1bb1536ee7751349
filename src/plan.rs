//! What a deploy would change, decided from the deployed and the new template (and the
//! change set's replacement flags when CloudFormation provides them): resources
//! added, modified (with replacement predicted, then confirmed) and removed, changes
//! that broaden access (new IAM statements, new ingress rules), changes that can
//! destroy data, and a lowered Airflow version.
//! Pure functions, no I/O: `diff`, `deploy` and their tests share them.
//!
//! # Replacement from the templates alone
//!
//! CloudFormation replaces a resource (a new physical resource, the old one deleted)
//! when an update changes a property whose "Update requires" is Replacement ("Update
//! behaviors of stack resources", CloudFormation User Guide,
//! `using-cfn-updating-stacks-update-behaviors.html`); "if you're adding or removing a
//! property that requires a replacement, it will also trigger an update ... even if
//! the real value of the property doesn't change". The resource provider schema lists
//! those properties as `createOnlyProperties` ("properties that can be specified by the
//! user only during resource creation"), and the ones that are create-only for some
//! changes only as `conditionalCreateOnlyProperties` ("the resource will be replaced if
//! it cannot be updated"; CloudFormation CLI User Guide, `resource-type-schema.html`).
//! [`crate::cfn::l1`] carries both lists for every generated resource type, so [`diff`]
//! predicts, per modified resource:
//!
//! - [`Replacement::Yes`]: a create-only property's literal value changes, appears or
//!   disappears, or the resource type changes;
//! - [`Replacement::Conditional`]: a create-only property changes but its old or new
//!   value is resolved at deploy time (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`...,
//!   or a `{{resolve:...}}` dynamic reference), so the resolved value may be the same;
//!   or it refers to a resource that is itself replaced (or may be); or a conditionally
//!   create-only property changes. This is CloudFormation's own "Conditional": a
//!   change set says `Replacement: Conditional` when `RequiresRecreation` is `Always`
//!   but the evaluation is `Dynamic`, "because it depends on the result of an intrinsic
//!   function ... For example, if your template includes a reference to a resource
//!   that's conditionally recreated, the value of the reference ... might change"
//!   (CloudFormation API Reference, `ResourceChange` and `ResourceChangeDetail`);
//! - [`Replacement::No`]: only other properties change;
//! - [`Replacement::Unknown`]: the type has no generated schema (custom resources
//!   `Custom::*`, types outside the generator's allow-list).
//!
//! A resource whose template text is unchanged is still modified when one of its
//! properties refers to a resource that is replaced (its `Ref` or attributes change),
//! and listed as such. Scalars compare by their text (`5432` equals `"5432"`): the
//! schema, not the JSON type, gives a property its type, so a template rewritten with
//! other JSON types (as the generated L1 layer does) is not predicted to replace
//! anything; this is a judgement, and the change set checks it.
//!
//! The change set is CloudFormation's answer; [`Plan::with_replacements`] keeps it over
//! the prediction, and [`render`] shows where the two disagree.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use airflow_stack_contract::migration::{property::AIRFLOW_VERSION, RESOURCE_TYPE as MIGRATION};
use airflow_stack_contract::version::Version;
use serde_json::Value;

use crate::cfn::l1;

/// What happens to one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// A new resource.
    Add,
    /// Changed properties or attributes.
    Modify,
    /// The resource leaves the template.
    Remove,
}

/// Whether a modification replaces the physical resource. Ordered by impact, as
/// CloudFormation orders `RequiresRecreation`: `No` < `Conditional` < `Yes`
/// (`Unknown` sorts first and never wins over an answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Replacement {
    /// Not known: no schema for the type, or no answer in the change set.
    Unknown,
    /// Not replaced.
    No,
    /// Replaced depending on a value known only at deploy time.
    Conditional,
    /// Replaced: a new physical resource, the old one deleted.
    Yes,
}

impl Replacement {
    /// Replaced or possibly replaced.
    pub fn may_replace(self) -> bool {
        matches!(self, Replacement::Yes | Replacement::Conditional)
    }

    /// In words, for the disagreement note.
    fn word(self) -> &'static str {
        match self {
            Replacement::Yes => "replacement",
            Replacement::Conditional => "possible replacement",
            Replacement::No => "in place",
            Replacement::Unknown => "unknown",
        }
    }
}

/// One resource's change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceChange {
    /// Logical id.
    pub logical_id: String,
    /// Resource type in the new template (the old one for a removal).
    pub resource_type: String,
    /// Add, modify or remove.
    pub action: Action,
    /// The answer: the prediction, or the change set's flag once applied.
    pub replacement: Replacement,
    /// What the template comparison alone predicted.
    pub predicted: Replacement,
    /// Why the prediction is what it is, for a person: the create-only properties that
    /// change (`DBName changes`), the replaced resources referred to, or why nothing
    /// could be predicted. Empty when nothing forces a replacement.
    pub causes: Vec<String>,
    /// `replacement` is CloudFormation's answer from a change set.
    pub confirmed: bool,
}

impl ResourceChange {
    /// Holds data that a deletion or replacement loses: databases, buckets, secrets.
    pub fn is_stateful(&self) -> bool {
        STATEFUL_TYPES.contains(&self.resource_type.as_str())
    }

    /// Deletes or may replace the physical resource.
    pub fn is_destructive(&self) -> bool {
        self.action == Action::Remove || self.replacement.may_replace()
    }

    /// The change set answered differently from the prediction (a prediction of
    /// `Unknown` is no prediction, so it cannot be contradicted).
    pub fn contradicts_prediction(&self) -> bool {
        self.confirmed
            && self.predicted != Replacement::Unknown
            && self.replacement != self.predicted
    }
}

/// Resource types whose deletion or replacement loses data.
pub const STATEFUL_TYPES: &[&str] = &[
    "AWS::RDS::DBCluster",
    "AWS::RDS::DBInstance",
    "AWS::S3::Bucket",
    "AWS::SecretsManager::Secret",
    "AWS::DynamoDB::Table",
];

/// The Airflow version of the migration resource going down. The migration runs
/// nothing on a lower version (so that a failed upgrade can roll back, see
/// `airflow_stack_contract::version`), so the older services would meet the newer
/// schema: lowering it is a deliberate `airflow db downgrade`, hence approval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Downgrade {
    /// The migration resource.
    pub logical_id: String,
    /// The deployed version.
    pub from: String,
    /// The lower version this deploy brings.
    pub to: String,
}

/// The changes between two templates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Resource changes, additions first, then modifications and removals, each by
    /// logical id.
    pub changes: Vec<ResourceChange>,
    /// Human-readable descriptions of changes that widen access or change what code
    /// runs with the stack's secrets.
    pub broadening: Vec<String>,
    /// Parameters or outputs differ (no resource may change).
    pub other_changes: bool,
    /// The Airflow version goes down.
    pub downgrade: Option<Downgrade>,
    /// The new template's resource types, to describe a change only the change set
    /// reports (a parameter's new value changes a resource whose text is the same).
    new_types: BTreeMap<String, String>,
}

/// What `--fail-on` and the approval prompt look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailOn {
    /// Any change.
    Any,
    /// New IAM grants, trust, managed policies, invoke permissions or ingress rules, or
    /// new code or configuration where the stack's secrets are.
    Broadening,
    /// Deletion or replacement of any resource.
    Destructive,
}

impl Plan {
    /// No change at all.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && !self.other_changes
    }

    /// Changes that delete or replace resources holding data.
    pub fn data_destructive(&self) -> Vec<&ResourceChange> {
        self.changes
            .iter()
            .filter(|c| c.is_destructive() && c.is_stateful())
            .collect()
    }

    /// Whether the plan matches a `--fail-on` condition.
    pub fn matches(&self, condition: FailOn) -> bool {
        match condition {
            FailOn::Any => !self.is_empty(),
            FailOn::Broadening => !self.broadening.is_empty(),
            FailOn::Destructive => self.changes.iter().any(ResourceChange::is_destructive),
        }
    }

    /// Why a deploy of this plan needs the user's approval; empty when it does not.
    /// Broadening is summarised per resource (a new stack adds dozens of statements);
    /// `diff` shows every statement. Replacements count from the prediction on, so a
    /// predicted replacement of the database needs approval before any change set.
    pub fn approval_reasons(&self) -> Vec<String> {
        let mut per_resource: BTreeMap<&str, usize> = BTreeMap::new();
        for b in &self.broadening {
            let resource = b.split_once(':').map_or(b.as_str(), |(r, _)| r);
            *per_resource.entry(resource).or_default() += 1;
        }
        let mut reasons: Vec<String> = per_resource
            .into_iter()
            .map(|(resource, n)| {
                let what = if n == 1 { "change" } else { "changes" };
                format!("broadens access or what runs with its secrets: {resource} ({n} {what})")
            })
            .collect();
        for c in self.data_destructive() {
            let what = match (c.action, c.replacement) {
                (Action::Remove, _) => "deletes",
                (_, Replacement::Yes) => "replaces",
                _ => "may replace",
            };
            let why = if c.action == Action::Remove || c.causes.is_empty() {
                String::new()
            } else {
                format!(": {}", c.causes.join("; "))
            };
            reasons.push(format!(
                "{what} {} ({}), which holds data{why}",
                c.logical_id, c.resource_type
            ));
        }
        if let Some(d) = &self.downgrade {
            reasons.push(format!(
                "lowers the Airflow version from {} to {} ({}): the migration does not \
                 downgrade the database schema",
                d.from, d.to, d.logical_id
            ));
        }
        reasons
    }

    /// Applies CloudFormation's replacement flags from a change set: its answer
    /// replaces the prediction of each modification. A flag for a resource the
    /// template comparison did not list (a parameter changed it) adds the modification,
    /// predicted in place. Flags of additions and removals carry no replacement and
    /// are ignored, as are `Unknown` flags (no answer).
    pub fn with_replacements(mut self, flags: &BTreeMap<String, Replacement>) -> Plan {
        for (id, flag) in flags {
            if *flag == Replacement::Unknown {
                continue;
            }
            match self.changes.iter_mut().find(|c| &c.logical_id == id) {
                Some(change) if change.action == Action::Modify => {
                    change.replacement = *flag;
                    change.confirmed = true;
                }
                Some(_) => {}
                None => {
                    if let Some(resource_type) = self.new_types.get(id) {
                        self.changes.push(ResourceChange {
                            logical_id: id.clone(),
                            resource_type: resource_type.clone(),
                            action: Action::Modify,
                            replacement: *flag,
                            predicted: Replacement::No,
                            causes: Vec::new(),
                            confirmed: true,
                        });
                    }
                }
            }
        }
        sort(&mut self.changes);
        self
    }
}

/// Additions, modifications, removals, each by logical id.
fn sort(changes: &mut [ResourceChange]) {
    changes.sort_by(|a, b| (a.action, &a.logical_id).cmp(&(b.action, &b.logical_id)));
}

/// A template [`diff`] cannot read. Both templates come from CloudFormation (the
/// deployed one) or from `synth` (the new one), so this is a bug, never user input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// No `Resources` object.
    #[error("the {which} template has no Resources object")]
    NoResources {
        /// `deployed` or `new`.
        which: &'static str,
    },
    /// A resource entry without a string `Type`.
    #[error("the {which} template's resource {logical_id} has no Type")]
    NoType {
        /// `deployed` or `new`.
        which: &'static str,
        /// The entry.
        logical_id: String,
    },
}

/// One resource entry, read: its type and properties (`Null` when it has none).
struct Entry<'a> {
    type_name: &'a str,
    properties: &'a Value,
    whole: &'a Value,
}

/// The template's resources by logical id; missing `Resources` or `Type` is an error.
fn resources<'a>(
    template: &'a Value,
    which: &'static str,
) -> Result<BTreeMap<&'a str, Entry<'a>>, PlanError> {
    let entries = template
        .get("Resources")
        .and_then(Value::as_object)
        .ok_or(PlanError::NoResources { which })?;
    entries
        .iter()
        .map(|(id, whole)| {
            let type_name =
                whole
                    .get("Type")
                    .and_then(Value::as_str)
                    .ok_or_else(|| PlanError::NoType {
                        which,
                        logical_id: id.clone(),
                    })?;
            let properties = whole.get("Properties").unwrap_or(&Value::Null);
            Ok((
                id.as_str(),
                Entry {
                    type_name,
                    properties,
                    whole,
                },
            ))
        })
        .collect()
}

/// Compares a deployed template (`None` for a new stack) with a new one.
///
/// # Panics
///
/// When a template has no `Resources` object or a resource no `Type`: neither can come
/// from CloudFormation or `synth`. [`try_diff`] returns the error instead.
pub fn diff(old: Option<&Value>, new: &Value) -> Plan {
    try_diff(old, new).unwrap_or_else(|e| panic!("cannot compare the templates: {e}"))
}

/// Compares a deployed template (`None` for a new stack) with a new one, predicting
/// each modification's replacement from the resource schemas (see the module docs).
pub fn try_diff(old: Option<&Value>, new: &Value) -> Result<Plan, PlanError> {
    let after = resources(new, "new")?;
    let before = match old {
        Some(old) => resources(old, "deployed")?,
        None => BTreeMap::new(),
    };
    let mut changes = Vec::new();
    for (id, res) in &after {
        if !before.contains_key(id) {
            changes.push(ResourceChange {
                logical_id: id.to_string(),
                resource_type: res.type_name.to_string(),
                action: Action::Add,
                replacement: Replacement::No,
                predicted: Replacement::No,
                causes: Vec::new(),
                confirmed: false,
            });
        }
    }
    changes.extend(modifications(&before, &after));
    for (id, res) in &before {
        if !after.contains_key(id) {
            changes.push(ResourceChange {
                logical_id: id.to_string(),
                resource_type: res.type_name.to_string(),
                action: Action::Remove,
                replacement: Replacement::Yes,
                predicted: Replacement::Yes,
                causes: Vec::new(),
                confirmed: false,
            });
        }
    }
    sort(&mut changes);
    let empty = Value::Object(Default::default());
    let old = old.unwrap_or(&empty);
    let other_changes = ["Parameters", "Outputs", "Conditions", "Mappings"]
        .iter()
        .any(|k| old.get(k) != new.get(k));
    Ok(Plan {
        broadening: broadening(&before, &after),
        changes,
        other_changes,
        downgrade: downgrade(&before, &after),
        new_types: after
            .iter()
            .map(|(id, r)| (id.to_string(), r.type_name.to_string()))
            .collect(),
    })
}

/// Every resource in both templates that changes: its text differs, or it refers to a
/// resource that is (or may be) replaced. Replacement spreads through references, so
/// the predictions are recomputed until none changes; each pass can only raise a
/// prediction or add a resource, so this ends.
fn modifications(
    before: &BTreeMap<&str, Entry>,
    after: &BTreeMap<&str, Entry>,
) -> Vec<ResourceChange> {
    let mut found: BTreeMap<&str, (Replacement, Vec<String>)> = BTreeMap::new();
    loop {
        let replaced: BTreeMap<&str, Replacement> = found
            .iter()
            .filter(|(_, (r, _))| r.may_replace())
            .map(|(id, (r, _))| (*id, *r))
            .collect();
        let mut next = BTreeMap::new();
        for (id, new) in after {
            let Some(old) = before.get(id) else { continue };
            let text_changed = old.whole != new.whole;
            let refers_to_replaced = references(new.properties)
                .iter()
                .any(|r| replaced.contains_key(r.as_str()));
            if text_changed || refers_to_replaced {
                next.insert(*id, predict(old, new, &replaced));
            }
        }
        if next == found {
            break;
        }
        found = next;
    }
    found
        .into_iter()
        .map(|(id, (replacement, causes))| ResourceChange {
            logical_id: id.to_string(),
            resource_type: after[id].type_name.to_string(),
            action: Action::Modify,
            replacement,
            predicted: replacement,
            causes,
            confirmed: false,
        })
        .collect()
}

/// The replacement of one modified resource, with its causes.
fn predict(
    old: &Entry,
    new: &Entry,
    replaced: &BTreeMap<&str, Replacement>,
) -> (Replacement, Vec<String>) {
    if old.type_name != new.type_name {
        return (
            Replacement::Yes,
            // CloudFormation refuses the change set ("Update of resource type is not
            // permitted", aws/aws-sam-cli#6786): only a new logical id replaces it.
            vec![format!(
                "its type changes from {} to {}, which CloudFormation refuses in place \
                 (give the new resource a new logical id)",
                old.type_name, new.type_name
            )],
        );
    }
    let (Some(create_only), Some(conditional)) = (
        l1::create_only_properties(new.type_name),
        l1::conditional_create_only_properties(new.type_name),
    ) else {
        let why = if new.type_name.starts_with("Custom::") {
            "a custom resource, whose Lambda decides"
        } else {
            "no resource schema in src/cfn/l1 for this type"
        };
        return (Replacement::Unknown, vec![why.to_string()]);
    };
    let mut answer = Replacement::No;
    let mut causes = Vec::new();
    let pointers = create_only
        .iter()
        .map(|p| (p, true))
        .chain(conditional.iter().map(|p| (p, false)));
    for (pointer, always) in pointers {
        let Some(segments) = segments(pointer) else {
            continue; // not a property (the schemas list only /properties/...)
        };
        let name = segments.join(".");
        let (was, is) = (
            project(old.properties, &segments),
            project(new.properties, &segments),
        );
        let (level, cause) = if !same(&was, &is) {
            if !always {
                let c = format!("{name} changes (replaces the resource for some changes)");
                (Replacement::Conditional, c)
            } else if is_dynamic(&was) || is_dynamic(&is) {
                let c = format!("{name} changes, to a value resolved at deploy time");
                (Replacement::Conditional, c)
            } else {
                (Replacement::Yes, format!("{name} changes"))
            }
        } else {
            let refs: Vec<String> = references(&is)
                .into_iter()
                .filter(|r| replaced.contains_key(r.as_str()))
                .collect();
            if refs.is_empty() {
                continue;
            }
            let c = format!(
                "{name} refers to {}, which may be replaced",
                refs.join(", ")
            );
            (Replacement::Conditional, c)
        };
        answer = answer.max(level);
        causes.push(cause);
    }
    (answer, causes)
}

/// `/properties/Foo/Bar` as `["Foo", "Bar"]` (RFC 6901 unescaped); `None` for a pointer
/// outside `/properties`.
fn segments(pointer: &str) -> Option<Vec<String>> {
    let rest = pointer.strip_prefix("/properties/")?;
    Some(
        rest.split('/')
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect(),
    )
}

/// The part of `properties` a pointer designates: `Null` where absent, and for a `*`
/// segment the projections of every element of a list (or value of a map).
fn project(value: &Value, segments: &[String]) -> Value {
    let Some((first, rest)) = segments.split_first() else {
        return value.clone();
    };
    match (first.as_str(), value) {
        ("*", Value::Array(items)) => items.iter().map(|v| project(v, rest)).collect(),
        ("*", Value::Object(map)) => map.values().map(|v| project(v, rest)).collect(),
        (key, Value::Object(map)) => map.get(key).map_or(Value::Null, |v| project(v, rest)),
        _ => Value::Null,
    }
}

/// Equal as CloudFormation passes them to a resource provider: scalars by their text.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, a)| y.get(k).is_some_and(|b| same(a, b)))
        }
        (Value::Null, _) | (_, Value::Null) => a == b,
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => false,
        _ => scalar_text(a) == scalar_text(b),
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An intrinsic function (`{"Ref": ...}`, `{"Fn::...": ...}`) or a dynamic reference
/// (`{{resolve:...}}`) anywhere in the value: CloudFormation resolves it at deploy time.
fn is_dynamic(value: &Value) -> bool {
    match value {
        Value::Object(map) => intrinsic(map).is_some() || map.values().any(is_dynamic),
        Value::Array(items) => items.iter().any(is_dynamic),
        Value::String(s) => s.contains("{{resolve:"),
        _ => false,
    }
}

/// The function name when `map` is an intrinsic function call.
fn intrinsic(map: &serde_json::Map<String, Value>) -> Option<&str> {
    let mut keys = map.keys();
    match (keys.next(), keys.next()) {
        (Some(k), None) if k == "Ref" || k.starts_with("Fn::") => Some(k),
        _ => None,
    }
}

/// The logical ids of the resources a value refers to: `Ref`, `Fn::GetAtt` and the
/// `${Name}` / `${Name.Attribute}` of `Fn::Sub`. Pseudo parameters (`AWS::...`) are
/// not resources; template parameters, which a `Ref` can name too, never match a
/// resource id (logical ids are unique across both sections).
fn references(value: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    collect_references(value, &mut out);
    out.retain(|id| !id.starts_with("AWS::"));
    out
}

fn collect_references(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => match (intrinsic(map), map.values().next()) {
            (Some("Ref"), Some(Value::String(id))) => {
                out.insert(id.clone());
            }
            (Some("Fn::GetAtt"), Some(Value::Array(parts))) => {
                if let Some(Value::String(id)) = parts.first() {
                    out.insert(id.clone());
                }
            }
            (Some("Fn::GetAtt"), Some(Value::String(dotted))) => {
                let id = dotted.split_once('.').map_or(dotted.as_str(), |(id, _)| id);
                out.insert(id.to_string());
            }
            (Some("Fn::Sub"), Some(Value::String(text))) => sub_names(text, &[], out),
            (Some("Fn::Sub"), Some(Value::Array(parts))) => {
                let local: Vec<&str> = parts
                    .get(1)
                    .and_then(Value::as_object)
                    .map(|vars| vars.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                if let Some(Value::String(text)) = parts.first() {
                    sub_names(text, &local, out);
                }
                for var in parts.iter().skip(1) {
                    collect_references(var, out);
                }
            }
            _ => map.values().for_each(|v| collect_references(v, out)),
        },
        Value::Array(items) => items.iter().for_each(|v| collect_references(v, out)),
        _ => {}
    }
}

/// The resources named by `${Name}` or `${Name.Attribute}` in an `Fn::Sub` string,
/// except `${!Literal}` and the variables the `Fn::Sub` defines itself.
fn sub_names(text: &str, local: &[&str], out: &mut BTreeSet<String>) {
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find('}') else { break };
        let name = &rest[..end];
        rest = &rest[end + 1..];
        if name.starts_with('!') {
            continue;
        }
        let id = name.split_once('.').map_or(name, |(id, _)| id);
        if !local.contains(&id) {
            out.insert(id.to_string());
        }
    }
}

/// The Airflow version of the migration resource going down between the templates,
/// compared as release numbers (3.10.0 > 3.9.9) by the same function the migration
/// Lambda uses. A version that is not a release number cannot be ordered and is not
/// reported (`validate` accepts only release numbers).
fn downgrade(before: &BTreeMap<&str, Entry>, after: &BTreeMap<&str, Entry>) -> Option<Downgrade> {
    after
        .iter()
        .filter(|(_, new)| new.type_name == MIGRATION)
        .find_map(|(id, new)| {
            let old = before.get(id).filter(|old| old.type_name == MIGRATION)?;
            let from = old.properties.get(AIRFLOW_VERSION)?.as_str()?;
            let to = new.properties.get(AIRFLOW_VERSION)?.as_str()?;
            (Version::compare(from, to)? == Ordering::Less).then(|| Downgrade {
                logical_id: id.to_string(),
                from: from.to_string(),
                to: to.to_string(),
            })
        })
}
/// What widens who can do what, or changes what code runs with the stack's secrets,
/// described for a person: new ingress rules; new allow grants in identity policies,
/// trust policies and resource policies; new managed policies; new or changed Lambda
/// invoke permissions; and, in task definitions whose containers receive secrets and in
/// Lambda functions, a new image, command, entry point, environment or code.
fn broadening(before: &BTreeMap<&str, Entry>, after: &BTreeMap<&str, Entry>) -> Vec<String> {
    let mut found = Vec::new();
    for (id, res) in after {
        let prev = before.get(id).map(|p| p.whole);
        match res.type_name {
            "AWS::EC2::SecurityGroupIngress" if prev != Some(res.whole) => {
                found.push(describe_ingress(id, res.properties))
            }
            "AWS::EC2::SecurityGroup" => {
                let old_rules = prev
                    .map(|p| rule_set(&p["Properties"]["SecurityGroupIngress"]))
                    .unwrap_or_default();
                for rule in rule_set(&res.properties["SecurityGroupIngress"]).difference(&old_rules)
                {
                    found.push(format!("{id}: new inline ingress rule {rule}"));
                }
            }
            "AWS::Lambda::Permission" if prev != Some(res.whole) => found.push(format!(
                "{id}: {} may invoke {} (source {})",
                res.properties["Principal"],
                res.properties["FunctionName"],
                res.properties["SourceArn"]
            )),
            "AWS::ECS::TaskDefinition" => found.extend(code_with_secrets(id, prev, res.whole)),
            "AWS::Lambda::Function" => {
                if let Some(prev) = prev {
                    found.extend(changed_fields(
                        id,
                        &prev["Properties"],
                        res.properties,
                        &["Code", "Handler", "Runtime", "Layers", "Environment"],
                        "the function's",
                    ));
                }
            }
            _ if is_policy_holder(res.type_name) => {
                let old_statements = prev.map(allow_statements).unwrap_or_default();
                for statement in allow_statements(res.whole).difference(&old_statements) {
                    found.push(format!("{id}: new IAM statement {statement}"));
                }
                let old_trust = prev.map(trust_statements).unwrap_or_default();
                for statement in trust_statements(res.whole).difference(&old_trust) {
                    found.push(format!("{id}: new trust {statement}"));
                }
                let old_managed = prev.map(managed_policies).unwrap_or_default();
                for arn in managed_policies(res.whole).difference(&old_managed) {
                    found.push(format!("{id}: new managed policy {arn}"));
                }
            }
            _ => {}
        }
    }
    found
}

/// Resource types that carry IAM policy documents: roles, users, groups, policies and
/// every resource policy (`AWS::S3::BucketPolicy`, `AWS::SNS::TopicPolicy`,
/// `AWS::SQS::QueuePolicy`, `AWS::SecretsManager::ResourcePolicy`, ...).
fn is_policy_holder(type_name: &str) -> bool {
    matches!(
        type_name,
        "AWS::IAM::Role" | "AWS::IAM::User" | "AWS::IAM::Group" | "AWS::IAM::Policy"
    ) || type_name.ends_with("Policy")
}

/// The trust policy's allow grants (`AssumeRolePolicyDocument`), as [`grants`] writes them.
fn trust_statements(resource: &Value) -> BTreeSet<String> {
    resource["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["Effect"] == "Allow")
        .flat_map(grants)
        .collect()
}

/// `ManagedPolicyArns`, each as compact JSON (an ARN may be an expression).
fn managed_policies(resource: &Value) -> BTreeSet<String> {
    rule_set(&resource["Properties"]["ManagedPolicyArns"])
}

/// A task definition's containers that receive secrets: a new one, or a change of what
/// such a container runs (image, command, entry point, environment), is code that runs
/// with the stack's secrets. Containers without secrets are not reported.
fn code_with_secrets(id: &str, prev: Option<&Value>, whole: &Value) -> Vec<String> {
    let containers = |resource: &Value| -> BTreeMap<String, Value> {
        resource["Properties"]["ContainerDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| (c["Name"].to_string(), c.clone()))
            .collect()
    };
    let old = prev.map(containers).unwrap_or_default();
    let mut found = Vec::new();
    for (name, container) in containers(whole) {
        let holds_secrets = container["Secrets"]
            .as_array()
            .is_some_and(|s| !s.is_empty());
        if !holds_secrets {
            continue;
        }
        match old.get(&name) {
            None => found.push(format!(
                "{id}: new container {name} with the stack's secrets, image {}",
                container["Image"]
            )),
            Some(before) => found.extend(changed_fields(
                id,
                before,
                &container,
                &["Image", "Command", "EntryPoint", "Environment"],
                &format!("container {name}'s (it receives the stack's secrets)"),
            )),
        }
    }
    found
}

/// One line per field of `fields` that differs between `old` and `new`.
fn changed_fields(id: &str, old: &Value, new: &Value, fields: &[&str], whose: &str) -> Vec<String> {
    fields
        .iter()
        .filter(|f| old[**f] != new[**f])
        .map(|f| format!("{id}: {whose} {f} changes to {}", short(&new[*f])))
        .collect()
}

/// A value for a one-line message: compact JSON, cut after 120 characters.
fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(120) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// One ingress rule for a person. Values print as JSON (`null` where absent: the rule
/// is described as written, not completed with guesses).
fn describe_ingress(id: &str, p: &Value) -> String {
    let source = if p["CidrIp"].is_string() {
        p["CidrIp"].to_string()
    } else {
        p["SourceSecurityGroupId"].to_string()
    };
    let protocol = match &p["IpProtocol"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    format!(
        "{id}: ingress {protocol} {}-{} to {} from {source}",
        p["FromPort"], p["ToPort"], p["GroupId"]
    )
}

fn rule_set(rules: &Value) -> BTreeSet<String> {
    rules
        .as_array()
        .into_iter()
        .flatten()
        .map(Value::to_string)
        .collect()
}

/// Every permission an `Allow` statement grants in a role's inline policies or a policy
/// document, one per action and resource (with the statement's principal and
/// condition), as compact JSON. Comparing grants rather than whole statements means a
/// statement that loses an action is not reported as a new one.
fn allow_statements(resource: &Value) -> BTreeSet<String> {
    let props = &resource["Properties"];
    let mut docs: Vec<&Value> = props["Policies"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| &p["PolicyDocument"])
        .collect();
    docs.push(&props["PolicyDocument"]);
    docs.iter()
        .flat_map(|d| d["Statement"].as_array().into_iter().flatten())
        .filter(|s| s["Effect"] == "Allow")
        .flat_map(grants)
        .collect()
}

/// `{"Action": a, "Resource": r, ...}` for each action and resource of a statement.
fn grants(statement: &Value) -> Vec<String> {
    let as_list = |v: &Value| match v {
        Value::Array(items) => items.clone(),
        Value::Null => vec![Value::Null],
        one => vec![one.clone()],
    };
    let mut out = Vec::new();
    for action in as_list(&statement["Action"]) {
        for resource in as_list(&statement["Resource"]) {
            let grant = serde_json::json!({
                "Action": action,
                "Resource": resource,
                "Principal": statement["Principal"],
                "Condition": statement["Condition"],
            });
            out.push(grant.to_string());
        }
    }
    out
}

/// What the table says about a modification's replacement: the answer, why, whether
/// it is a prediction, and, when the change set contradicted the prediction, what was
/// predicted.
fn replacement_note(c: &ResourceChange) -> String {
    let why = c.causes.join("; ");
    let answer = match c.replacement {
        Replacement::Yes => "REPLACES the resource",
        Replacement::Conditional => "may replace the resource",
        Replacement::No => "in place",
        // Never confirmed: `with_replacements` skips a change set's Unknown.
        Replacement::Unknown => return format!("  (replacement not predicted: {why})"),
    };
    if c.contradicts_prediction() {
        let why = if why.is_empty() {
            why
        } else {
            format!(" ({why})")
        };
        return format!(
            "  {answer} [the change set overrides the prediction: {}{why}]",
            c.predicted.word()
        );
    }
    match (c.replacement, c.confirmed, why.is_empty()) {
        (Replacement::No, _, _) => String::new(),
        (_, false, _) => format!("  {answer} (predicted: {why})"),
        (_, true, false) => format!("  {answer} ({why})"),
        (_, true, true) => format!("  {answer}"),
    }
}

/// The plan as a table and sections, for `diff` and `deploy`.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    if plan.is_empty() {
        out.push_str("No changes.\n");
        return out;
    }
    let width = plan
        .changes
        .iter()
        .map(|c| c.logical_id.len())
        .max()
        .unwrap_or(0)
        .max(8);
    if !plan.changes.is_empty() {
        let _ = writeln!(out, "Resources");
        for c in &plan.changes {
            let (mark, word) = match c.action {
                Action::Add => ("[+]", "add"),
                Action::Modify => ("[~]", "modify"),
                Action::Remove => ("[-]", "remove"),
            };
            let note = if c.action == Action::Modify {
                replacement_note(c)
            } else {
                String::new()
            };
            let data = if c.is_destructive() && c.is_stateful() {
                "  !! holds data"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                " {mark} {word:<6} {:<width$}  {}{note}{data}",
                c.logical_id, c.resource_type
            );
        }
    }
    if plan.other_changes {
        let _ = writeln!(out, "Parameters or outputs change.");
    }
    if let Some(d) = &plan.downgrade {
        let _ = writeln!(
            out,
            "\nThe Airflow version goes down from {} to {} ({}): the migration runs \
             nothing when the version goes down, so lower the schema first, deliberately \
             (`airflow db downgrade --to-version {}`, run with the {} image).",
            d.from, d.to, d.logical_id, d.to, d.from
        );
    }
    if !plan.broadening.is_empty() {
        let _ = writeln!(out, "\nSecurity-broadening changes");
        for b in &plan.broadening {
            let _ = writeln!(out, " [!] {b}");
        }
    }
    let counts = |a: Action| plan.changes.iter().filter(|c| c.action == a).count();
    let _ = writeln!(
        out,
        "\n{} to add, {} to modify, {} to remove.",
        counts(Action::Add),
        counts(Action::Modify),
        counts(Action::Remove)
    );
    let overridden = plan
        .changes
        .iter()
        .filter(|c| c.contradicts_prediction())
        .count();
    if overridden > 0 {
        let _ = writeln!(
            out,
            "The change set overrides {overridden} replacement prediction(s) made from the \
             templates; CloudFormation's answer is shown."
        );
    }
    out
}

/// The outcome of asking for approval.
#[derive(Debug, PartialEq, Eq)]
pub enum Approval {
    /// Go ahead.
    Proceed,
    /// The user said no at the prompt.
    Declined,
    /// Approval is needed and there is no terminal to ask on.
    Refused(String),
}

/// Decides whether to deploy: approval is needed for broadening or data-destructive
/// changes, unless `yes`; without a terminal it is refused with the reasons.
pub fn approve(
    plan: &Plan,
    yes: bool,
    is_terminal: bool,
    ask: impl FnOnce(&[String]) -> bool,
) -> Approval {
    let reasons = plan.approval_reasons();
    if reasons.is_empty() || yes {
        return Approval::Proceed;
    }
    if !is_terminal {
        return Approval::Refused(format!(
            "these changes need approval and there is no terminal to ask on:\n  {}\nre-run with --yes to approve them",
            reasons.join("\n  ")
        ));
    }
    if ask(&reasons) {
        Approval::Proceed
    } else {
        Approval::Declined
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(resources: Value) -> Value {
        json!({"Resources": resources})
    }

    fn ingress(port: u16) -> Value {
        json!({"Type": "AWS::EC2::SecurityGroupIngress", "Properties": {"GroupId": {"Ref": "A"}, "IpProtocol": "tcp", "FromPort": port, "ToPort": port, "SourceSecurityGroupId": {"Ref": "B"}}})
    }

    fn role(actions: &[&str]) -> Value {
        json!({"Type": "AWS::IAM::Role", "Properties": {"Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": [{"Effect": "Allow", "Action": actions, "Resource": ["arn:x"]}]}}]}})
    }

    fn db(properties: Value) -> Value {
        json!({"Type": "AWS::RDS::DBInstance", "Properties": properties})
    }

    /// The one change between `old` and `new` resource `R`.
    fn change(old: Value, new: Value) -> ResourceChange {
        let plan = diff(
            Some(&template(json!({ "R": old }))),
            &template(json!({ "R": new })),
        );
        assert_eq!(plan.changes.len(), 1, "{:#?}", plan.changes);
        plan.changes[0].clone()
    }

    #[test]
    fn added_modified_and_removed_resources_are_classified() {
        let old = template(
            json!({"Keep": {"Type": "T", "Properties": {"A": 1}}, "Change": {"Type": "T", "Properties": {"A": 1}}, "Gone": {"Type": "T"}}),
        );
        let new = template(
            json!({"Keep": {"Type": "T", "Properties": {"A": 1}}, "Change": {"Type": "T", "Properties": {"A": 2}}, "New": {"Type": "T"}}),
        );
        let plan = diff(Some(&old), &new);
        let summary: Vec<_> = plan
            .changes
            .iter()
            .map(|c| (c.logical_id.as_str(), c.action))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("New", Action::Add),
                ("Change", Action::Modify),
                ("Gone", Action::Remove)
            ]
        );
        assert!(plan.matches(FailOn::Any));
        assert!(
            plan.matches(FailOn::Destructive),
            "a removal is destructive"
        );
        assert!(!plan.matches(FailOn::Broadening));
    }

    #[test]
    fn identical_templates_are_no_change() {
        let t = template(json!({"A": {"Type": "T"}}));
        let plan = diff(Some(&t), &t);
        assert!(plan.is_empty());
        assert_eq!(render(&plan), "No changes.\n");
        assert!(!plan.matches(FailOn::Any));
    }

    #[test]
    fn a_template_without_resources_or_types_is_an_error_not_an_empty_plan() {
        let good = template(json!({"A": {"Type": "T"}}));
        assert_eq!(
            try_diff(Some(&json!({})), &good),
            Err(PlanError::NoResources { which: "deployed" })
        );
        assert_eq!(
            try_diff(None, &template(json!({"A": {"Properties": {}}}))),
            Err(PlanError::NoType {
                which: "new",
                logical_id: "A".into()
            })
        );
    }

    #[test]
    fn a_changed_create_only_literal_is_a_replacement() {
        let c = change(
            db(json!({"DBInstanceClass": "db.t4g.micro", "DBName": "airflow"})),
            db(json!({"DBInstanceClass": "db.t4g.micro", "DBName": "metadata"})),
        );
        assert_eq!(c.replacement, Replacement::Yes);
        assert_eq!(c.causes, vec!["DBName changes".to_string()]);
        // Adding or removing a create-only property replaces too (User Guide).
        let c = change(
            json!({"Type": "AWS::S3::Bucket", "Properties": {}}),
            json!({"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "data"}}),
        );
        assert_eq!(c.replacement, Replacement::Yes);
    }

    #[test]
    fn a_changed_property_that_is_not_create_only_is_in_place() {
        let c = change(
            db(json!({"DBInstanceClass": "db.t4g.micro", "DBName": "airflow"})),
            db(json!({"DBInstanceClass": "db.t4g.small", "DBName": "airflow"})),
        );
        assert_eq!((c.action, c.replacement), (Action::Modify, Replacement::No));
        assert!(c.causes.is_empty());
        // The same value written as a number instead of a string is not a change.
        let c = change(
            json!({"Type": "AWS::ElastiCache::ReplicationGroup", "Properties": {"Port": "6379", "CacheNodeType": "a"}}),
            json!({"Type": "AWS::ElastiCache::ReplicationGroup", "Properties": {"Port": 6379, "CacheNodeType": "b"}}),
        );
        assert_eq!(c.replacement, Replacement::No, "{:?}", c.causes);
    }

    #[test]
    fn a_create_only_change_through_an_intrinsic_is_conditional() {
        let c = change(
            db(json!({"DBSubnetGroupName": {"Ref": "GroupA"}})),
            db(json!({"DBSubnetGroupName": {"Ref": "GroupB"}})),
        );
        assert_eq!(c.replacement, Replacement::Conditional);
        assert_eq!(
            c.causes,
            vec!["DBSubnetGroupName changes, to a value resolved at deploy time".to_string()]
        );
        let c = change(
            db(json!({"DBName": "airflow"})),
            db(json!({"DBName": {"Fn::Join": ["", ["air", "flow"]]}})),
        );
        assert_eq!(c.replacement, Replacement::Conditional);
    }

    #[test]
    fn a_conditionally_create_only_change_is_conditional() {
        // Engine is in the DBInstance schema's conditionalCreateOnlyProperties.
        let c = change(
            db(json!({"Engine": "postgres"})),
            db(json!({"Engine": "mysql"})),
        );
        assert_eq!(c.replacement, Replacement::Conditional);
        assert_eq!(
            c.causes,
            vec!["Engine changes (replaces the resource for some changes)".to_string()]
        );
    }

    #[test]
    fn a_reference_to_a_replaced_resource_spreads_the_replacement() {
        let subnets = |desc: &str| {
            json!({"Type": "AWS::RDS::DBSubnetGroup", "Properties": {
                "DBSubnetGroupName": desc, "DBSubnetGroupDescription": "d", "SubnetIds": ["s"]}})
        };
        let old = template(json!({
            "Group": subnets("one"),
            "Db": db(json!({"DBSubnetGroupName": {"Ref": "Group"}})),
            "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"Tags": [{"Key": "db", "Value": {"Fn::GetAtt": ["Db", "Endpoint.Address"]}}]}},
        }));
        let mut new = old.clone();
        new["Resources"]["Group"] = subnets("two");
        let plan = diff(Some(&old), &new);
        let found: Vec<_> = plan
            .changes
            .iter()
            .map(|c| (c.logical_id.as_str(), c.replacement))
            .collect();
        // The group is replaced (its name is create-only); the database refers to it
        // in a create-only property, whose value may change: Conditional. The log
        // group refers to the database in an updatable property: modified in place.
        assert_eq!(
            found,
            vec![
                ("Db", Replacement::Conditional),
                ("Group", Replacement::Yes),
                ("Logs", Replacement::No),
            ]
        );
        let db_change = &plan.changes[0];
        assert_eq!(
            db_change.causes,
            vec!["DBSubnetGroupName refers to Group, which may be replaced".to_string()]
        );
        assert_eq!(
            plan.approval_reasons(),
            vec!["may replace Db (AWS::RDS::DBInstance), which holds data: DBSubnetGroupName refers to Group, which may be replaced".to_string()]
        );
    }

    #[test]
    fn references_come_from_ref_getatt_and_sub() {
        let v = json!({"A": {"Ref": "One"}, "B": [{"Fn::GetAtt": ["Two", "Arn"]}, {"Fn::GetAtt": "Three.Arn"}],
            "C": {"Fn::Sub": "arn:${AWS::Partition}:${Four}:${Five.Arn}:${!Literal}"},
            "D": {"Fn::Sub": ["${Local}-${Six}", {"Local": {"Ref": "Seven"}}]},
            "E": {"Ref": "AWS::Region"}});
        let found: Vec<String> = references(&v).into_iter().collect();
        assert_eq!(
            found,
            ["Five", "Four", "One", "Seven", "Six", "Three", "Two"]
        );
    }

    #[test]
    fn nested_and_list_pointers_are_followed() {
        let segs = segments("/properties/Foo/*/Bar").unwrap();
        let v = json!({"Foo": [{"Bar": 1, "Baz": 2}, {"Bar": 3}]});
        assert_eq!(project(&v, &segs), json!([1, 3]));
        assert_eq!(project(&json!({}), &segs), Value::Null);
        assert_eq!(
            segments("/properties/a~1b~0c"),
            Some(vec!["a/b~c".to_string()])
        );
        assert_eq!(segments("/definitions/X"), None);
    }

    #[test]
    fn an_unknown_type_is_unknown_and_says_why() {
        let c = change(
            json!({"Type": "Custom::Anything", "Properties": {"A": "1"}}),
            json!({"Type": "Custom::Anything", "Properties": {"A": "2"}}),
        );
        assert_eq!(c.replacement, Replacement::Unknown);
        assert_eq!(
            c.causes,
            vec!["a custom resource, whose Lambda decides".to_string()]
        );
        let c = change(
            json!({"Type": "AWS::Foo::Bar", "Properties": {"A": "1"}}),
            json!({"Type": "AWS::Foo::Bar", "Properties": {"A": "2"}}),
        );
        assert_eq!(c.replacement, Replacement::Unknown);
        assert!(render(&diff(
            Some(&template(
                json!({"R": {"Type": "AWS::Foo::Bar", "Properties": {"A": "1"}}})
            )),
            &template(json!({"R": {"Type": "AWS::Foo::Bar", "Properties": {"A": "2"}}}))
        ))
        .contains("(replacement not predicted: no resource schema in src/cfn/l1 for this type)"));
    }

    #[test]
    fn a_type_change_is_a_replacement_that_cloudformation_refuses() {
        let c = change(
            json!({"Type": "AWS::SQS::Queue"}),
            json!({"Type": "AWS::SNS::Topic"}),
        );
        assert_eq!(c.replacement, Replacement::Yes);
        assert_eq!(c.resource_type, "AWS::SNS::Topic");
        assert!(
            c.causes[0].contains("CloudFormation refuses in place"),
            "{:?}",
            c.causes
        );
    }

    #[test]
    fn a_new_ingress_rule_is_broadening_and_needs_approval() {
        let old = template(json!({"In1": ingress(5432)}));
        let new = template(json!({"In1": ingress(5432), "In2": ingress(22)}));
        let plan = diff(Some(&old), &new);
        assert_eq!(plan.broadening.len(), 1);
        assert!(
            plan.broadening[0].starts_with("In2: ingress tcp 22-22"),
            "{:?}",
            plan.broadening
        );
        assert!(plan.matches(FailOn::Broadening));
        assert!(render(&plan).contains("Security-broadening changes\n [!] In2: ingress tcp 22-22"));
        assert_eq!(plan.approval_reasons().len(), 1);
    }

    #[test]
    fn new_iam_statements_are_broadening_but_removed_ones_are_not() {
        let narrow = template(json!({"R": role(&["s3:GetObject"])}));
        let wide = template(json!({"R": role(&["s3:GetObject", "s3:PutObject"])}));
        assert_eq!(diff(Some(&narrow), &wide).broadening.len(), 1);
        assert!(diff(Some(&wide), &narrow).broadening.is_empty());
    }

    #[test]
    fn a_new_trust_policy_or_managed_policy_is_broadening() {
        let trust = |principal: &str| {
            json!({"Type": "AWS::IAM::Role", "Properties": {
                "AssumeRolePolicyDocument": {"Statement": [{"Effect": "Allow",
                    "Principal": {"Service": principal}, "Action": "sts:AssumeRole"}]}}})
        };
        let old = template(json!({"R": trust("ecs-tasks.amazonaws.com")}));
        let new = template(json!({"R": trust("lambda.amazonaws.com")}));
        let plan = diff(Some(&old), &new);
        assert_eq!(plan.broadening.len(), 1, "{:?}", plan.broadening);
        assert!(
            plan.broadening[0].starts_with("R: new trust"),
            "{:?}",
            plan.broadening
        );
        assert!(plan.broadening[0].contains("lambda.amazonaws.com"));
        assert!(diff(Some(&old), &old).broadening.is_empty());

        let mut managed = trust("ecs-tasks.amazonaws.com");
        managed["Properties"]["ManagedPolicyArns"] =
            json!(["arn:aws:iam::aws:policy/AdministratorAccess"]);
        let plan = diff(Some(&old), &template(json!({"R": managed})));
        assert_eq!(
            plan.broadening,
            ["R: new managed policy \"arn:aws:iam::aws:policy/AdministratorAccess\""]
        );
    }

    #[test]
    fn resource_policies_and_invoke_permissions_are_broadening() {
        let topic_policy = json!({"Type": "AWS::SNS::TopicPolicy", "Properties": {
            "Topics": [{"Ref": "T"}], "PolicyDocument": {"Statement": [{"Effect": "Allow",
            "Principal": "*", "Action": "sns:Publish", "Resource": {"Ref": "T"}}]}}});
        let plan = diff(
            Some(&template(json!({}))),
            &template(json!({"P": topic_policy})),
        );
        assert_eq!(plan.broadening.len(), 1, "{:?}", plan.broadening);
        assert!(plan.broadening[0].contains("sns:Publish"));

        let permission = |principal: &str| {
            json!({"Type": "AWS::Lambda::Permission", "Properties": {
                "Action": "lambda:InvokeFunction", "FunctionName": {"Ref": "F"},
                "Principal": principal}})
        };
        let old = template(json!({"P": permission("events.amazonaws.com")}));
        let new = template(json!({"P": permission("*")}));
        let plan = diff(Some(&old), &new);
        assert_eq!(plan.broadening.len(), 1);
        assert!(
            plan.broadening[0].starts_with("P: \"*\" may invoke"),
            "{:?}",
            plan.broadening
        );
        assert!(diff(Some(&old), &old).broadening.is_empty());
    }

    fn task_definition(image: &str, env: &str, secrets: bool) -> Value {
        let mut container = json!({"Name": "scheduler", "Image": image,
            "Environment": [{"Name": "X", "Value": env}]});
        if secrets {
            container["Secrets"] = json!([{"Name": "K", "ValueFrom": {"Ref": "S"}}]);
        }
        json!({"Type": "AWS::ECS::TaskDefinition", "Properties": {
            "ContainerDefinitions": [container]}})
    }

    #[test]
    fn new_code_or_environment_where_the_secrets_are_needs_approval() {
        let old = template(json!({"T": task_definition("apache/airflow:3.1.0", "a", true)}));
        let image = template(json!({"T": task_definition("evil/airflow:3.1.0", "a", true)}));
        let plan = diff(Some(&old), &image);
        assert_eq!(plan.broadening.len(), 1, "{:?}", plan.broadening);
        assert!(
            plan.broadening[0].contains("container \"scheduler\"'s (it receives the stack's secrets) Image changes to \"evil/airflow:3.1.0\""),
            "{:?}",
            plan.broadening
        );
        assert!(plan.matches(FailOn::Broadening));
        assert_eq!(plan.approval_reasons().len(), 1);
        let env = template(json!({"T": task_definition("apache/airflow:3.1.0", "b", true)}));
        assert!(diff(Some(&old), &env).broadening[0].contains("Environment changes"));
        // The same changes in a container without secrets ask nothing.
        let plain = template(json!({"T": task_definition("apache/airflow:3.1.0", "a", false)}));
        let plain_image = template(json!({"T": task_definition("evil/airflow:3.1.0", "b", false)}));
        assert!(diff(Some(&plain), &plain_image).broadening.is_empty());

        let function = |key: &str| {
            json!({"Type": "AWS::Lambda::Function", "Properties": {
                "Code": {"S3Bucket": "b", "S3Key": key}, "Handler": "bootstrap"}})
        };
        let plan = diff(
            Some(&template(json!({"F": function("assets/aaa.zip")}))),
            &template(json!({"F": function("assets/bbb.zip")})),
        );
        assert_eq!(plan.broadening.len(), 1);
        assert!(plan.broadening[0].starts_with("F: the function's Code changes to"));
    }

    #[test]
    fn a_predicted_replacement_of_data_needs_approval_before_any_change_set() {
        let old = template(
            json!({"Db": db(json!({"DBInstanceClass": "db.t4g.micro", "MasterUsername": "airflow"}))}),
        );
        let new = template(
            json!({"Db": db(json!({"DBInstanceClass": "db.t4g.micro", "MasterUsername": "admin"}))}),
        );
        let plan = diff(Some(&old), &new);
        assert_eq!(
            plan.approval_reasons(),
            vec![
                "replaces Db (AWS::RDS::DBInstance), which holds data: MasterUsername changes"
                    .to_string()
            ]
        );
        assert!(render(&plan)
            .contains("REPLACES the resource (predicted: MasterUsername changes)  !! holds data"));
        let deleted = diff(Some(&old), &template(json!({})));
        assert_eq!(
            deleted.approval_reasons(),
            vec!["deletes Db (AWS::RDS::DBInstance), which holds data".to_string()]
        );
    }

    #[test]
    fn an_in_place_change_of_data_needs_no_approval() {
        let old = template(json!({"Db": db(json!({"DBInstanceClass": "db.t4g.micro"}))}));
        let new = template(json!({"Db": db(json!({"DBInstanceClass": "db.t4g.small"}))}));
        assert!(diff(Some(&old), &new).approval_reasons().is_empty());
    }

    #[test]
    fn the_change_set_overrides_the_prediction_and_the_disagreement_shows() {
        let old = template(json!({"Db": db(json!({"DBInstanceClass": "db.t4g.micro"}))}));
        let new = template(json!({"Db": db(json!({"DBInstanceClass": "db.t4g.small"}))}));
        let plan = diff(Some(&old), &new);
        assert_eq!(plan.changes[0].predicted, Replacement::No);
        let replaced = plan
            .clone()
            .with_replacements(&BTreeMap::from([("Db".to_string(), Replacement::Yes)]));
        let c = &replaced.changes[0];
        assert_eq!(
            (c.replacement, c.predicted, c.confirmed),
            (Replacement::Yes, Replacement::No, true)
        );
        assert!(c.contradicts_prediction());
        assert_eq!(
            replaced.approval_reasons(),
            vec!["replaces Db (AWS::RDS::DBInstance), which holds data".to_string()]
        );
        let text = render(&replaced);
        assert!(
            text.contains("REPLACES the resource [the change set overrides the prediction: in place]  !! holds data"),
            "{text}"
        );
        assert!(
            text.contains("The change set overrides 1 replacement prediction(s)"),
            "{text}"
        );
        // Agreement: no note, and the prediction's cause is kept.
        let predicted = diff(
            Some(&old),
            &template(json!({"Db": db(json!({"DBInstanceClass": "db.t4g.micro", "DBName": "x"}))})),
        );
        let confirmed =
            predicted.with_replacements(&BTreeMap::from([("Db".to_string(), Replacement::Yes)]));
        let text = render(&confirmed);
        assert!(
            text.contains("REPLACES the resource (DBName changes)  !! holds data"),
            "{text}"
        );
        assert!(!text.contains("overrides"), "{text}");
    }

    #[test]
    fn change_set_flags_without_an_answer_or_for_unlisted_resources() {
        let old = template(
            json!({"Db": db(json!({"DBName": "a"})), "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Code": {"S3Key": {"Ref": "Key"}}}}}),
        );
        let new = template(
            json!({"Db": db(json!({"DBName": "b"})), "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Code": {"S3Key": {"Ref": "Key"}}}}}),
        );
        let plan = diff(Some(&old), &new).with_replacements(&BTreeMap::from([
            ("Db".to_string(), Replacement::Unknown),
            ("Fn".to_string(), Replacement::No),
            ("Elsewhere".to_string(), Replacement::Yes),
        ]));
        // An Unknown flag is no answer: the prediction stands, unconfirmed.
        assert_eq!(
            (plan.changes[0].replacement, plan.changes[0].confirmed),
            (Replacement::Yes, false)
        );
        // A parameter changed Fn (its text is the same): the change set lists it.
        assert_eq!(plan.changes[1].logical_id, "Fn");
        assert_eq!(plan.changes[1].resource_type, "AWS::Lambda::Function");
        assert!(!plan.changes[1].contradicts_prediction());
        assert_eq!(
            plan.changes.len(),
            2,
            "a flag for no resource of the template is ignored"
        );
    }

    #[test]
    fn a_lower_airflow_version_needs_approval() {
        let migration = |v: &str| {
            template(json!({"Migration": {"Type": MIGRATION, "Properties": {AIRFLOW_VERSION: v}}}))
        };
        let plan = diff(Some(&migration("3.10.0")), &migration("3.9.9"));
        assert_eq!(
            plan.downgrade,
            Some(Downgrade {
                logical_id: "Migration".into(),
                from: "3.10.0".into(),
                to: "3.9.9".into()
            })
        );
        assert_eq!(
            plan.approval_reasons(),
            vec!["lowers the Airflow version from 3.10.0 to 3.9.9 (Migration): the migration does not downgrade the database schema".to_string()]
        );
        assert!(render(&plan).contains("The Airflow version goes down from 3.10.0 to 3.9.9"));
        for (from, to) in [("3.9.9", "3.10.0"), ("3.3", "3.3.0"), ("main", "3.3.2")] {
            let plan = diff(Some(&migration(from)), &migration(to));
            assert_eq!(plan.downgrade, None, "{from} -> {to}");
            assert!(plan.approval_reasons().is_empty(), "{from} -> {to}");
        }
    }

    #[test]
    fn approval_logic_covers_terminal_yes_and_no_terminal() {
        let plan = diff(
            Some(&template(json!({}))),
            &template(json!({"In": ingress(22)})),
        );
        assert_eq!(
            approve(&plan, true, false, |_| panic!("must not ask")),
            Approval::Proceed
        );
        assert!(
            matches!(approve(&plan, false, false, |_| panic!("must not ask")), Approval::Refused(m) if m.contains("--yes") && m.contains("broadens access or what runs with its secrets: In (1 change)"))
        );
        assert_eq!(approve(&plan, false, true, |_| true), Approval::Proceed);
        assert_eq!(approve(&plan, false, true, |_| false), Approval::Declined);
        let quiet = diff(None, &template(json!({"B": {"Type": "AWS::S3::Bucket"}})));
        assert_eq!(
            approve(&quiet, false, false, |_| panic!("must not ask")),
            Approval::Proceed
        );
    }

    #[test]
    fn a_new_stack_lists_every_resource_as_added() {
        let new = template(json!({"A": {"Type": "T"}, "B": {"Type": "U"}}));
        let plan = diff(None, &new);
        assert_eq!(plan.changes.len(), 2);
        assert!(render(&plan).contains("2 to add, 0 to modify, 0 to remove."));
    }
}
