//! What a deploy would change, decided from the deployed and the new template (and the
//! change set's replacement flags when CloudFormation provides them): resources
//! added, modified (with replacement called out) and removed, changes that broaden
//! access (new IAM statements, new ingress rules), and changes that can destroy data.
//! Pure functions, no I/O: `diff`, `deploy` and their tests share them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde_json::Value;

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

/// Whether a modification replaces the physical resource (CloudFormation's answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replacement {
    /// Not replaced.
    No,
    /// Replaced: a new physical resource, the old one deleted.
    Yes,
    /// Replaced depending on a value known only at deploy time.
    Conditional,
    /// Not known (no change set yet).
    Unknown,
}

/// One resource's change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceChange {
    pub logical_id: String,
    pub resource_type: String,
    pub action: Action,
    pub replacement: Replacement,
}

impl ResourceChange {
    /// Holds data that a deletion or replacement loses: databases, buckets, secrets.
    pub fn is_stateful(&self) -> bool {
        STATEFUL_TYPES.contains(&self.resource_type.as_str())
    }

    /// Deletes or may replace the physical resource.
    pub fn is_destructive(&self) -> bool {
        self.action == Action::Remove
            || matches!(
                self.replacement,
                Replacement::Yes | Replacement::Conditional
            )
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

/// The changes between two templates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<ResourceChange>,
    /// Human-readable descriptions of access-broadening changes.
    pub broadening: Vec<String>,
    /// Parameters or outputs differ (no resource may change).
    pub other_changes: bool,
}

/// What `--fail-on` and the approval prompt look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// Any change.
    Any,
    /// New IAM statements or ingress rules.
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
    /// `diff` shows every statement.
    pub fn approval_reasons(&self) -> Vec<String> {
        let mut per_resource: BTreeMap<&str, usize> = BTreeMap::new();
        for b in &self.broadening {
            *per_resource
                .entry(b.split(':').next().unwrap_or(b))
                .or_default() += 1;
        }
        let mut reasons: Vec<String> = per_resource
            .into_iter()
            .map(|(resource, n)| {
                let what = if n == 1 {
                    "rule or statement"
                } else {
                    "rules or statements"
                };
                format!("broadens access: {resource} ({n} new {what})")
            })
            .collect();
        for c in self.data_destructive() {
            let what = if c.action == Action::Remove {
                "deletes"
            } else {
                "replaces"
            };
            reasons.push(format!(
                "{what} {} ({}), which holds data",
                c.logical_id, c.resource_type
            ));
        }
        reasons
    }

    /// Applies CloudFormation's replacement flags from a change set.
    pub fn with_replacements(mut self, flags: &BTreeMap<String, Replacement>) -> Plan {
        for change in &mut self.changes {
            if let Some(flag) = flags.get(&change.logical_id) {
                change.replacement = *flag;
            }
        }
        self
    }
}

fn resources(template: &Value) -> BTreeMap<String, &Value> {
    template
        .get("Resources")
        .and_then(Value::as_object)
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v)).collect())
        .unwrap_or_default()
}

fn type_of(resource: &Value) -> String {
    resource["Type"].as_str().unwrap_or("?").to_string()
}

/// Compares a deployed template (`None` for a new stack) with a new one.
pub fn diff(old: Option<&Value>, new: &Value) -> Plan {
    let empty = Value::Object(Default::default());
    let old = old.unwrap_or(&empty);
    let (before, after) = (resources(old), resources(new));
    let mut changes = Vec::new();
    for (id, res) in &after {
        let action = match before.get(id) {
            None => Action::Add,
            Some(prev) if prev != res => Action::Modify,
            Some(_) => continue,
        };
        let replacement = if action == Action::Add {
            Replacement::No
        } else {
            Replacement::Unknown
        };
        changes.push(ResourceChange {
            logical_id: id.clone(),
            resource_type: type_of(res),
            action,
            replacement,
        });
    }
    for (id, res) in &before {
        if !after.contains_key(id) {
            changes.push(ResourceChange {
                logical_id: id.clone(),
                resource_type: type_of(res),
                action: Action::Remove,
                replacement: Replacement::Yes,
            });
        }
    }
    changes.sort_by(|a, b| (a.action, &a.logical_id).cmp(&(b.action, &b.logical_id)));
    let other_changes = ["Parameters", "Outputs", "Conditions", "Mappings"]
        .iter()
        .any(|k| old.get(k) != new.get(k));
    Plan {
        broadening: broadening(&before, &after),
        changes,
        other_changes,
    }
}

/// New ingress rules and new IAM allow statements, described for a person.
fn broadening(before: &BTreeMap<String, &Value>, after: &BTreeMap<String, &Value>) -> Vec<String> {
    let mut found = Vec::new();
    for (id, res) in after {
        let prev = before.get(id).copied();
        match res["Type"].as_str() {
            Some("AWS::EC2::SecurityGroupIngress") if prev != Some(*res) => {
                found.push(describe_ingress(id, &res["Properties"]))
            }
            Some("AWS::EC2::SecurityGroup") => {
                let old_rules = prev
                    .map(|p| rule_set(&p["Properties"]["SecurityGroupIngress"]))
                    .unwrap_or_default();
                for rule in
                    rule_set(&res["Properties"]["SecurityGroupIngress"]).difference(&old_rules)
                {
                    found.push(format!("{id}: new inline ingress rule {rule}"));
                }
            }
            Some(
                "AWS::IAM::Role"
                | "AWS::IAM::Policy"
                | "AWS::IAM::ManagedPolicy"
                | "AWS::S3::BucketPolicy",
            ) => {
                let old_statements = prev.map(allow_statements).unwrap_or_default();
                for statement in allow_statements(res).difference(&old_statements) {
                    found.push(format!("{id}: new IAM statement {statement}"));
                }
            }
            _ => {}
        }
    }
    found
}

fn describe_ingress(id: &str, p: &Value) -> String {
    let source = if p["CidrIp"].is_string() {
        p["CidrIp"].to_string()
    } else {
        p["SourceSecurityGroupId"].to_string()
    };
    format!(
        "{id}: ingress {} {}-{} to {} from {source}",
        p["IpProtocol"].as_str().unwrap_or("?"),
        p["FromPort"],
        p["ToPort"],
        p["GroupId"]
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
            let note = match (c.action, c.replacement) {
                (Action::Modify, Replacement::Yes) => "  REPLACES the resource",
                (Action::Modify, Replacement::Conditional) => "  may replace the resource",
                (Action::Modify, Replacement::Unknown) => "  (replacement not reported)",
                _ => "",
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
    fn replacing_or_deleting_stateful_resources_needs_approval() {
        let db = json!({"Type": "AWS::RDS::DBInstance", "Properties": {"DBInstanceClass": "db.t4g.micro"}});
        let bigger = json!({"Type": "AWS::RDS::DBInstance", "Properties": {"DBInstanceClass": "db.t4g.small"}});
        let plan = diff(
            Some(&template(json!({"Db": db}))),
            &template(json!({"Db": bigger})),
        );
        assert!(
            plan.approval_reasons().is_empty(),
            "an in-place modification does not need approval"
        );
        let replaced = plan
            .clone()
            .with_replacements(&BTreeMap::from([("Db".to_string(), Replacement::Yes)]));
        assert_eq!(
            replaced.approval_reasons(),
            vec!["replaces Db (AWS::RDS::DBInstance), which holds data".to_string()]
        );
        assert!(render(&replaced).contains("REPLACES the resource  !! holds data"));
        let deleted = diff(Some(&template(json!({"Db": db}))), &template(json!({})));
        assert_eq!(
            deleted.approval_reasons(),
            vec!["deletes Db (AWS::RDS::DBInstance), which holds data".to_string()]
        );
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
            matches!(approve(&plan, false, false, |_| panic!("must not ask")), Approval::Refused(m) if m.contains("--yes") && m.contains("broadens access: In (1 new rule or statement)"))
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
