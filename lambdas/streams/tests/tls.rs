//! The stream client over TLS: a local https stream server whose certificate a private
//! authority signed (made with the `openssl` command), trusted only through the PEM file
//! `SSL_CERT_FILE` names, as the end-to-end run and a private CA need it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use airflow_stack_contract::streams::Format;
use airflow_streams::source::{stream_client_trusting, HttpSource, Source};

/// `openssl` with arguments, in `dir`; panics with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command (Debian: openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private CA (`ca.pem`) and a certificate for 127.0.0.1 it signed (`server.pem`,
/// `server.key`).
fn private_authority(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=airflow-stack test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
}

/// An https server on 127.0.0.1 (Python's, stopped by pid on drop) that answers every
/// GET with one server-sent event.
struct HttpsStream {
    child: Child,
    url: String,
}

const SERVER: &str = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        body = b'id: 1\ndata: {"n": 1}\n\n'
        self.send_response(200)
        self.send_header('Content-Type', 'text/event-stream')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
s = http.server.HTTPServer(('127.0.0.1', 0), H)
c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
c.load_cert_chain(sys.argv[1], sys.argv[2])
s.socket = c.wrap_socket(s.socket, server_side=True)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

impl HttpsStream {
    fn start(dir: &Path) -> HttpsStream {
        let mut child = Command::new("python3")
            .args(["-c", SERVER])
            .arg(dir.join("server.pem"))
            .arg(dir.join("server.key"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut port = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut port)
            .unwrap();
        let url = format!("https://127.0.0.1:{}/events", port.trim());
        HttpsStream { child, url }
    }
}

impl Drop for HttpsStream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn first_chunk(source: &HttpSource) -> Result<String, String> {
    let mut connection = source.connect(None).await.map_err(|e| e.0)?;
    let chunk = connection
        .chunk()
        .await
        .map_err(|e| e.0)?
        .unwrap_or_default();
    Ok(String::from_utf8(chunk).unwrap())
}

#[tokio::test]
async fn a_private_authority_is_trusted_only_through_its_pem_file() {
    let dir = tempfile::tempdir().unwrap();
    private_authority(dir.path());
    let server = HttpsStream::start(dir.path());

    let webpki_only = HttpSource::new(
        stream_client_trusting(None).unwrap(),
        &server.url,
        Format::Sse,
        None,
    )
    .unwrap();
    let refused = first_chunk(&webpki_only).await.unwrap_err();
    assert!(refused.contains("connecting to the stream"), "{refused}");

    let ca = dir.path().join("ca.pem");
    let trusting = HttpSource::new(
        stream_client_trusting(Some(&ca)).unwrap(),
        &server.url,
        Format::Sse,
        None,
    )
    .unwrap();
    assert_eq!(
        first_chunk(&trusting).await.unwrap(),
        "id: 1\ndata: {\"n\": 1}\n\n"
    );
}

#[test]
fn an_unusable_authority_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let e = stream_client_trusting(Some(&missing)).err().unwrap();
    assert!(
        e.0.starts_with("SSL_CERT_FILE ") && e.0.contains("missing.pem"),
        "{e}"
    );
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let e = stream_client_trusting(Some(&empty)).err().unwrap();
    assert!(
        e.0.contains("empty.pem") && e.0.contains("no PEM certificate"),
        "{e}"
    );
}
