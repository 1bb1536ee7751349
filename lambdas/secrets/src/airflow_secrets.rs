//! `Custom::AirflowSecrets`: generates the Fernet key, the API secret key, the JWT
//! secret and the db, redis and admin passwords into secrets the template created
//! empty.
//!
//! Values that data depends on are never regenerated: Create writes each secret once
//! (idempotently, with a deterministic version id), Update only rotates the Fernet key
//! on request, Delete leaves everything in place.

use cfn_custom_resource::{CustomResourceRequest, HandlerOutput, Properties, PropertyError};

use crate::error::HandlerError;
use crate::generate::{alphanumeric, fernet_key, version_id, SIGNING_SECRET_LENGTH};
use crate::props::secret_arn;
use crate::store::{SecretStore, StoreError};

const DEFAULT_PASSWORD_LENGTH: &str = "32";
const PASSWORD_LENGTHS: std::ops::RangeInclusive<usize> = 16..=128;

/// One generated secret: its property, its role in version ids, and how to make it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    FernetKey,
    ApiSecretKey,
    JwtSecret,
    DbPassword,
    RedisPassword,
    AdminPassword,
}

const ROLES: [Role; 6] = [
    Role::FernetKey,
    Role::ApiSecretKey,
    Role::JwtSecret,
    Role::DbPassword,
    Role::RedisPassword,
    Role::AdminPassword,
];

impl Role {
    fn property(self) -> &'static str {
        match self {
            Role::FernetKey => "FernetKeySecretArn",
            Role::ApiSecretKey => "ApiSecretKeySecretArn",
            Role::JwtSecret => "JwtSecretSecretArn",
            Role::DbPassword => "DbPasswordSecretArn",
            Role::RedisPassword => "RedisPasswordSecretArn",
            Role::AdminPassword => "AdminPasswordSecretArn",
        }
    }

    fn generate(self, password_length: usize) -> String {
        match self {
            Role::FernetKey => fernet_key(),
            Role::ApiSecretKey | Role::JwtSecret => alphanumeric(SIGNING_SECRET_LENGTH),
            Role::DbPassword | Role::RedisPassword | Role::AdminPassword => {
                alphanumeric(password_length)
            }
        }
    }
}

/// The validated properties.
#[derive(Debug)]
struct SecretsProps {
    arns: Vec<(Role, String)>,
    password_length: usize,
    fernet_rotation: Option<String>,
}

impl SecretsProps {
    fn parse(props: &Properties) -> Result<Self, HandlerError> {
        let arns = ROLES
            .iter()
            .map(|role| Ok((*role, secret_arn(props, role.property())?.to_owned())))
            .collect::<Result<Vec<_>, PropertyError>>()?;
        Ok(Self {
            arns,
            password_length: password_length(props)?,
            fernet_rotation: props.optional("FernetRotation")?.map(str::to_owned),
        })
    }

    fn arn(&self, role: Role) -> &str {
        self.arns
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, arn)| arn.as_str())
            .expect("every role is parsed")
    }
}

fn password_length(props: &Properties) -> Result<usize, PropertyError> {
    let raw = props.or_default("PasswordLength", DEFAULT_PASSWORD_LENGTH)?;
    raw.parse::<usize>()
        .ok()
        .filter(|n| PASSWORD_LENGTHS.contains(n))
        .ok_or_else(|| PropertyError::Invalid {
            name: "PasswordLength".into(),
            expected: "an integer from 16 to 128".into(),
        })
}

/// Create: fill every secret that this resource has not filled yet.
pub async fn create(
    request: &CustomResourceRequest,
    store: &dyn SecretStore,
) -> Result<HandlerOutput, HandlerError> {
    let props = SecretsProps::parse(&request.resource_properties)?;
    ensure_all_initial_values(request, &props, store).await?;
    Ok(HandlerOutput::default())
}

/// Update: regenerate nothing. Secrets that are still empty (say, a secret the
/// template replaced) are filled; the Fernet key is rotated when `FernetRotation`
/// changed to a new non-empty token.
pub async fn update(
    request: &CustomResourceRequest,
    store: &dyn SecretStore,
) -> Result<HandlerOutput, HandlerError> {
    let props = SecretsProps::parse(&request.resource_properties)?;
    ensure_all_initial_values(request, &props, store).await?;
    if let Some(token) = rotation_requested(request, &props) {
        rotate_fernet_key(request, &props, token, store).await?;
    }
    Ok(HandlerOutput::default())
}

async fn ensure_all_initial_values(
    request: &CustomResourceRequest,
    props: &SecretsProps,
    store: &dyn SecretStore,
) -> Result<(), HandlerError> {
    for role in ROLES {
        let version = version_id(&[
            &request.stack_id,
            &request.logical_resource_id,
            role.property(),
            "initial",
        ]);
        let written =
            ensure_initial_value(store, props.arn(role), role.property(), &version, || {
                role.generate(props.password_length)
            })
            .await?;
        tracing::info!(secret = role.property(), written, "initial value ensured");
    }
    Ok(())
}

/// Writes `generate()` under `version` unless the secret already has a value.
/// Returns whether a new value was written.
///
/// A value this resource wrote before (its version id is listed) is kept: that is the
/// duplicated-Create case. A value someone else wrote is kept too, with a warning: it
/// may already encrypt data, and overwriting it would lose that data.
async fn ensure_initial_value(
    store: &dyn SecretStore,
    arn: &str,
    property: &'static str,
    version: &str,
    generate: impl FnOnce() -> String,
) -> Result<bool, HandlerError> {
    let versions = store
        .versions(arn)
        .await
        .map_err(HandlerError::store("DescribeSecret", property))?;
    if versions.contains(version) {
        return Ok(false);
    }
    if versions.current.is_some() {
        tracing::warn!(
            secret = property,
            "secret already has a value not written by this resource; keeping it"
        );
        return Ok(false);
    }
    match store.put_value(arn, version, &generate()).await {
        Ok(()) => Ok(true),
        // A concurrent duplicate of this request wrote first; its value stands.
        Err(StoreError::TokenConflict) => Ok(false),
        Err(source) => Err(HandlerError::Store {
            operation: "PutSecretValue",
            property,
            source,
        }),
    }
}

/// The new rotation token, if it is non-empty and differs from the old one.
fn rotation_requested<'a>(
    request: &CustomResourceRequest,
    props: &'a SecretsProps,
) -> Option<&'a str> {
    let new = props.fernet_rotation.as_deref()?;
    // Old properties may be malformed (they were accepted by an older version); any
    // unreadable old value counts as "different".
    let old = request
        .old_resource_properties
        .as_ref()
        .and_then(|old| old.optional("FernetRotation").ok().flatten());
    (old != Some(new)).then_some(new)
}

/// Writes `new,old` (Airflow's multi-key form) where old is the current first key.
async fn rotate_fernet_key(
    request: &CustomResourceRequest,
    props: &SecretsProps,
    token: &str,
    store: &dyn SecretStore,
) -> Result<(), HandlerError> {
    const PROPERTY: &str = "FernetKeySecretArn";
    let arn = props.arn(Role::FernetKey);
    let version = version_id(&[
        &request.stack_id,
        &request.logical_resource_id,
        PROPERTY,
        "rotation",
        token,
    ]);
    let versions = store
        .versions(arn)
        .await
        .map_err(HandlerError::store("DescribeSecret", PROPERTY))?;
    if versions.contains(&version) {
        tracing::info!("Fernet key already rotated for this FernetRotation token");
        return Ok(());
    }
    let current = store
        .current_value(arn)
        .await
        .map_err(HandlerError::store("GetSecretValue", PROPERTY))?
        .ok_or(HandlerError::EmptySecret(PROPERTY))?;
    let old_first = current.split(',').next().unwrap_or_default().trim();
    if old_first.is_empty() {
        return Err(HandlerError::EmptySecret(PROPERTY));
    }
    let rotated = format!("{},{}", fernet_key(), old_first);
    match store.put_value(arn, &version, &rotated).await {
        Ok(()) | Err(StoreError::TokenConflict) => {
            tracing::info!(
                "Fernet key rotated; run `airflow rotate-fernet-key`, then drop the old key"
            );
            Ok(())
        }
        Err(source) => Err(HandlerError::Store {
            operation: "PutSecretValue",
            property: PROPERTY,
            source,
        }),
    }
}
