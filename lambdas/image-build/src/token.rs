//! The idempotency token of one CloudFormation request.

use sha2::{Digest, Sha256};

/// `cfn-<32 hex chars of sha256(StackId \n RequestId)>`, 36 characters: StartBuild's
/// `idempotencyToken`.
///
/// The same request (including Lambda's redelivery of it) always gives the same token,
/// so CodeBuild returns the build it started for the first delivery instead of starting
/// another ("valid for 5 minutes", CodeBuild API reference, StartBuild); every new
/// request (a rollback Update included) gives a new one.
pub fn request_token(stack_id: &str, request_id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(stack_id.as_bytes());
    // A separator, so ("ab", "c") and ("a", "bc") differ.
    hasher.update(b"\n");
    hasher.update(request_id.as_bytes());
    let digest = hasher.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("cfn-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_short_and_distinct() {
        let a = request_token("stack", "req-1");
        assert_eq!(a, request_token("stack", "req-1"));
        assert_ne!(a, request_token("stack", "req-2"));
        assert_ne!(request_token("ab", "c"), request_token("a", "bc"));
        assert_eq!(a.len(), 36);
    }
}
