//! CloudFormation custom-resource protocol.
