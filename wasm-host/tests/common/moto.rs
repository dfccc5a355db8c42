//! A real S3-compatible server for the tests: moto (`moto[s3]` from PyPI,
//! installed into $MEMSHADOW_VENV by scripts/setup.sh from
//! scripts/requirements.txt), started as `python -m moto.server` on a free
//! loopback port and stopped when the guard drops. The independent client
//! is `tests/moto_s3.py` (boto3). Shared: sdap-cli's tests include this
//! file by path. Fails, never skips, when Python, moto or
//! the server is missing.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The venv's Python (scripts/env.sh exports MEMSHADOW_VENV).
pub fn python() -> PathBuf {
    let venv = std::env::var_os("MEMSHADOW_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/memshadow/venv")
        });
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh (it installs moto)",
        python.display()
    );
    python
}

/// Found the same way from either crate that includes this file
/// (sdap-cli's tests include it by path).
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wasm-host/tests/moto_s3.py")
}

/// A running moto server; killed (its process only) on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
    log: PathBuf,
}

impl Moto {
    /// Starts moto and waits (up to 60 s) until it accepts connections.
    /// Its request log goes to `log_dir/moto.log` (a pipe nobody read
    /// would fill and stall the server).
    pub fn start(log_dir: &Path) -> Self {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = log_dir.join("moto.log");
        let out = std::fs::File::create(&log).expect("moto log file");
        let err = out.try_clone().expect("moto log file");
        let child = Command::new(python())
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start python -m moto.server");
        let mut moto = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = moto.child.try_wait().expect("poll moto") {
                panic!(
                    "moto exited ({status}) before answering (is moto installed? scripts/setup.sh):\n{}",
                    moto.log_text()
                );
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return moto;
            }
            assert!(
                Instant::now() < deadline,
                "moto did not listen on {port} within 60 s:\n{}",
                moto.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `moto_s3.py command args…` and parses its JSON answer.
    pub fn client(&self, command: &str, args: &[&str]) -> Value {
        let out = Command::new(python())
            .arg(script())
            .arg(command)
            .arg(&self.endpoint)
            .args(args)
            .output()
            .expect("run tests/moto_s3.py");
        assert!(
            out.status.success(),
            "moto_s3.py {command} failed: {}\nmoto's log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "moto_s3.py {command} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
