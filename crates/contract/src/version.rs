//! Which way a deploy moves the Airflow version. The migration Lambda uses it so that
//! the rollback of a failed upgrade does not run the older `airflow db migrate` against
//! the newer schema; `deploy` uses it to warn before a deliberate downgrade and to
//! explain a rolled-back upgrade. Both must order versions alike, hence one function.
//!
//! When a stack update fails, CloudFormation rolls back by sending the migration
//! resource an Update back to its old properties (CloudFormation User Guide,
//! `crpg-ref-requesttypes-update.html`). If the failed update had already migrated the
//! database, the old version's `airflow db migrate` meets a schema it does not know
//! (Alembic: "Can't locate revision identified by …"), fails, and leaves the stack in
//! UPDATE_ROLLBACK_FAILED. Going down is therefore not a migration: Airflow's way down
//! is `airflow db downgrade`, run with the newer version (which has the downgrade
//! scripts), a deliberate operator action.
//!
//! Versions are release numbers as the stack file allows them (`3.3.2`): decimal parts
//! separated by dots, compared part by part as numbers (3.10.0 > 3.9.9, 3.3 = 3.3.0).
//! Suffixes (`3.3.2rc1`, `3.3.2.dev0`) are refused rather than ordered: the stack file
//! never produces them, and guessing an order for them could skip a real upgrade.

use std::cmp::Ordering;

use crate::migration::property::AIRFLOW_VERSION;

/// A release version: its numeric parts with trailing zeros removed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(Vec<u64>);

impl Version {
    /// `3.3.2` -> `[3, 3, 2]`; `None` unless every dot-separated part is decimal digits
    /// (and fits a `u64`).
    pub fn parse(text: &str) -> Option<Version> {
        let mut parts = text
            .split('.')
            .map(|part| {
                let digits = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
                digits.then(|| part.parse::<u64>().ok()).flatten()
            })
            .collect::<Option<Vec<u64>>>()?;
        while parts.len() > 1 && parts.last() == Some(&0) {
            parts.pop();
        }
        Some(Version(parts))
    }

    /// How `new` compares with `old`; `None` if either is not a release version.
    pub fn compare(old: &str, new: &str) -> Option<Ordering> {
        Some(Version::parse(new)?.cmp(&Version::parse(old)?))
    }
}

/// What an Update does to the Airflow version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionMove {
    /// Same version (or no version on one side): decide by the other triggers.
    Unchanged,
    /// A higher version: migrate.
    Up,
    /// A lower version: a rollback of a failed upgrade (or a deliberate downgrade);
    /// no migration. Carries `(old, new)` for the log.
    Down(String, String),
    /// The old version cannot be ordered: migrate, as before versions were compared.
    /// Carries the old value for the log.
    OldUnknown(String),
    /// The new version is not a release version: the reason to answer FAILED with.
    Invalid(String),
}

/// Compares the old and new `AirflowVersion` of an Update.
///
/// An unreadable *new* version fails the request, with a reason naming the property
/// and the expected form. An unreadable *old* one does not: the forward Update to it
/// failed on this very check and never migrated, so this Update is its rollback (or a
/// move away from a hand-set value), and migrating is what happened before versions
/// were compared. Failing it would leave exactly the UPDATE_ROLLBACK_FAILED this module
/// exists to prevent.
pub fn version_move(old: Option<&str>, new: Option<&str>) -> VersionMove {
    let (Some(old), Some(new)) = (old, new) else {
        return VersionMove::Unchanged;
    };
    if old == new {
        return VersionMove::Unchanged;
    }
    // A version is public (it is in the image tag), so naming it in the reason is safe.
    let Some(new_version) = Version::parse(new) else {
        return VersionMove::Invalid(format!(
            "{AIRFLOW_VERSION} {new:?} is not a release version (decimal numbers separated by \
             dots, such as 3.3.2); the migration compares versions to skip a rollback's \
             downgrade and cannot order this one"
        ));
    };
    let Some(old_version) = Version::parse(old) else {
        return VersionMove::OldUnknown(old.to_owned());
    };
    match new_version.cmp(&old_version) {
        Ordering::Less => VersionMove::Down(old.to_owned(), new.to_owned()),
        Ordering::Equal => VersionMove::Unchanged,
        Ordering::Greater => VersionMove::Up,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moving(old: &str, new: &str) -> VersionMove {
        version_move(Some(old), Some(new))
    }

    #[test]
    fn parts_compare_as_numbers() {
        assert!(Version::parse("3.10.0") > Version::parse("3.9.9"));
        assert!(Version::parse("10.0.0") > Version::parse("9.99.99"));
        assert_eq!(Version::parse("3.3"), Version::parse("3.3.0"));
        assert!(Version::parse("3.3.1") > Version::parse("3.3"));
        for bad in [
            "",
            "3..2",
            "3.3.2rc1",
            "3.3.2.dev0",
            "v3.3.2",
            "+3.3.2",
            "3.3.x",
            " 3.3.2",
        ] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Version::parse("99999999999999999999.1"), None, "overflow");
    }

    #[test]
    fn compare_orders_new_against_old() {
        assert_eq!(Version::compare("3.9.9", "3.10.0"), Some(Ordering::Greater));
        assert_eq!(Version::compare("3.3.3", "3.3.2"), Some(Ordering::Less));
        assert_eq!(Version::compare("3.3", "3.3.0"), Some(Ordering::Equal));
        assert_eq!(Version::compare("3.3.2", "3.3.3rc1"), None);
        assert_eq!(Version::compare("main", "3.3.3"), None);
    }

    #[test]
    fn a_lower_version_is_down_and_carries_both_for_the_log() {
        assert_eq!(
            moving("3.10.0", "3.9.9"),
            VersionMove::Down("3.10.0".into(), "3.9.9".into())
        );
        assert_eq!(moving("3.9.9", "3.10.0"), VersionMove::Up);
        assert_eq!(moving("3.3.2", "3.3.2"), VersionMove::Unchanged);
        assert_eq!(moving("3.3", "3.3.0"), VersionMove::Unchanged);
    }

    #[test]
    fn an_unreadable_new_version_fails_and_an_unreadable_old_one_migrates() {
        let VersionMove::Invalid(reason) = moving("3.3.2", "3.3.3rc1") else {
            panic!("a suffix is refused");
        };
        assert!(
            reason.starts_with("AirflowVersion \"3.3.3rc1\" is not a release version"),
            "{reason}"
        );
        assert_eq!(
            moving("3.3.3rc1", "3.3.2"),
            VersionMove::OldUnknown("3.3.3rc1".into())
        );
    }

    #[test]
    fn a_missing_version_decides_nothing() {
        assert_eq!(version_move(None, Some("3.3.2")), VersionMove::Unchanged);
        assert_eq!(version_move(Some("3.3.2"), None), VersionMove::Unchanged);
        assert_eq!(version_move(None, None), VersionMove::Unchanged);
    }
}
