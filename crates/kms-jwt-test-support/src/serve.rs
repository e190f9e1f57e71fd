//! `kms-jwt serve` as a child process: started, its stderr kept line by line, killed on drop
//! (also when an assertion fails first).

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running `kms-jwt serve`.
pub struct Serve {
    child: Child,
    /// `http://ADDR` as the server printed it.
    pub url: String,
    /// `ADDR`.
    pub addr: std::net::SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    /// Spawns `cmd` (a `kms-jwt ... serve ...` command) and waits for its "listening on" line
    /// (it is ready then). Panics with what it printed when it exits first.
    pub fn spawn(cmd: Command) -> Serve {
        Serve::try_spawn(cmd).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Serve::spawn`] until the line that starts with `marker` and then names the URL
    /// (`"kms-jwt: starting on "`: listening, keys not loaded yet). With `--log-format json`
    /// the marker is matched against each line's message, without `kms-jwt: `.
    pub fn spawn_until(cmd: Command, marker: &str) -> Serve {
        Serve::try_spawn_until(cmd, marker).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Serve::spawn`], saying why it did not start rather than panicking: for xtask.
    pub fn try_spawn(cmd: Command) -> Result<Serve, String> {
        Serve::try_spawn_until(cmd, "kms-jwt: listening on ")
    }

    fn try_spawn_until(mut cmd: Command, marker: &str) -> Result<Serve, String> {
        let mut child = cmd.stderr(Stdio::piped()).spawn().map_err(|e| format!("cannot spawn kms-jwt serve: {e}"))?;
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let url = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                let status = child.wait().ok();
                return Err(format!("serve exited ({status:?}) before listening: {:?}", log.lock().unwrap()));
            };
            let message = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|json| json["message"].as_str().map(|m| format!("kms-jwt: {m}")));
            let url = message
                .as_deref()
                .unwrap_or(&line)
                .strip_prefix(marker)
                .and_then(|rest| rest.split_whitespace().next())
                .map(|url| url.trim_end_matches(':').to_owned());
            log.lock().unwrap().push(line);
            if let Some(url) = url {
                break url;
            }
        };
        let Some(addr) = url.split("://").nth(1).and_then(|a| a.parse().ok()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("no address in {url}"));
        };
        // Keep draining stderr so that the server never blocks on a full pipe.
        let sink = log.clone();
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(|l| sink.lock().unwrap().push(l)));
        Ok(Serve { child, url, addr, log })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every stderr line so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The stderr lines so far that are JSON objects (audit lines, JSON logs), after a short
    /// pause for lines still in the pipe.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        std::thread::sleep(Duration::from_millis(200));
        self.log().iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// The audit lines so far.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        self.json_lines().into_iter().filter(|l| l["audit"] == "token").collect()
    }

    /// Sends `signal` (`TERM`, `HUP`, ...) to the server.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([&format!("-{signal}"), &self.pid().to_string()]).status().unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    /// Waits for the server to exit, at most `within`; `None` if it is still running then.
    pub fn wait_for_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn stop(mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_for_exit(Duration::from_secs(60)).expect("serve did not exit within 60 s of SIGTERM")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
