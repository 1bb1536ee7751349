//! Test support: a std-only HTTP server that records what is sent to it.
//!
//! It stands in for the presigned S3 `ResponseURL` in unit and integration tests of
//! every custom-resource Lambda. It is plain `std` (no async runtime) so it behaves the
//! same inside `#[tokio::test]` and next to a spawned Lambda process.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as received.
#[derive(Debug, Clone)]
pub struct CapturedRequest {
    /// HTTP method, e.g. `PUT`.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header names lower-cased, values as sent (trimmed).
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl CapturedRequest {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body parsed as JSON (panics if it is not JSON: this is for tests).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A listening server on 127.0.0.1 that records every request on a background thread.
pub struct CaptureServer {
    port: u16,
    requests: Arc<Mutex<Vec<CapturedRequest>>>,
}

impl CaptureServer {
    /// Starts the server. The first requests are answered with the statuses in
    /// `scripted_statuses` (to test retries), every later one with 200.
    pub fn start(scripted_statuses: Vec<u16>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind capture server");
        let port = listener.local_addr().expect("local addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&requests);
        std::thread::spawn(move || {
            let mut statuses = scripted_statuses.into_iter();
            for stream in listener.incoming().flatten() {
                let status = statuses.next().unwrap_or(200);
                if let Some(request) = serve_one(stream, status) {
                    sink.lock().expect("capture lock").push(request);
                }
            }
        });
        Self { port, requests }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Everything received so far.
    pub fn requests(&self) -> Vec<CapturedRequest> {
        self.requests.lock().expect("capture lock").clone()
    }

    /// Waits until at least `count` requests arrived or `timeout` passed, then returns
    /// what arrived (callers assert on the length).
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<CapturedRequest> {
        let until = Instant::now() + timeout;
        loop {
            let seen = self.requests();
            if seen.len() >= count || Instant::now() >= until {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Reads one HTTP/1.1 request from `stream` and answers it with `status`.
fn serve_one(stream: TcpStream, status: u16) -> Option<CapturedRequest> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let request = read_request(&mut reader)?;
    let mut stream = stream;
    let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    stream.write_all(reply.as_bytes()).ok()?;
    stream.flush().ok()?;
    Some(request)
}

/// Parses a request line, headers and a Content-Length body.
pub fn read_request(reader: &mut impl BufRead) -> Option<CapturedRequest> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            break;
        }
        let header = header.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(CapturedRequest {
        method,
        path,
        headers,
        body,
    })
}

/// A URL on 127.0.0.1 where nothing listens (connections are refused).
pub fn unreachable_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}/never")
}
