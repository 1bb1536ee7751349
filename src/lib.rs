//! airflow-stack: Apache Airflow 3 on AWS ECS Fargate from one YAML stack file.
//!
//! The flow is one-directional: [`spec`] parses and validates the stack file,
//! [`stack::build`] turns it into a typed [`cfn::Template`] (a pure function), and
//! [`cli`] renders or deploys it.

pub mod aws;
pub mod cfn;
pub mod cli;
pub mod cost;
pub mod image;
pub mod plan;
pub mod spec;
pub mod stack;
