//! Properties whose schema type is too loose to type from the schema alone: the
//! generator uses the Rust type named here instead. Every entry must match a schema
//! location; one that no longer does (after a schema refresh) is an error, so the table
//! cannot silently go stale.

use std::cell::RefCell;
use std::collections::BTreeSet;

use crate::model::Ty;

/// IAM policy documents: the schemas say `object` or `["object", "string"]` (JSON
/// text); the hand-written `crate::cfn::l1::PolicyDocument` types the policy language.
const POLICY_DOCUMENTS: &[(&str, &str)] = &[
    (
        "AWS::DynamoDB::Table",
        "/definitions/ResourcePolicy/properties/PolicyDocument",
    ),
    ("AWS::ECR::Repository", "/properties/RepositoryPolicyText"),
    ("AWS::IAM::Role", "/properties/AssumeRolePolicyDocument"),
    ("AWS::KMS::Key", "/properties/KeyPolicy"),
    (
        "AWS::IAM::Role",
        "/definitions/Policy/properties/PolicyDocument",
    ),
    ("AWS::S3::BucketPolicy", "/properties/PolicyDocument"),
];

/// Lambda environment variables: the schema allows any JSON value per variable, but
/// Lambda stores strings, and a value is often a `Ref` or `Fn::GetAtt`.
const STRING_MAPS: &[(&str, &str)] = &[(
    "AWS::Lambda::Function",
    "/definitions/Environment/properties/Variables",
)];

/// Lists where an explicit empty list means something: the ECS service schema says "To
/// remove this property from your service resource, specify an empty ... array", and
/// CloudFront's says "To delete all cache behaviors in an existing distribution, ...
/// include only an empty `CacheBehaviors` element". These are `Option<Vec<T>>`, where
/// `Some(vec![])` is rendered as `[]`; every other list is a `Vec` left out when empty.
const KEEP_EMPTY_LISTS: &[(&str, &str)] = &[
    (
        "AWS::CloudFront::Distribution",
        "/definitions/DistributionConfig/properties/CacheBehaviors",
    ),
    ("AWS::ECS::Service", "/properties/CapacityProviderStrategy"),
    ("AWS::ECS::Service", "/properties/LoadBalancers"),
    ("AWS::ECS::Service", "/properties/PlacementConstraints"),
    ("AWS::ECS::Service", "/properties/PlacementStrategies"),
    ("AWS::ECS::Service", "/properties/ServiceRegistries"),
    ("AWS::ECS::Service", "/properties/VolumeConfigurations"),
];

/// The override table, remembering which entries were used.
#[derive(Default)]
pub struct Overrides {
    used: RefCell<BTreeSet<(&'static str, &'static str)>>,
}

impl Overrides {
    /// The Rust type for a schema location, if overridden.
    pub fn get(&self, type_name: &str, location: &str) -> Option<Ty> {
        let find = |table: &[(&'static str, &'static str)]| {
            table
                .iter()
                .find(|(t, l)| *t == type_name && *l == location)
                .copied()
        };
        if let Some(entry) = find(POLICY_DOCUMENTS) {
            self.used.borrow_mut().insert(entry);
            return Some(Ty::Shared("PolicyDocument"));
        }
        if let Some(entry) = find(STRING_MAPS) {
            self.used.borrow_mut().insert(entry);
            return Some(Ty::Map(Box::new(Ty::Expr)));
        }
        None
    }

    /// Whether a list property renders an explicit empty list (see [`KEEP_EMPTY_LISTS`]).
    pub fn keeps_empty(&self, type_name: &str, location: &str) -> bool {
        let entry = KEEP_EMPTY_LISTS
            .iter()
            .find(|(t, l)| *t == type_name && *l == location);
        if let Some(entry) = entry {
            self.used.borrow_mut().insert(*entry);
        }
        entry.is_some()
    }

    /// Entries that matched no schema location among the generated types.
    pub fn unused(&self) -> Vec<String> {
        let used = self.used.borrow();
        POLICY_DOCUMENTS
            .iter()
            .chain(STRING_MAPS)
            .chain(KEEP_EMPTY_LISTS)
            .filter(|e| !used.contains(*e))
            .map(|(t, l)| format!("{t}{l}"))
            .collect()
    }
}
