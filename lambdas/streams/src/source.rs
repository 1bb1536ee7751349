//! The stream's HTTP connection: a GET with `Accept`, the auth header from Secrets
//! Manager and `Last-Event-ID` when there is one to resume from.

use std::time::Duration;

use airflow_stack_contract::streams::Format;
use async_trait::async_trait;
use reqwest::header::{HeaderName, HeaderValue};

use crate::ports::PortError;

/// Bytes of an open connection.
#[async_trait]
pub trait Connection: Send {
    /// The next chunk; `None` when the server closed the stream.
    async fn chunk(&mut self) -> Result<Option<Vec<u8>>, PortError>;
}

/// Opens connections to the stream.
#[async_trait]
pub trait Source: Send + Sync {
    /// Connects, resuming after `last_event_id` when given.
    async fn connect(&self, last_event_id: Option<&str>) -> Result<Box<dyn Connection>, PortError>;
}

/// The stream over HTTP(S).
pub struct HttpSource {
    client: reqwest::Client,
    url: String,
    accept: &'static str,
    auth: Option<(HeaderName, HeaderValue)>,
}

/// The variable naming a PEM file of certificate authorities trusted besides the
/// webpki roots: OpenSSL's convention, so a stream behind a private CA needs nothing
/// new. The template sets none today; the end-to-end run sets it for its local https
/// stream server, as a stack-file option for a private CA would.
pub const EXTRA_CA_FILE_VARIABLE: &str = "SSL_CERT_FILE";

/// The client for the stream, trusting the webpki roots and the authorities in
/// [`EXTRA_CA_FILE_VARIABLE`] when it is set (a file that cannot be read or holds no
/// certificate is an error naming it, never a silent fallback).
pub fn stream_client() -> Result<reqwest::Client, PortError> {
    let extra = std::env::var_os(EXTRA_CA_FILE_VARIABLE).filter(|v| !v.is_empty());
    stream_client_trusting(extra.as_deref().map(std::path::Path::new))
}

/// The client for the stream: a connect timeout but no total one (the connection is
/// meant to stay open; the manager puts a deadline on every read), and no redirects: a
/// redirect would carry the auth header to wherever it points. `extra_ca` is a PEM
/// file of authorities trusted besides the webpki roots.
pub fn stream_client_trusting(
    extra_ca: Option<&std::path::Path>,
) -> Result<reqwest::Client, PortError> {
    // reqwest is built without a bundled crypto provider: install the process-wide
    // rustls default first (a second install is refused, harmlessly).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = extra_ca {
        for certificate in authorities(path)? {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder
        .build()
        .map_err(|e| PortError(format!("HTTP client: {e}")))
}

/// The certificates of a PEM bundle, at least one.
fn authorities(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, PortError> {
    let named = |problem: String| {
        PortError(format!(
            "{EXTRA_CA_FILE_VARIABLE} {}: {problem}",
            path.display()
        ))
    };
    let pem = std::fs::read(path).map_err(|e| named(e.to_string()))?;
    let certificates =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| named(e.to_string()))?;
    if certificates.is_empty() {
        return Err(named("holds no PEM certificate".into()));
    }
    Ok(certificates)
}

impl HttpSource {
    /// A source for `url`. `auth` is the header's name and value; the value is marked
    /// sensitive and never appears in an error.
    pub fn new(
        client: reqwest::Client,
        url: &str,
        format: Format,
        auth: Option<(&str, &str)>,
    ) -> Result<HttpSource, PortError> {
        let auth = match auth {
            None => None,
            Some((name, value)) => {
                let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    PortError(format!("the auth header name {name:?} is not valid"))
                })?;
                let mut value = HeaderValue::from_str(value.trim()).map_err(|_| {
                    PortError(format!(
                        "the auth secret's value is not a valid value for header {name}"
                    ))
                })?;
                value.set_sensitive(true);
                Some((name, value))
            }
        };
        Ok(HttpSource {
            client,
            url: url.to_owned(),
            accept: match format {
                Format::Sse => "text/event-stream",
                Format::Ndjson => "application/x-ndjson",
            },
            auth,
        })
    }
}

struct HttpConnection(reqwest::Response);

#[async_trait]
impl Connection for HttpConnection {
    async fn chunk(&mut self) -> Result<Option<Vec<u8>>, PortError> {
        self.0
            .chunk()
            .await
            .map(|c| c.map(|b| b.to_vec()))
            .map_err(|e| PortError(format!("reading the stream: {}", e.without_url())))
    }
}

#[async_trait]
impl Source for HttpSource {
    async fn connect(&self, last_event_id: Option<&str>) -> Result<Box<dyn Connection>, PortError> {
        let mut request = self
            .client
            .get(&self.url)
            .header("accept", self.accept)
            .header("cache-control", "no-cache");
        if let Some((name, value)) = &self.auth {
            request = request.header(name, value);
        }
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        // without_url: the URL may hold a vendor token in its query.
        let response = request
            .send()
            .await
            .map_err(|e| PortError(format!("connecting to the stream: {}", e.without_url())))?;
        let status = response.status();
        if !status.is_success() {
            return Err(PortError(format!("the stream answered HTTP {status}")));
        }
        Ok(Box::new(HttpConnection(response)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_auth_value_is_refused_without_showing_it() {
        let client = stream_client().unwrap();
        let error = HttpSource::new(
            client.clone(),
            "http://x",
            Format::Sse,
            Some(("x-key", "zq\nxw")),
        )
        .err()
        .unwrap();
        assert!(
            !error.0.contains("zq") && !error.0.contains("xw"),
            "{error}"
        );
        assert!(error.0.contains("x-key"));
        let error = HttpSource::new(
            client,
            "http://x",
            Format::Ndjson,
            Some(("bad header", "v")),
        )
        .err()
        .unwrap();
        assert!(error.0.contains("bad header"));
    }
}
