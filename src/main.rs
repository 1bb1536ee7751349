//! The `airflow-stack` command: parse the CLI, run one command, map errors to exit
//! codes (0 ok, 1 failure, 2 bad input).

use std::process::ExitCode;

fn main() -> ExitCode {
    airflow_stack::cli::main()
}
