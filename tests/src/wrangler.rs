//! Starts an extra instance of the real Worker under wrangler dev, with its
//! own port, state directory and variables — for tests that must change what
//! the Worker is wired to (a pool outage) without disturbing the shared stack.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{eventually, repo_root};

pub struct Worker {
    child: Child,
    port: u16,
    _state: TempDir,
}

impl Worker {
    /// Starts the Worker built by scripts/stack.sh with the dev JWKS and the
    /// given extra variables, and waits until /health answers.
    pub fn start(port: u16, vars: &[(&str, &str)]) -> Self {
        let state = TempDir::new(&format!("wrangler-{port}"));
        let keys = crate::dev_keys_dir().join("jwks.json");
        let jwks = std::fs::read_to_string(&keys)
            .unwrap_or_else(|e| panic!("{} missing ({e}); run scripts/start.sh", keys.display()));
        let mut env_file = format!("MEMSHADOW_JWT_PUBLIC_KEYS={}\n", jwks.replace('\n', ""));
        for (k, v) in vars {
            env_file.push_str(&format!("{k}={v}\n"));
        }
        let env_path = state.0.join("dev.vars");
        std::fs::write(&env_path, env_file).expect("write dev.vars");
        let node_dir = std::env::var("MEMSHADOW_NODE").unwrap_or_else(|_| {
            format!(
                "{}/.cache/memshadow/npm",
                std::env::var("HOME").unwrap_or_default()
            )
        });
        let log = std::fs::File::create(state.0.join("wrangler.log")).expect("log file");
        let child = Command::new("node")
            .arg(format!("{node_dir}/node_modules/wrangler/bin/wrangler.js"))
            .args(["dev", "--local", "--ip", "127.0.0.1", "--test-scheduled"])
            .args(["--show-interactive-dev-session=false"])
            .arg("--port")
            .arg(port.to_string())
            .arg("--inspector-port")
            .arg(free_port().to_string())
            .arg("--persist-to")
            .arg(state.0.join("state"))
            .arg("--env-file")
            .arg(&env_path)
            .current_dir(repo_root())
            .env("WRANGLER_SEND_METRICS", "false")
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start wrangler dev (is node installed? run scripts/setup.sh)");
        let worker = Worker {
            child,
            port,
            _state: state,
        };
        let health = format!("{}/health", worker.url());
        let up = eventually(Duration::from_secs(120), || {
            reqwest::blocking::get(&health)
                .ok()
                .filter(|r| r.status().is_success())
        });
        if up.is_none() {
            panic!(
                "second Worker on port {port} did not start:\n{}",
                worker.log()
            );
        }
        worker
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What wrangler dev and the Worker's console printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._state.0.join("wrangler.log")).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // wrangler runs workerd as a child; ending wrangler ends it.
        let _ = Command::new("pkill")
            .arg("-TERM")
            .arg("-P")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("memshadow-{tag}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The local stack's timer (scripts/scheduler.sh) pointed at one Worker:
/// the same script `scripts/stack.sh up` starts, so a test that relies on
/// it relies on what the stack really runs. Stopped when dropped.
pub struct Scheduler {
    child: Child,
}

impl Scheduler {
    pub fn start(base_url: &str, seconds: u32) -> Self {
        let child = Command::new("bash")
            .arg(repo_root().join("scripts/scheduler.sh"))
            .arg(base_url)
            .arg(seconds.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start scripts/scheduler.sh");
        Scheduler { child }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        // The loop's curl or sleep is its child.
        let _ = Command::new("pkill")
            .arg("-TERM")
            .arg("-P")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on, picked by the OS, for the inspector. A fixed
/// offset from the Worker's port (48794) lies in the ephemeral range, where
/// an outgoing connection of the running stack once held it and workerd
/// died with EADDRINUSE.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free local port")
}
