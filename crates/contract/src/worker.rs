//! The worker's side of the drain protocol (with autoscaling on): what the template
//! (src/stack/services.rs) passes the Celery worker container, and the task tag the
//! scaler (lambdas/scaler) sets and the worker module
//! (src/stack/worker/airflow_stack_worker.py) reads.
//!
//! The worker protects its own ECS task while it holds a message, and stops consuming
//! once its task carries [`DRAIN_TAG`] = [`DRAIN_VALUE`]; the scaler tags the workers it
//! wants gone and lowers the count only when they are idle and unprotected.

/// The task tag key that asks a worker to drain.
pub const DRAIN_TAG: &str = "airflow-stack:drain";
/// The tag value that means "drain" (any other value, or no tag, means "consume").
pub const DRAIN_VALUE: &str = crate::wire::TRUE;
/// Minutes a worker protects its task for while it holds a message (renewed while
/// busy, so it lapses on its own if the worker dies without clearing it).
pub const PROTECTION_MINUTES: u32 = 60;

/// The Python module's file name in `$AIRFLOW_HOME/config` (on Airflow's `sys.path`).
pub const MODULE_FILE: &str = "airflow_stack_worker.py";
/// `[celery] celery_config_options`: the module's Celery configuration, which hooks the
/// protection and drain into the worker.
pub const CELERY_CONFIG: &str = "airflow_stack_worker.CELERY_CONFIG";

/// The environment variable names of the worker container. Only this crate spells them.
pub mod variable {
    /// The module's source; the container command writes it to [`super::MODULE_FILE`].
    pub const MODULE: &str = "AIRFLOW_STACK_WORKER_MODULE";
    /// Airflow's `[celery] celery_config_options`, set to [`super::CELERY_CONFIG`].
    pub const CELERY_CONFIG_OPTIONS: &str = "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS";
    /// The drain tag key ([`super::DRAIN_TAG`]).
    pub const DRAIN_TAG: &str = "AIRFLOW_STACK_DRAIN_TAG";
    /// [`super::PROTECTION_MINUTES`].
    pub const PROTECTION_MINUTES: &str = "AIRFLOW_STACK_PROTECTION_MINUTES";
}

/// The worker container's command: write the module from its variable into
/// `$AIRFLOW_HOME/config`, then exec the Celery worker (the image's entrypoint runs a
/// `bash` command as given).
pub fn command() -> [String; 3] {
    let script = format!(
        "mkdir -p \"$AIRFLOW_HOME/config\" && printf '%s' \"${module}\" > \"$AIRFLOW_HOME/config/{file}\" && exec airflow celery worker",
        module = variable::MODULE,
        file = MODULE_FILE,
    );
    ["bash".to_owned(), "-c".to_owned(), script]
}

/// The worker container's extra environment, by name, given the module's source.
pub fn environment(module_source: &str) -> Vec<(&'static str, String)> {
    vec![
        (variable::MODULE, module_source.to_owned()),
        (variable::CELERY_CONFIG_OPTIONS, CELERY_CONFIG.to_owned()),
        (variable::DRAIN_TAG, DRAIN_TAG.to_owned()),
        (variable::PROTECTION_MINUTES, PROTECTION_MINUTES.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_the_contract_s() {
        assert_eq!(
            command(),
            [
                "bash",
                "-c",
                "mkdir -p \"$AIRFLOW_HOME/config\" && printf '%s' \"$AIRFLOW_STACK_WORKER_MODULE\" > \"$AIRFLOW_HOME/config/airflow_stack_worker.py\" && exec airflow celery worker",
            ]
        );
    }

    #[test]
    fn the_environment_names_every_variable_once() {
        let env = environment("print('x')");
        let names: Vec<&str> = env.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [
                "AIRFLOW_STACK_WORKER_MODULE",
                "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS",
                "AIRFLOW_STACK_DRAIN_TAG",
                "AIRFLOW_STACK_PROTECTION_MINUTES",
            ]
        );
        assert_eq!(env[1].1, "airflow_stack_worker.CELERY_CONFIG");
        assert_eq!(env[2].1, "airflow-stack:drain");
        assert_eq!(env[3].1, "60");
    }
}
