//! Helpers shared by the black-box tests: start `fthub serve` / `fthub dev` as real
//! processes on loopback, and talk to them over real HTTP.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn fthub() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fthub"))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo().join("tests/fixtures/envelopes").join(name)).expect("fixture")
}

/// Every file under `dir`, recursively (none if it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Drops a bundled sample into the local store under `home` as a data scientist does:
/// data files, then the manifest (with `{project}-scientist` as its submitter).
pub async fn drop_sample(home: &Path, project: &str, submission: &str, sample: &str) {
    use fthub::ports::{BlobStore as _, Condition};
    let dir = repo().join("samples").join(sample);
    let store = fthub::adapters::local::blob::FsBlobStore::new(home.join("storage"));
    for f in ["train.jsonl", "eval.jsonl", "manifest.json"] {
        let mut bytes = std::fs::read(dir.join(f)).expect("sample");
        if f == "manifest.json" {
            let mut m: Value = serde_json::from_slice(&bytes).expect("json");
            m["submitted_by"] = serde_json::json!(format!("{project}-scientist"));
            bytes = m.to_string().into_bytes();
        }
        store
            .put(
                "datasets",
                &format!("{project}/{submission}/{f}"),
                &bytes,
                Condition::None,
            )
            .await
            .expect("put");
    }
}

/// The emulator's request log (`GET /_emulator/requests`), oldest first.
pub async fn emulator_requests(emulator: &str) -> Vec<Value> {
    reqwest::get(format!(
        "{}/_emulator/requests",
        emulator.trim_end_matches('/')
    ))
    .await
    .expect("request log")
    .json()
    .await
    .expect("request log JSON")
}

/// Whether the suites that need tools `scripts/test` installs run: `FTHUB_TEST_EXTERNAL=1`
/// (set by `scripts/test`). Off, the caller returns early and this says what was skipped;
/// on, a missing tool fails the test that needs it.
pub fn external(what: &str) -> bool {
    let on = std::env::var("FTHUB_TEST_EXTERNAL").is_ok_and(|v| v == "1");
    if !on {
        eprintln!("skipped: needs {what}; scripts/test runs it (FTHUB_TEST_EXTERNAL=1)");
    }
    on
}

/// Polls `f` every 50 ms until it returns true or `limit` passes.
pub async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}

/// A running `fthub serve`.
pub struct Serve {
    child: Child,
    pub port: u16,
    pub home: PathBuf,
    pub client: reqwest::Client,
}

impl Serve {
    pub async fn start(home: &Path) -> Self {
        Self::start_with_env(home, &[]).await
    }

    pub async fn start_with_env(home: &Path, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let child = Command::new(fthub())
            .arg("serve")
            .envs(env.iter().copied())
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("FTHUB_HOME", home)
            .env("FTHUB_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn fthub serve");
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let s = Self {
            child,
            port,
            home: home.to_owned(),
            client,
        };
        let url = s.url("/");
        let c = s.client.clone();
        let start = Instant::now();
        while c.get(&url).send().await.is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "fthub serve did not start"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        s
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// POSTs an invocation as the host does; returns status, content type and JSON body.
    pub async fn invoke(
        &self,
        function: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, String, Value) {
        let r = self
            .client
            .post(self.url(&format!("/{function}")))
            .header("Content-Type", "application/json; charset=utf-8")
            .header(
                "X-Azure-Functions-InvocationId",
                uuid::Uuid::new_v4().to_string(),
            )
            .header("X-Azure-Functions-HostVersion", "4.1037.0.0")
            .body(body)
            .send()
            .await
            .expect("invoke");
        let status = r.status().as_u16();
        let ctype = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = r.text().await.expect("body");
        let json =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("body is not JSON: {text:?}"));
        (status, ctype, json)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `fthub dev`, in its own process group so a test can SIGKILL it together with
/// the handler it started, as a crash would.
pub struct Dev {
    child: Option<Child>,
    pub port: u16,
    pub app: PathBuf,
    pub home: PathBuf,
    pub client: reqwest::Client,
}

impl Dev {
    pub async fn start(app: &Path, home: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(app, home, extra, &[]).await
    }

    pub async fn start_with_env(
        app: &Path,
        home: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        use std::os::unix::process::CommandExt as _;
        let port = free_port();
        let child = Command::new(fthub())
            .envs(env.iter().copied())
            .arg("dev")
            .arg("--app")
            .arg(app)
            .arg("--home")
            .arg(home)
            .args([
                "--port",
                &port.to_string(),
                "--scan-interval-ms",
                "100",
                "--emulator-port",
                "0",
            ])
            .args(extra)
            .env(
                "FTHUB_LOG",
                std::env::var("TEST_LOG").unwrap_or_else(|_| "error".into()),
            )
            .env_remove("FTHUB_HOME")
            .process_group(0)
            .spawn()
            .expect("spawn fthub dev");
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let d = Self {
            child: Some(child),
            port,
            app: app.to_owned(),
            home: home.to_owned(),
            client,
        };
        let start = Instant::now();
        loop {
            if let Ok(r) = d.client.get(d.url("/admin/host/status")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "fthub dev did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        d
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// SIGKILL to the whole process group: the host and its handler die mid-flight.
    pub fn crash(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pgid = c.id();
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{pgid}")])
                .status();
            let _ = c.wait();
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        self.crash();
    }
}

/// A function app whose handler is `tests/support/recording_handler.py`.
pub struct RecorderApp {
    pub dir: tempfile::TempDir,
    pub record: PathBuf,
    pub behaviour: PathBuf,
}

impl RecorderApp {
    /// `functions`: (name, function.json). `host_extra`: merged into host.json.
    pub fn new(functions: &[(&str, Value)], host_extra: Value) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let record = dir.path().join("invocations.jsonl");
        let behaviour = dir.path().join("behaviour.json");
        let script = repo().join("tests/support/recording_handler.py");
        let mut host = serde_json::json!({
            "version": "2.0",
            "functionTimeout": "00:05:00",
            "customHandler": {"description": {"defaultExecutablePath": "python3", "arguments": [script]}},
        });
        if let (Some(h), Value::Object(extra)) = (host.as_object_mut(), host_extra) {
            h.extend(extra);
        }
        std::fs::write(dir.path().join("host.json"), host.to_string()).expect("host.json");
        std::fs::write(
            dir.path().join("local.settings.json"),
            serde_json::json!({"Values": {"FUNCTIONS_WORKER_RUNTIME": "Custom", "RECORD_FILE": record, "BEHAVIOUR_FILE": behaviour}}).to_string(),
        )
        .expect("settings");
        for (name, fj) in functions {
            let fdir = dir.path().join("functions").join(name);
            std::fs::create_dir_all(&fdir).expect("mkdir");
            std::fs::write(fdir.join("function.json"), fj.to_string()).expect("function.json");
        }
        Self {
            dir,
            record,
            behaviour,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn set_behaviour(&self, b: Value) {
        let tmp = self.behaviour.with_extension("tmp");
        std::fs::write(&tmp, b.to_string()).expect("behaviour");
        std::fs::rename(tmp, &self.behaviour).expect("rename");
    }

    /// Recorded invocations, optionally of one function.
    pub fn invocations(&self, function: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.record).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["function"] == function)
            .collect()
    }
}

/// Decodes a double-encoded metadata string the way a handler must.
pub fn undouble(v: &Value) -> String {
    let s = v.as_str().expect("string");
    serde_json::from_str::<String>(s).unwrap_or_else(|_| s.to_owned())
}

/// Azurite's well-known development key (public, documented by Microsoft).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// An Azurite blob service on loopback, started once per test binary from the
/// `node_modules` that `npm ci` installs (pinned in `package.json`). A watchdog shell stops
/// it when the test process exits, since statics are never dropped.
pub struct Azurite {
    pub port: u16,
    pub connection_string: String,
    /// Kept so the shell is owned; it ends by itself after the test process.
    _watchdog: std::sync::Mutex<Child>,
}

static AZURITE: std::sync::OnceLock<Azurite> = std::sync::OnceLock::new();

/// The Azurite the suites share (they use unique container or blob names).
pub fn azurite() -> &'static Azurite {
    AZURITE.get_or_init(start_azurite)
}

/// An Azurite of the caller's own, for a suite that runs the reconciler: on a shared account
/// it would re-drive every other suite's active runs against its own emulator.
pub fn azurite_private() -> Azurite {
    start_azurite()
}

fn start_azurite() -> Azurite {
    {
        let bin = repo().join("node_modules/.bin/azurite-blob");
        assert!(
            bin.exists(),
            "Azurite is not installed: run `npm ci` in {} (scripts/test does)",
            repo().display()
        );
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("fthub-azurite-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("azurite dir");
        let script = format!(
            "'{}' --silent --disableTelemetry --location '{}' --blobHost 127.0.0.1 --blobPort {port} & a=$!; \
             while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $a; rm -rf '{}'",
            bin.display(),
            dir.display(),
            dir.display(),
            parent = std::process::id()
        );
        let watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start azurite");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "Azurite did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Azurite {
            port,
            _watchdog: std::sync::Mutex::new(watchdog),
            connection_string: format!(
                "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
            ),
        }
    }
}

/// The Python that scripts/test prepares (`FTHUB_TEST_PYTHON`), checked to import `modules`
/// (the SDKs a test drives), with how to get it in the failure.
pub fn python_with(modules: &str) -> String {
    let py =
        std::env::var("FTHUB_TEST_PYTHON").unwrap_or_else(|_| "/tmp/fthub-venv/bin/python".into());
    let ok = Command::new(&py)
        .args(["-c", &format!("import {modules}")])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{py} cannot import {modules}: run scripts/test (it installs the pinned SDKs) or set FTHUB_TEST_PYTHON"
    );
    py
}
