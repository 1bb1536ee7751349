//! Which way an Update moves the Airflow version, so a rollback of a failed upgrade does
//! not run the older `airflow db migrate` against the newer schema. The ordering and
//! the decision are the contract's (`airflow_stack_contract::version`, shared with
//! `deploy`'s downgrade warning); this module reads the versions out of the request.

use airflow_stack_contract::migration::property::AIRFLOW_VERSION;
use cfn_custom_resource::Properties;

pub use airflow_stack_contract::version::{Version, VersionMove};

/// Compares `AirflowVersion` in the old and new properties of an Update (see
/// [`airflow_stack_contract::version::version_move`]). A version that is absent or not a
/// string decides nothing.
pub fn version_move(old: Option<&Properties>, new: &Properties) -> VersionMove {
    airflow_stack_contract::version::version_move(text(old), text(Some(new)))
}

/// The version as a string, if the properties have one (CloudFormation sends every
/// scalar as a string).
fn text(props: Option<&Properties>) -> Option<&str> {
    props?.0.get(AIRFLOW_VERSION)?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map};

    fn props(version: &str) -> Properties {
        let mut map = Map::new();
        map.insert(AIRFLOW_VERSION.to_owned(), json!(version));
        Properties(map)
    }

    #[test]
    fn the_versions_are_read_from_the_properties() {
        assert_eq!(
            version_move(Some(&props("3.10.0")), &props("3.9.9")),
            VersionMove::Down("3.10.0".into(), "3.9.9".into())
        );
        assert_eq!(
            version_move(Some(&props("3.3.2")), &props("3.3.3")),
            VersionMove::Up
        );
    }

    #[test]
    fn a_missing_or_non_string_version_decides_nothing() {
        let empty = Properties(Map::new());
        assert_eq!(
            version_move(Some(&empty), &props("3.3.2")),
            VersionMove::Unchanged
        );
        assert_eq!(version_move(None, &props("3.3.2")), VersionMove::Unchanged);
        assert_eq!(
            version_move(Some(&props("3.3.2")), &empty),
            VersionMove::Unchanged
        );
        let mut number = Map::new();
        number.insert(AIRFLOW_VERSION.to_owned(), json!(3));
        assert_eq!(
            version_move(Some(&Properties(number)), &props("3.3.2")),
            VersionMove::Unchanged
        );
    }
}
