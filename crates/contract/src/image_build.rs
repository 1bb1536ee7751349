//! `Custom::ImageBuild`: the template (src/stack) asks the image-build Lambda
//! (lambdas/image-build) for the stack's Airflow image, tagged by the hash of everything
//! that goes into it. The Lambda answers at once when ECR already holds that tag, and
//! otherwise runs the stack's CodeBuild project on the uploaded build context and waits
//! for it (across Lambda's 15 minutes).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::wire::{self, PropertyError, PropertyMap, PropertyValue};

/// Resource type of the image build. Written by the CLI.
pub const RESOURCE_TYPE: &str = "Custom::ImageBuild";

/// Seconds CloudFormation waits for the image-build resource (`ServiceTimeout`, whose
/// maximum is 3600). Written by the CLI.
pub const SERVICE_TIMEOUT_SECONDS: u32 = 3600;
/// The Lambda's own limit across all its self-invocations, counted from the first one:
/// it answers FAILED after this, before CloudFormation's [`SERVICE_TIMEOUT_SECONDS`].
pub const MAX_WAIT_SECONDS: u32 = 3300;
/// The CodeBuild project's `TimeoutInMinutes` the CLI should write: CodeBuild itself
/// ends a longer build as `TIMED_OUT` before the Lambda's [`MAX_WAIT_SECONDS`] passes,
/// so the answer names the build's own status and log rather than a limit.
pub const BUILD_TIMEOUT_MINUTES: u32 = 50;
const _: () = assert!(MAX_WAIT_SECONDS < SERVICE_TIMEOUT_SECONDS);
const _: () = assert!(BUILD_TIMEOUT_MINUTES * 60 < MAX_WAIT_SECONDS);

/// The build's environment variable holding the image tag: StartBuild sets it
/// (`environmentVariablesOverride`), the buildspec the CLI renders tags and pushes
/// `$IMAGE_TAG`.
pub const IMAGE_TAG_VARIABLE: &str = "IMAGE_TAG";

/// The response `Data` key of the image reference `<repositoryUri>:<tag>`, read with
/// `Fn::GetAtt [<logical id>, ImageUri]`. It is also the resource's physical id.
pub const IMAGE_URI_ATTRIBUTE: &str = "ImageUri";

/// Longest image tag ECR accepts (`imageTag`, 1-300 characters in the API; 128 is the
/// Docker tag limit, which `docker push` enforces).
pub const MAX_IMAGE_TAG_CHARS: usize = 128;

/// The property names. Only this crate spells them.
pub mod property {
    /// The CodeBuild project (name) that builds and pushes the image.
    pub const PROJECT_NAME: &str = "ProjectName";
    /// The ECR repository (name) the image is pushed to.
    pub const REPOSITORY_NAME: &str = "RepositoryName";
    /// The tag: a lowercase hex content hash of everything that goes into the image.
    pub const IMAGE_TAG: &str = "ImageTag";
    /// The build context zip in S3 as `bucket/key` (CodeBuild's S3 source location).
    pub const SOURCE_LOCATION: &str = "SourceLocation";
}

/// Properties of `Custom::ImageBuild` (besides `ServiceToken` and `ServiceTimeout`).
///
/// Written by the CLI (src/stack) with `V` its template expression type; read by the
/// image-build Lambda with `V = String` through [`ImageBuildProperties::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageBuildProperties<V> {
    /// `ProjectName`.
    pub project_name: V,
    /// `RepositoryName`.
    pub repository_name: V,
    /// `ImageTag`: 1 to [`MAX_IMAGE_TAG_CHARS`] lowercase hex digits.
    pub image_tag: V,
    /// `SourceLocation`: `bucket/key`.
    pub source_location: V,
}

impl<V> ImageBuildProperties<V> {
    /// The properties as the template holds them, by name.
    pub fn to_properties(&self) -> PropertyMap<V>
    where
        V: Clone,
    {
        let one = |v: &V| PropertyValue::One(v.clone());
        PropertyMap::from([
            (property::PROJECT_NAME, one(&self.project_name)),
            (property::REPOSITORY_NAME, one(&self.repository_name)),
            (property::IMAGE_TAG, one(&self.image_tag)),
            (property::SOURCE_LOCATION, one(&self.source_location)),
        ])
    }
}

impl ImageBuildProperties<String> {
    /// Reads the properties CloudFormation sent. Errors name the property, never its
    /// value.
    pub fn read(properties: &Map<String, Value>) -> Result<Self, PropertyError> {
        let required = |name| wire::required(properties, name).map(str::to_owned);
        let image_tag = required(property::IMAGE_TAG)?;
        if !is_image_tag(&image_tag) {
            return Err(PropertyError::invalid(
                property::IMAGE_TAG,
                format!("1 to {MAX_IMAGE_TAG_CHARS} lowercase hexadecimal digits"),
            ));
        }
        let source_location = required(property::SOURCE_LOCATION)?;
        if source_location_parts(&source_location).is_none() {
            return Err(PropertyError::invalid(
                property::SOURCE_LOCATION,
                "bucket/key of the build context zip in S3",
            ));
        }
        Ok(Self {
            project_name: required(property::PROJECT_NAME)?,
            repository_name: required(property::REPOSITORY_NAME)?,
            image_tag,
            source_location,
        })
    }
}

/// Whether `tag` is a content hash as the CLI writes it.
pub fn is_image_tag(tag: &str) -> bool {
    (1..=MAX_IMAGE_TAG_CHARS).contains(&tag.len())
        && tag
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `(bucket, key)` of a `bucket/key` source location; `None` when either part is empty.
pub fn source_location_parts(location: &str) -> Option<(&str, &str)> {
    location
        .split_once('/')
        .filter(|(bucket, key)| !bucket.is_empty() && !key.is_empty())
}

impl<V: Serialize + Clone> Serialize for ImageBuildProperties<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_properties().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ImageBuildProperties<String> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        wire::deserialize_with(deserializer, Self::read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cli() -> ImageBuildProperties<String> {
        ImageBuildProperties {
            project_name: "airflow-dev-image".into(),
            repository_name: "airflow-dev".into(),
            image_tag: "0123456789abcdef".into(),
            source_location: "assets-bucket/image/0123456789abcdef.zip".into(),
        }
    }

    #[test]
    fn round_trips_from_the_cli_shape_to_the_lambda_shape() {
        let template = serde_json::to_value(cli()).unwrap();
        assert_eq!(
            template,
            json!({"ProjectName": "airflow-dev-image", "RepositoryName": "airflow-dev",
                   "ImageTag": "0123456789abcdef",
                   "SourceLocation": "assets-bucket/image/0123456789abcdef.zip"})
        );
        let lambda: ImageBuildProperties<String> = serde_json::from_value(template).unwrap();
        assert_eq!(lambda, cli());
    }

    #[test]
    fn the_tag_must_be_lowercase_hex_and_the_location_bucket_slash_key() {
        for bad_tag in ["", "ABCDEF", "latest", "12 34", &"a".repeat(129)] {
            let mut template = serde_json::to_value(cli()).unwrap();
            template[property::IMAGE_TAG] = json!(bad_tag);
            let error = ImageBuildProperties::read(template.as_object().unwrap()).unwrap_err();
            assert!(error.to_string().contains(property::IMAGE_TAG), "{error}");
        }
        for bad_location in ["bucket", "/key", "bucket/", "s"] {
            let mut template = serde_json::to_value(cli()).unwrap();
            template[property::SOURCE_LOCATION] = json!(bad_location);
            let error = ImageBuildProperties::read(template.as_object().unwrap()).unwrap_err();
            assert!(error.to_string().contains(property::SOURCE_LOCATION));
        }
        assert_eq!(
            source_location_parts("b/a/b/c.zip"),
            Some(("b", "a/b/c.zip"))
        );
    }
}
