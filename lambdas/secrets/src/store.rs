//! The few Secrets Manager operations the handlers need, behind a trait so unit tests
//! can use the in-memory [`MemoryStore`] instead of AWS.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

/// Version ids of one secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretVersions {
    /// The version labelled AWSCURRENT, if the secret has a value at all.
    pub current: Option<String>,
    /// Every version id Secrets Manager still lists for the secret.
    pub all: Vec<String>,
}

impl SecretVersions {
    /// Whether a version with this id exists.
    pub fn contains(&self, version_id: &str) -> bool {
        self.all.iter().any(|id| id == version_id)
    }
}

/// A failed store operation. Messages never contain secret values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The secret does not exist (or is not visible to this role).
    #[error("secret not found")]
    NotFound,
    /// The version id was already used with a different value (a concurrent duplicate
    /// request won the race).
    #[error("version id already used with a different value")]
    TokenConflict,
    /// Any other service or transport error.
    #[error("{0}")]
    Service(String),
}

/// The Secrets Manager operations used by the handlers.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Lists the secret's versions (DescribeSecret's VersionIdsToStages).
    async fn versions(&self, secret_arn: &str) -> Result<SecretVersions, StoreError>;

    /// The AWSCURRENT SecretString, or `None` when the secret has no value yet.
    async fn current_value(&self, secret_arn: &str) -> Result<Option<String>, StoreError>;

    /// PutSecretValue with `version_id` as ClientRequestToken; the new version becomes
    /// AWSCURRENT. Repeating the same id with the same value is a no-op.
    async fn put_value(
        &self,
        secret_arn: &str,
        version_id: &str,
        value: &str,
    ) -> Result<(), StoreError>;
}

/// In-memory [`SecretStore`] for tests, with the same version semantics as Secrets
/// Manager and switches to inject failures.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    secrets: HashMap<String, MemorySecret>,
    fail_with: Option<StoreError>,
    panic_on_put: bool,
    delay: Option<Duration>,
    puts: usize,
}

#[derive(Debug, Default, Clone)]
struct MemorySecret {
    versions: Vec<(String, String)>,
    current: Option<String>,
}

impl MemoryStore {
    /// A store holding the given secrets, all empty (as the template creates them).
    pub fn with_empty_secrets(arns: &[&str]) -> Self {
        let store = Self::default();
        {
            let mut state = store.lock();
            for arn in arns {
                state
                    .secrets
                    .insert((*arn).to_owned(), MemorySecret::default());
            }
        }
        store
    }

    /// Sets a value directly, as if someone else wrote it.
    pub fn set_value(&self, arn: &str, version_id: &str, value: &str) {
        let mut state = self.lock();
        let secret = state.secrets.entry(arn.to_owned()).or_default();
        secret
            .versions
            .push((version_id.to_owned(), value.to_owned()));
        secret.current = Some(version_id.to_owned());
    }

    /// The AWSCURRENT value, for assertions.
    pub fn value(&self, arn: &str) -> Option<String> {
        let state = self.lock();
        let secret = state.secrets.get(arn)?;
        let current = secret.current.as_ref()?;
        secret
            .versions
            .iter()
            .find(|(id, _)| id == current)
            .map(|(_, v)| v.clone())
    }

    /// Every value ever stored, for leak assertions.
    pub fn all_values(&self) -> Vec<String> {
        let state = self.lock();
        state
            .secrets
            .values()
            .flat_map(|s| s.versions.iter().map(|(_, v)| v.clone()))
            .collect()
    }

    /// How many successful PutSecretValue calls changed something.
    pub fn put_count(&self) -> usize {
        self.lock().puts
    }

    /// Makes every later call fail with `error`.
    pub fn fail_with(&self, error: StoreError) {
        self.lock().fail_with = Some(error);
    }

    /// Makes put_value panic (to exercise the panic guard).
    pub fn panic_on_put(&self) {
        self.lock().panic_on_put = true;
    }

    /// Makes every call sleep first (to exercise the deadline guard).
    pub fn delay_calls(&self, delay: Duration) {
        self.lock().delay = Some(delay);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn before_call(&self) -> Result<(), StoreError> {
        let (delay, failure) = {
            let state = self.lock();
            (state.delay, state.fail_with.clone())
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        failure.map_or(Ok(()), Err)
    }
}

#[async_trait]
impl SecretStore for MemoryStore {
    async fn versions(&self, secret_arn: &str) -> Result<SecretVersions, StoreError> {
        self.before_call().await?;
        let state = self.lock();
        let secret = state.secrets.get(secret_arn).ok_or(StoreError::NotFound)?;
        Ok(SecretVersions {
            current: secret.current.clone(),
            all: secret.versions.iter().map(|(id, _)| id.clone()).collect(),
        })
    }

    async fn current_value(&self, secret_arn: &str) -> Result<Option<String>, StoreError> {
        self.before_call().await?;
        if !self.lock().secrets.contains_key(secret_arn) {
            return Err(StoreError::NotFound);
        }
        Ok(self.value(secret_arn))
    }

    async fn put_value(
        &self,
        secret_arn: &str,
        version_id: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        self.before_call().await?;
        let mut state = self.lock();
        if state.panic_on_put {
            drop(state);
            panic!("injected panic in put_value");
        }
        let secret = state
            .secrets
            .get_mut(secret_arn)
            .ok_or(StoreError::NotFound)?;
        match secret.versions.iter().find(|(id, _)| id == version_id) {
            // Secrets Manager ignores a repeat with the same value (AWSCURRENT unchanged).
            Some((_, existing)) if existing == value => Ok(()),
            Some(_) => Err(StoreError::TokenConflict),
            None => {
                secret
                    .versions
                    .push((version_id.to_owned(), value.to_owned()));
                secret.current = Some(version_id.to_owned());
                state.puts += 1;
                Ok(())
            }
        }
    }
}
