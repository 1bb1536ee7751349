//! `Custom::AirflowSecrets`: generates the Fernet key, the API secret key, the JWT
//! secret and the db, redis, admin, scaler and stream processor passwords into the
//! secrets the template created empty:
//! - `FernetKeySecretArn`, `AdminPasswordSecretArn`, (when the stack runs the scaler)
//!   `ScalerPasswordSecretArn` and (with event streams) `StreamsPasswordSecretArn`, each
//!   a plain string;
//! - `SigningKeysSecretArn`, a JSON object `{"api_secret_key", "jwt_secret"}`;
//! - `DatabaseSecretArn` and `RedisSecretArn`, JSON objects whose `"password"` this
//!   resource writes (`Custom::AirflowConnectionUrls` adds the URL keys later).
//!
//! Values that data depends on are never regenerated: Create writes each value once
//! (idempotently, with a deterministic version id), Update only rotates the Fernet key
//! on request, Delete leaves everything in place. In a JSON secret each key is kept
//! if it is already there, and every key this resource does not own is kept as it is.

use airflow_stack_contract::secrets::{key, property, Secret, SecretsProperties};
use cfn_custom_resource::{CustomResourceRequest, HandlerOutput, Properties};

use crate::error::HandlerError;
use crate::generate::{alphanumeric, fernet_key, version_id, SIGNING_SECRET_LENGTH};
use crate::json_secret;
use crate::props::secret_arn;
use crate::store::{SecretStore, StoreError};

/// How one value is generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Generator {
    /// A Fernet key.
    Fernet,
    /// 86 alphanumerics (API secret key, JWT secret).
    Signing,
    /// `PasswordLength` alphanumerics.
    Password,
}

impl Generator {
    fn generate(self, password_length: usize) -> String {
        match self {
            Generator::Fernet => fernet_key(),
            Generator::Signing => alphanumeric(SIGNING_SECRET_LENGTH),
            Generator::Password => alphanumeric(password_length),
        }
    }
}

/// What a secret holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// The whole secret string is one value.
    Plain(Generator),
    /// A JSON object; this resource owns these keys.
    Json(&'static [(&'static str, Generator)]),
}

/// What this resource writes into each secret. The keys are the contract's: the
/// template reads them (`valueFrom: <arn>:<key>::`, dynamic references).
const fn shape(secret: Secret) -> Shape {
    match secret {
        Secret::FernetKey => Shape::Plain(Generator::Fernet),
        Secret::SigningKeys => Shape::Json(&[
            (key::API_SECRET_KEY, Generator::Signing),
            (key::JWT_SECRET, Generator::Signing),
        ]),
        // The master password, and the Airflow user's (added to the secret of a stack
        // deployed before there was one by the first Update).
        Secret::Database => Shape::Json(&[
            (key::PASSWORD, Generator::Password),
            (key::AIRFLOW_PASSWORD, Generator::Password),
        ]),
        Secret::Redis => Shape::Json(&[(key::PASSWORD, Generator::Password)]),
        Secret::AdminPassword | Secret::ScalerPassword | Secret::StreamsPassword => {
            Shape::Plain(Generator::Password)
        }
    }
}

/// The validated properties.
type SecretsProps = SecretsProperties<String>;

/// Reads the properties (the contract checks presence and the password length) and
/// checks that each secret property holds a Secrets Manager ARN.
fn parse(props: &Properties) -> Result<SecretsProps, HandlerError> {
    let parsed = SecretsProperties::read(&props.0)?;
    for (secret, arn) in parsed.present() {
        secret_arn(secret.property(), arn)?;
    }
    Ok(parsed)
}

/// Create: fill every secret that this resource has not filled yet.
pub async fn create(
    request: &CustomResourceRequest,
    store: &dyn SecretStore,
) -> Result<HandlerOutput, HandlerError> {
    let props = parse(&request.resource_properties)?;
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
    let props = parse(&request.resource_properties)?;
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
    for (secret, arn) in props.present() {
        let property = secret.property();
        let version = version_id(&[
            &request.stack_id,
            &request.logical_resource_id,
            property,
            "initial",
        ]);
        let password_length = props.password_length as usize;
        match shape(secret) {
            Shape::Plain(generator) => {
                let written = ensure_initial_value(store, arn, property, &version, || {
                    generator.generate(password_length)
                })
                .await?;
                tracing::info!(secret = property, written, "initial value ensured");
            }
            Shape::Json(keys) => {
                let added =
                    ensure_json_keys(store, arn, property, &version, keys, password_length).await?;
                tracing::info!(
                    secret = property,
                    written = !added.is_empty(),
                    keys_added = added.join(","),
                    "initial JSON keys ensured"
                );
            }
        }
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

/// Keys whose value the stack gives to their user again on every deploy: the Airflow
/// database user's password (the migration task sets it). A new value for one of them
/// loses nothing, so it may be added long after the secret was first filled.
const RESETTABLE_KEYS: [&str; 1] = [key::AIRFLOW_PASSWORD];

/// The version id of a write that adds `added`: the resource's initial version, unless
/// only resettable keys are added. Those get a version of their own: the initial one
/// exists already in a stack deployed before they did (reusing it would conflict), and
/// two racing duplicates still compute the same id.
fn version_for(initial: &str, added: &[&str]) -> String {
    if added.iter().all(|k| RESETTABLE_KEYS.contains(k)) {
        version_id(&[initial, &added.join(",")])
    } else {
        initial.to_owned()
    }
}

/// Adds each of `keys` that the JSON secret does not hold yet (read-modify-write,
/// every other key kept) under `version`; returns the keys added.
///
/// A key that is already there keeps its value, whoever wrote it. The version id is
/// the same for every attempt, so two racing duplicates cannot both win: the loser's
/// PutSecretValue conflicts, and the winner's values stand.
async fn ensure_json_keys(
    store: &dyn SecretStore,
    arn: &str,
    property: &'static str,
    version: &str,
    keys: &[(&'static str, Generator)],
    password_length: usize,
) -> Result<Vec<&'static str>, HandlerError> {
    let current = store
        .current_value(arn)
        .await
        .map_err(HandlerError::store("GetSecretValue", property))?;
    let mut document = json_secret::parse(property, current.as_deref())?;
    let mut added = Vec::new();
    for (key, generator) in keys {
        if json_secret::string_key(&document, property, key)?.is_none() {
            document.insert(
                (*key).to_owned(),
                generator.generate(password_length).into(),
            );
            added.push(*key);
        }
    }
    if added.is_empty() {
        return Ok(added);
    }
    let version = version_for(version, &added);
    match store
        .put_value(arn, &version, &json_secret::to_text(&document))
        .await
    {
        Ok(()) => Ok(added),
        Err(StoreError::TokenConflict) => {
            // Either a concurrent duplicate wrote first (its values stand), or this
            // resource wrote its keys long ago and someone removed one since: then a
            // new value would not match what uses the old one, so fail instead.
            let now = store
                .current_value(arn)
                .await
                .map_err(HandlerError::store("GetSecretValue", property))?;
            let document = json_secret::parse(property, now.as_deref())?;
            for (key, _) in keys {
                if json_secret::string_key(&document, property, key)?.is_none() {
                    return Err(HandlerError::KeyRemoved { property, key });
                }
            }
            Ok(Vec::new())
        }
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
        .and_then(|old| old.optional(property::FERNET_ROTATION).ok().flatten());
    (old != Some(new)).then_some(new)
}

/// Writes `new,<every current key>` (Airflow's multi-key form: it encrypts with the first
/// key and decrypts with any). Every current key is kept, not only the first: a second
/// rotation before `airflow rotate-fernet-key` re-encrypted everything must not drop a
/// key that stored data still needs.
async fn rotate_fernet_key(
    request: &CustomResourceRequest,
    props: &SecretsProps,
    token: &str,
    store: &dyn SecretStore,
) -> Result<(), HandlerError> {
    const PROPERTY: &str = Secret::FernetKey.property();
    let arn = &props.fernet_key_secret_arn;
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
    let mut keys: Vec<&str> = Vec::new();
    for key in current.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    if keys.is_empty() {
        return Err(HandlerError::EmptySecret(PROPERTY));
    }
    let rotated = format!("{},{}", fernet_key(), keys.join(","));
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
