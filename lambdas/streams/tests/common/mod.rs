//! Test helpers: a scripted local stream server, fake ports, settings.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use airflow_stack_contract::streams::{
    Format, Identity, ManagerInvocation, ManagerSettings, Target,
};
use airflow_streams::ports::{Invoker, PortError};
use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a connection does, in order.
#[derive(Debug, Clone)]
pub enum Step {
    /// Writes these bytes.
    Send(String),
    /// Waits.
    Sleep(Duration),
    /// Keeps the connection open and silent until the client leaves.
    Hold,
}

/// A request as the server saw it (lower-case header names).
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

type Script = dyn Fn(usize, Option<&str>) -> Vec<Step> + Send + Sync;

/// A local HTTP/1.1 stream server: each connection gets a 200 with a body delimited by
/// the connection's close, written by `script(connection index, Last-Event-ID)`.
pub struct StreamServer {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl StreamServer {
    pub async fn start(
        script: impl Fn(usize, Option<&str>) -> Vec<Step> + Send + Sync + 'static,
    ) -> StreamServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let log = seen.clone();
        tokio::spawn(async move {
            let mut index = 0;
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let (script, log) = (script.clone(), log.clone());
                let n = index;
                index += 1;
                tokio::spawn(async move { serve(socket, n, &*script, &log).await });
            }
        });
        StreamServer { url, seen }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve(mut socket: TcpStream, index: usize, script: &Script, log: &Mutex<Vec<Seen>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if socket.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let headers: Vec<(String, String)> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let seen = Seen { headers };
    let steps = script(index, seen.header("last-event-id"));
    log.lock().unwrap().push(seen);
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
    if socket.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    for step in steps {
        match step {
            Step::Send(s) => {
                if socket.write_all(s.as_bytes()).await.is_err() {
                    return;
                }
            }
            Step::Sleep(d) => tokio::time::sleep(d).await,
            Step::Hold => {
                // Silent until the client hangs up.
                let mut sink = [0u8; 64];
                while socket.read(&mut sink).await.unwrap_or(0) > 0 {}
                return;
            }
        }
    }
}

/// An SSE event with an id and JSON data.
pub fn sse(id: u32) -> String {
    format!("id: {id}\ndata: {{\"n\": {id}}}\n\n")
}

/// Records invocations; fails them when told to.
#[derive(Default)]
pub struct FakeInvoker {
    pub calls: Mutex<Vec<(String, ManagerInvocation)>>,
    pub fail: bool,
}

impl FakeInvoker {
    pub fn calls(&self) -> Vec<(String, ManagerInvocation)> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl Invoker for FakeInvoker {
    async fn invoke_async(
        &self,
        function: &str,
        payload: &ManagerInvocation,
    ) -> Result<(), PortError> {
        self.calls
            .lock()
            .unwrap()
            .push((function.to_owned(), payload.clone()));
        if self.fail {
            return Err(PortError("Invoke: TooManyRequestsException".into()));
        }
        Ok(())
    }
}

/// Manager settings for a test stream: fast timings (seconds).
pub fn settings(
    url: &str,
    read_timeout: u32,
    handoff: u32,
    overlap: u32,
) -> ManagerSettings<String> {
    ManagerSettings {
        stack_name: "test".into(),
        table: "t".into(),
        stream_name: "orders".into(),
        url: url.into(),
        format: Format::Sse,
        auth: None,
        identity: Identity::Hash,
        target: Target::Dag("orders_dag".into()),
        event_ttl_hours: 1,
        read_timeout_seconds: read_timeout,
        handoff_seconds: handoff,
        overlap_seconds: overlap,
        heartbeat_seconds: 1,
        lease_seconds: 3,
    }
}

/// A manager's ports for a test: the table in memory, a recording invoker, the local
/// server as the source (with an auth header).
pub struct Rig {
    pub table: airflow_streams::memory::MemoryTable,
    pub invoker: FakeInvoker,
    pub source: airflow_streams::source::HttpSource,
}

impl Rig {
    pub fn new(url: &str, fail_invocations: bool) -> Rig {
        let client = airflow_streams::source::stream_client().unwrap();
        Rig {
            table: Default::default(),
            invoker: FakeInvoker {
                fail: fail_invocations,
                ..FakeInvoker::default()
            },
            source: airflow_streams::source::HttpSource::new(
                client,
                url,
                Format::Sse,
                Some(("x-api-key", "s3cret")),
            )
            .unwrap(),
        }
    }

    pub fn ports(&self) -> airflow_streams::manager::ManagerPorts<'_> {
        airflow_streams::manager::ManagerPorts {
            source: &self.source,
            events: &self.table,
            leases: &self.table,
            invoker: &self.invoker,
        }
    }
}
