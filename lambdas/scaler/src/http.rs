//! The one HTTP client of the function, for the Airflow API and the Slack webhook.

use std::time::Duration;

/// A client with short timeouts that never follows redirects: a redirect from the
/// webhook host would resend the notice (and the request to a URL that is a
/// credential) to wherever it points, and the Airflow API has no reason to redirect.
/// A 3xx answer is therefore an error the caller reports.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    // reqwest is built without a bundled crypto provider: install the process-wide
    // rustls default first (a second install is refused, harmlessly).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}
