//! Secret value generation, all from the operating system's RNG.

use rand::distr::Alphanumeric;
use rand::rngs::OsRng;
use rand::{Rng, TryRngCore};
use sha2::{Digest, Sha256};

/// Length of the API secret key and the JWT secret: 86 alphanumerics carry ~512 bits
/// and are ≥ 64 bytes, which PyJWT wants for HS512.
pub const SIGNING_SECRET_LENGTH: usize = 86;

/// A Fernet key: URL-safe base64 (with padding) of 32 random bytes, 44 characters.
pub fn fernet_key() -> String {
    fernet::Fernet::generate_key()
}

/// `length` characters from `[A-Za-z0-9]`: safe in URLs, shells and env files.
pub fn alphanumeric(length: usize) -> String {
    OsRng
        .unwrap_err()
        .sample_iter(Alphanumeric)
        .take(length)
        .map(char::from)
        .collect()
}

/// A UUID-shaped, deterministic version id (ClientRequestToken) for one write.
///
/// Secrets Manager ignores a PutSecretValue that repeats a token with the same value and
/// rejects one with a different value, so a duplicated request can never store a
/// second, different secret. The parts are length-prefixed so that no two different
/// part lists hash alike.
pub fn version_id(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fernet_keys_are_44_chars_of_32_bytes() {
        let key = fernet_key();
        assert_eq!(key.len(), 44);
        assert!(key.ends_with('='));
        assert!(fernet::Fernet::new(&key).is_some());
        assert_ne!(key, fernet_key());
    }

    #[test]
    fn alphanumerics_have_the_length_and_alphabet() {
        let value = alphanumeric(128);
        assert_eq!(value.len(), 128);
        assert!(value.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(alphanumeric(32), alphanumeric(32));
    }

    #[test]
    fn version_ids_are_uuid_shaped_and_deterministic() {
        let a = version_id(&["stack", "L", "fernet", "0"]);
        assert_eq!(a, version_id(&["stack", "L", "fernet", "0"]));
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
        assert_ne!(a, version_id(&["stack", "L", "fernet", "1"]));
        assert_ne!(version_id(&["ab", "c"]), version_id(&["a", "bc"]));
    }
}
