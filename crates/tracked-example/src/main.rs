//! `bootstrap` of the example tracked function (provided.al2023).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let tracking = lambda_tracking::Tracking::stdout();
    tracking.init_subscriber();
    lambda_runtime::run(tracking.service(airflow_tracked_example::handle)).await
}
