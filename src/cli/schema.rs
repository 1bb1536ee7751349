//! `airflow-stack schema`: the JSON Schema of the stack file.

use super::Failure;

pub fn run() -> Result<(), Failure> {
    let schema =
        serde_json::to_string_pretty(&crate::spec::json_schema()).expect("schemas serialise");
    println!("{schema}");
    Ok(())
}
