//! FAILED reasons that carry the end of the task's log and still fit the response.
//!
//! The assembly (newest lines first, measured against the real response, secret-shaped
//! values redacted) is cfn-custom-resource's [`cfn_custom_resource::log_tail`], shared
//! with the image-build Lambda.

pub use cfn_custom_resource::log_tail::{with_log_tail, MAX_REASON_CHARS};
