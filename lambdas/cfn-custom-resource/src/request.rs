//! The custom-resource request event.
//!
//! Two views of the same JSON: [`Envelope`] reads, without failing, what is needed to
//! answer at all (`ResponseURL` and the ids to copy); [`CustomResourceRequest`] is the
//! validated request a handler works with.

use airflow_stack_contract::wire;
use serde_json::{Map, Value};

// How a property travels (every scalar a string, a size limit, errors that name the
// property and never its value) is part of the contract between the template and the
// Lambdas, so it lives in the contract crate; this crate re-exports it.
pub use airflow_stack_contract::wire::{PropertyError, MAX_PROPERTY_BYTES};

/// Longest `ResourceType` CloudFormation allows (`Custom::` plus 60 characters).
const MAX_RESOURCE_TYPE_CHARS: usize = 68;

/// What kind of lifecycle call this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestType {
    /// The resource is being created.
    Create,
    /// The resource's properties changed; `OldResourceProperties` holds the previous ones.
    Update,
    /// The resource is being deleted (also after a failed Create).
    Delete,
}

impl RequestType {
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "Create" => Some(Self::Create),
            "Update" => Some(Self::Update),
            "Delete" => Some(Self::Delete),
            _ => None,
        }
    }
}

/// The fields needed to answer CloudFormation, read leniently from any JSON value.
///
/// Every field is optional so that even a malformed event can be answered when it at
/// least carries a `ResponseURL`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// Presigned URL the single answer is PUT to.
    pub response_url: Option<String>,
    /// Copied into the response.
    pub stack_id: Option<String>,
    /// Copied into the response.
    pub request_id: Option<String>,
    /// Copied into the response.
    pub logical_resource_id: Option<String>,
    /// Present on Update and Delete; echoed so the resource is never replaced by accident.
    pub physical_resource_id: Option<String>,
    /// `Create`, `Update`, `Delete`, or whatever else was sent.
    pub request_type: Option<String>,
}

impl Envelope {
    /// Reads the answer-related fields; missing or non-string fields become `None`.
    pub fn from_event(event: &Value) -> Self {
        let text = |key: &str| event.get(key).and_then(Value::as_str).map(str::to_owned);
        Self {
            response_url: text("ResponseURL"),
            stack_id: text("StackId"),
            request_id: text("RequestId"),
            logical_resource_id: text("LogicalResourceId"),
            physical_resource_id: text("PhysicalResourceId"),
            request_type: text("RequestType"),
        }
    }
}

/// Why a request could not be understood. The messages name fields, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The event is not a JSON object.
    #[error("the event is not a JSON object")]
    NotAnObject,
    /// A required top-level field is absent or not a string.
    #[error("the request has no string field {0}")]
    MissingField(&'static str),
    /// `RequestType` is not Create, Update or Delete.
    #[error("unknown RequestType (expected Create, Update or Delete)")]
    UnknownRequestType,
    /// Update and Delete must carry the id we returned on Create.
    #[error("the {0} request has no PhysicalResourceId")]
    MissingPhysicalResourceId(&'static str),
    /// `ResourceProperties` or `OldResourceProperties` is not an object.
    #[error("{0} is not a JSON object")]
    PropertiesNotAnObject(&'static str),
    /// `ResourceType` is absurdly long.
    #[error("ResourceType is longer than {MAX_RESOURCE_TYPE_CHARS} characters")]
    ResourceTypeTooLong,
}

/// A validated custom-resource request.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomResourceRequest {
    /// Create, Update or Delete.
    pub request_type: RequestType,
    /// Presigned URL for the answer.
    pub response_url: String,
    /// The stack's ARN.
    pub stack_id: String,
    /// Unique per request (and the same on redelivery of the same request).
    pub request_id: String,
    /// `Custom::Something`, used to dispatch to a handler.
    pub resource_type: String,
    /// The resource's logical id in the template.
    pub logical_resource_id: String,
    /// Present on Update and Delete.
    pub physical_resource_id: Option<String>,
    /// The (new) properties.
    pub resource_properties: Properties,
    /// The previous properties, on Update only.
    pub old_resource_properties: Option<Properties>,
}

impl CustomResourceRequest {
    /// Validates the top-level shape of an event. Property values are checked later, by
    /// the handler, through [`Properties`].
    pub fn from_event(event: &Value) -> Result<Self, RequestError> {
        let object = event.as_object().ok_or(RequestError::NotAnObject)?;
        let text = |key: &'static str| {
            object
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or(RequestError::MissingField(key))
        };
        let request_type =
            RequestType::parse(&text("RequestType")?).ok_or(RequestError::UnknownRequestType)?;
        let resource_type = text("ResourceType")?;
        if resource_type.chars().count() > MAX_RESOURCE_TYPE_CHARS {
            return Err(RequestError::ResourceTypeTooLong);
        }
        let physical_resource_id = object
            .get("PhysicalResourceId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if physical_resource_id.is_none() {
            match request_type {
                RequestType::Update => {
                    return Err(RequestError::MissingPhysicalResourceId("Update"))
                }
                RequestType::Delete => {
                    return Err(RequestError::MissingPhysicalResourceId("Delete"))
                }
                RequestType::Create => {}
            }
        }
        Ok(Self {
            request_type,
            response_url: text("ResponseURL")?,
            stack_id: text("StackId")?,
            request_id: text("RequestId")?,
            resource_type,
            logical_resource_id: text("LogicalResourceId")?,
            physical_resource_id,
            resource_properties: properties_field(object, "ResourceProperties")?
                .unwrap_or_default(),
            old_resource_properties: properties_field(object, "OldResourceProperties")?,
        })
    }
}

/// Reads an optional property map; absent or null is `None`, anything but an object is
/// an error.
fn properties_field(
    object: &Map<String, Value>,
    key: &'static str,
) -> Result<Option<Properties>, RequestError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(Properties(map.clone()))),
        Some(_) => Err(RequestError::PropertiesNotAnObject(key)),
    }
}

/// A resource's property map with string-only accessors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Properties(pub Map<String, Value>);

impl Properties {
    /// A required, non-empty string property.
    pub fn required(&self, name: &str) -> Result<&str, PropertyError> {
        wire::required(&self.0, name)
    }

    /// An optional string property; absent, null and empty are all `None`.
    pub fn optional(&self, name: &str) -> Result<Option<&str>, PropertyError> {
        wire::optional(&self.0, name)
    }

    /// An optional string property with a default for absent or empty values.
    pub fn or_default<'a>(
        &'a self,
        name: &str,
        default: &'a str,
    ) -> Result<&'a str, PropertyError> {
        Ok(self.optional(name)?.unwrap_or(default))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn create_event() -> Value {
        json!({
            "RequestType": "Create",
            "ResponseURL": "http://127.0.0.1:1/r",
            "StackId": "arn:aws:cloudformation:us-east-1:123:stack/s/1",
            "RequestId": "req-1",
            "ResourceType": "Custom::Thing",
            "LogicalResourceId": "Thing",
            "ResourceProperties": {"ServiceToken": "arn", "A": "1", "N": 3, "E": ""}
        })
    }

    #[test]
    fn parses_a_create_request() {
        let request = CustomResourceRequest::from_event(&create_event()).unwrap();
        assert_eq!(request.request_type, RequestType::Create);
        assert_eq!(request.resource_type, "Custom::Thing");
        assert_eq!(request.physical_resource_id, None);
        assert_eq!(request.resource_properties.required("A").unwrap(), "1");
    }

    #[test]
    fn property_accessors_reject_non_strings_and_missing_values() {
        let request = CustomResourceRequest::from_event(&create_event()).unwrap();
        let props = &request.resource_properties;
        assert_eq!(
            props.required("N"),
            Err(PropertyError::NotAString("N".into()))
        );
        assert_eq!(props.required("E"), Err(PropertyError::Missing("E".into())));
        assert_eq!(props.required("Z"), Err(PropertyError::Missing("Z".into())));
        assert_eq!(props.or_default("Z", "d").unwrap(), "d");
    }

    #[test]
    fn oversized_property_is_rejected() {
        let mut event = create_event();
        event["ResourceProperties"]["Big"] = json!("x".repeat(MAX_PROPERTY_BYTES + 1));
        let request = CustomResourceRequest::from_event(&event).unwrap();
        assert_eq!(
            request.resource_properties.required("Big"),
            Err(PropertyError::TooLong("Big".into()))
        );
    }

    #[test]
    fn unknown_request_type_is_an_error_but_the_envelope_survives() {
        let mut event = create_event();
        event["RequestType"] = json!("Explode");
        assert_eq!(
            CustomResourceRequest::from_event(&event),
            Err(RequestError::UnknownRequestType)
        );
        let envelope = Envelope::from_event(&event);
        assert_eq!(
            envelope.response_url.as_deref(),
            Some("http://127.0.0.1:1/r")
        );
        assert_eq!(envelope.request_id.as_deref(), Some("req-1"));
    }

    #[test]
    fn update_and_delete_need_a_physical_id() {
        let mut event = create_event();
        event["RequestType"] = json!("Delete");
        assert_eq!(
            CustomResourceRequest::from_event(&event),
            Err(RequestError::MissingPhysicalResourceId("Delete"))
        );
    }

    #[test]
    fn non_object_events_are_rejected() {
        assert_eq!(
            CustomResourceRequest::from_event(&json!([1, 2])),
            Err(RequestError::NotAnObject)
        );
        assert_eq!(Envelope::from_event(&json!("x")), Envelope::default());
    }

    #[test]
    fn properties_must_be_an_object() {
        let mut event = create_event();
        event["ResourceProperties"] = json!("nope");
        assert_eq!(
            CustomResourceRequest::from_event(&event),
            Err(RequestError::PropertiesNotAnObject("ResourceProperties"))
        );
    }
}
