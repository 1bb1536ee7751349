//! A std-only Lambda Runtime API (the part `lambda_runtime` uses), so the built
//! `bootstrap` can run as a real process in tests.

use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cfn_custom_resource::testing::read_request;

/// What the function posted back for one invocation.
#[derive(Debug, Clone)]
pub struct Posted {
    /// The invocation's request id.
    pub request_id: String,
    /// `response`, `error`, or `init-error`.
    pub kind: String,
    /// The posted body.
    pub body: String,
    /// When it arrived.
    pub at: Instant,
}

struct Event {
    request_id: String,
    deadline_ms: u64,
    body: Vec<u8>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Event>,
    posted: Vec<Posted>,
    closed: bool,
}

/// The emulator; each queued event is handed to the next `GET .../invocation/next`.
#[derive(Clone)]
pub struct RuntimeApi {
    port: u16,
    state: Arc<(Mutex<State>, Condvar)>,
}

impl RuntimeApi {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind runtime api");
        let port = listener.local_addr().unwrap().port();
        let api = Self {
            port,
            state: Arc::new((Mutex::new(State::default()), Condvar::new())),
        };
        let server = api.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let connection = server.clone();
                std::thread::spawn(move || connection.serve(stream));
            }
        });
        api
    }

    /// `127.0.0.1:<port>`, the value of AWS_LAMBDA_RUNTIME_API.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Queues an invocation with a deadline `deadline_in` from now; returns its id.
    pub fn queue_raw(&self, body: Vec<u8>, deadline_in: Duration) -> String {
        let (lock, wake) = &*self.state;
        let mut state = lock.lock().unwrap();
        let request_id = format!(
            "invocation-{}-{}",
            state.queue.len() + state.posted.len(),
            rand_suffix()
        );
        let deadline = SystemTime::now() + deadline_in;
        let deadline_ms = deadline.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        state.queue.push_back(Event {
            request_id: request_id.clone(),
            deadline_ms,
            body,
        });
        wake.notify_all();
        request_id
    }

    /// Queues a JSON event with a 60 s deadline.
    pub fn queue(&self, event: &serde_json::Value) -> String {
        self.queue_raw(serde_json::to_vec(event).unwrap(), Duration::from_secs(60))
    }

    /// Waits up to `timeout` for the result of invocation `request_id`.
    pub fn wait_result(&self, request_id: &str, timeout: Duration) -> Option<Posted> {
        let until = Instant::now() + timeout;
        let (lock, wake) = &*self.state;
        let mut state = lock.lock().unwrap();
        loop {
            if let Some(posted) = state.posted.iter().find(|p| p.request_id == request_id) {
                return Some(posted.clone());
            }
            let now = Instant::now();
            if now >= until {
                return None;
            }
            state = wake.wait_timeout(state, until - now).unwrap().0;
        }
    }

    /// Everything posted so far (including init errors).
    pub fn posted(&self) -> Vec<Posted> {
        self.state.0.lock().unwrap().posted.clone()
    }

    fn serve(&self, stream: TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        while let Some(request) = read_request(&mut reader) {
            let path = request.path.trim_start_matches("/2018-06-01/runtime/");
            if request.method == "GET" && path == "invocation/next" {
                let Some(event) = self.next_event() else {
                    return;
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     lambda-runtime-aws-request-id: {}\r\nlambda-runtime-deadline-ms: {}\r\n\
                     lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:airflow-secrets\r\n\r\n",
                    event.body.len(),
                    event.request_id,
                    event.deadline_ms
                );
                if writer
                    .write_all(head.as_bytes())
                    .and_then(|_| writer.write_all(&event.body))
                    .is_err()
                {
                    return;
                }
            } else {
                self.record(path, request.text());
                let reply = "HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}";
                if writer.write_all(reply.as_bytes()).is_err() {
                    return;
                }
            }
        }
    }

    fn record(&self, path: &str, body: String) {
        let parts: Vec<&str> = path.split('/').collect();
        let (request_id, kind) = match parts.as_slice() {
            ["invocation", id, kind] => (id.to_string(), kind.to_string()),
            _ => (String::new(), "init-error".to_string()),
        };
        let (lock, wake) = &*self.state;
        lock.lock().unwrap().posted.push(Posted {
            request_id,
            kind,
            body,
            at: Instant::now(),
        });
        wake.notify_all();
    }

    /// Long-polls like the real API: blocks until an event is queued.
    fn next_event(&self) -> Option<Event> {
        let (lock, wake) = &*self.state;
        let mut state = lock.lock().unwrap();
        loop {
            if let Some(event) = state.queue.pop_front() {
                return Some(event);
            }
            if state.closed {
                return None;
            }
            state = wake
                .wait_timeout(state, Duration::from_millis(200))
                .unwrap()
                .0;
        }
    }

    pub fn close(&self) {
        let (lock, wake) = &*self.state;
        lock.lock().unwrap().closed = true;
        wake.notify_all();
    }
}

fn rand_suffix() -> String {
    format!(
        "{:x}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 0xffff_ffff
    )
}

/// The function process; killed (by its own pid) and reaped on drop, even on panic.
pub struct Function {
    child: Child,
    pub spawned_at: Instant,
    log_path: PathBuf,
}

impl Function {
    /// Spawns the bootstrap (or `$AIRFLOW_SECRETS_BOOTSTRAP`, e.g. the size-optimised
    /// build) with a clean environment: the Lambda variables, dummy credentials and
    /// the moto endpoint.
    pub fn spawn(api: &RuntimeApi, aws_endpoint: &str) -> Self {
        let binary = std::env::var("AIRFLOW_SECRETS_BOOTSTRAP")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_airflow-secrets-bootstrap").to_string());
        let log_path = std::env::temp_dir().join(format!(
            "airflow-secrets-{}-{}.log",
            std::process::id(),
            rand_suffix()
        ));
        let log = std::fs::File::create(&log_path).unwrap();
        let spawned_at = Instant::now();
        let child = Command::new(binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", "airflow-secrets")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/airflow-secrets")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/05/01/[$LATEST]local")
            .env("AWS_ENDPOINT_URL", aws_endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn bootstrap");
        Self {
            child,
            spawned_at,
            log_path,
        }
    }

    /// What the process logged so far (stdout and stderr).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log_path);
    }
}
