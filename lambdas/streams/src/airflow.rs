//! The Airflow REST API v2 for the processor: log in with `POST /auth/token` (Airflow
//! 3's auth managers), then trigger DAG runs and record asset events with the bearer
//! token. Neither the password nor the token reaches a log line or an error.

use async_trait::async_trait;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::ports::{AirflowApi, PortError, Triggered};

/// Characters left as they are in a path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A logged-in client. It keeps the credentials to log in again when the token
/// expires (HTTP 401), so one client serves every invocation of an execution
/// environment and a batch costs no login round trip.
pub struct AirflowClient {
    client: reqwest::Client,
    base: String,
    username: String,
    password: String,
    token: tokio::sync::RwLock<String>,
}

/// Describes a transport error without its URL.
fn transport(what: &str, e: reqwest::Error) -> PortError {
    PortError(format!("{what}: {}", e.without_url()))
}

impl AirflowClient {
    /// Logs in as `username` at `base` (e.g. `http://api-server.airflow:8080`).
    pub async fn login(
        client: reqwest::Client,
        base: &str,
        username: &str,
        password: &str,
    ) -> Result<AirflowClient, PortError> {
        let client = AirflowClient {
            client,
            base: base.trim_end_matches('/').to_owned(),
            username: username.to_owned(),
            password: password.to_owned(),
            token: tokio::sync::RwLock::new(String::new()),
        };
        *client.token.write().await = client.token().await?;
        Ok(client)
    }

    /// `POST /auth/token`: a new access token.
    // The body as a struct, like the scaler's: its field names are Airflow's API, not
    // names of the stack's contract (crates/contract/tests/one_spelling.rs).
    async fn token(&self) -> Result<String, PortError> {
        #[derive(Serialize)]
        struct LoginRequest<'a> {
            username: &'a str,
            password: &'a str,
        }
        #[derive(Deserialize)]
        struct Token {
            access_token: String,
        }
        let what = "POST /auth/token";
        let response = self
            .client
            .post(format!("{}/auth/token", self.base))
            .json(&LoginRequest {
                username: &self.username,
                password: &self.password,
            })
            .send()
            .await
            .map_err(|e| transport(what, e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(PortError(format!("{what} answered HTTP {status}")));
        }
        let token: Token = response
            .json()
            .await
            .map_err(|e| transport(&format!("{what}: unexpected body"), e))?;
        Ok(token.access_token)
    }

    /// One call, logging in again once if the token has expired; returns the status
    /// and the body (JSON, `null` when empty or not JSON).
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), PortError> {
        let token = self.token.read().await.clone();
        let answer = self.once(method.clone(), path, query, body, &token).await?;
        if answer.0 != StatusCode::UNAUTHORIZED {
            return Ok(answer);
        }
        let fresh = self.token().await?;
        *self.token.write().await = fresh.clone();
        self.once(method, path, query, body, &fresh).await
    }

    async fn once(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        token: &str,
    ) -> Result<(StatusCode, Value), PortError> {
        let what = format!("{method} {path}");
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .query(query)
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| transport(&what, e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| transport(&what, e))?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }
}

/// An error for an unexpected answer, with Airflow's `detail` when it gave one (it
/// describes the request, e.g. "DAG with dag_id: 'x' not found").
fn refused(what: &str, status: StatusCode, body: &Value) -> PortError {
    let detail = body.get("detail").map(Value::to_string).unwrap_or_default();
    PortError(
        format!("{what} answered HTTP {status} {detail}")
            .trim_end()
            .to_owned(),
    )
}

#[async_trait]
impl AirflowApi for AirflowClient {
    async fn trigger_dag_run(
        &self,
        dag_id: &str,
        run_id: &str,
        conf: &Value,
    ) -> Result<Triggered, PortError> {
        let path = format!(
            "/api/v2/dags/{}/dagRuns",
            utf8_percent_encode(dag_id, SEGMENT)
        );
        let body = json!({ "dag_run_id": run_id, "logical_date": null, "conf": conf });
        let (status, answer) = self.call(Method::POST, &path, &[], Some(&body)).await?;
        match status {
            s if s.is_success() => Ok(Triggered::Created),
            StatusCode::CONFLICT => Ok(Triggered::AlreadyExists),
            s => Err(refused(&format!("POST {path}"), s, &answer)),
        }
    }

    async fn asset_id(&self, uri: &str) -> Result<Option<i64>, PortError> {
        let path = "/api/v2/assets";
        // uri_pattern is a substring match: the exact URI is picked from the page.
        let (status, answer) = self
            .call(
                Method::GET,
                path,
                &[("uri_pattern", uri), ("limit", "100")],
                None,
            )
            .await?;
        if !status.is_success() {
            return Err(refused(&format!("GET {path}"), status, &answer));
        }
        let assets = answer
            .get("assets")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(assets
            .iter()
            .find(|a| a.get("uri").and_then(Value::as_str) == Some(uri))
            .and_then(|a| a.get("id").and_then(Value::as_i64)))
    }

    async fn create_asset_event(&self, asset_id: i64, extra: &Value) -> Result<(), PortError> {
        let path = "/api/v2/assets/events";
        let body = json!({ "asset_id": asset_id, "extra": extra });
        let (status, answer) = self.call(Method::POST, path, &[], Some(&body)).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(refused(&format!("POST {path}"), status, &answer))
        }
    }
}
