//! Stable physical resource ids.
//!
//! CloudFormation treats a changed `PhysicalResourceId` on Update as a replacement and
//! then deletes the old id. AWS `cfn-response` defaults to the log stream name, which
//! changes between invocations; deriving the id from the stack and the logical id keeps
//! it identical for every response about the same resource.

use sha2::{Digest, Sha256};

/// Longest logical id CloudFormation allows; used to keep ids within the 1 KB limit.
const MAX_LOGICAL_ID_CHARS: usize = 255;

/// `<12 hex chars of sha256(StackId)>-<LogicalResourceId>`: the same inputs always give
/// the same id, and two stacks with the same logical id get different ids.
pub fn stable_physical_id(stack_id: &str, logical_resource_id: &str) -> String {
    let digest = Sha256::digest(stack_id.as_bytes());
    let short: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    let logical: String = logical_resource_id
        .chars()
        .take(MAX_LOGICAL_ID_CHARS)
        .collect();
    format!("{short}-{logical}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_give_the_same_id() {
        let a = stable_physical_id("arn:aws:cloudformation:eu-west-1:1:stack/s/1", "Secrets");
        let b = stable_physical_id("arn:aws:cloudformation:eu-west-1:1:stack/s/1", "Secrets");
        assert_eq!(a, b);
        assert!(a.ends_with("-Secrets"));
        assert_eq!(a.len(), 12 + 1 + "Secrets".len());
    }

    #[test]
    fn different_stacks_give_different_ids() {
        let a = stable_physical_id("stack-a", "Secrets");
        let b = stable_physical_id("stack-b", "Secrets");
        assert_ne!(a, b);
    }

    #[test]
    fn long_logical_ids_are_bounded() {
        let id = stable_physical_id("s", &"L".repeat(5000));
        assert!(id.len() <= 1024);
    }
}
