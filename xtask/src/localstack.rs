//! `cargo xtask localstack up|down|status`: a thin front for `scripts/localstack.sh`.

use anyhow::Result;

/// Start, stop or check `LocalStack`
#[derive(clap::Args)]
pub(crate) struct Args {
    #[arg(value_enum)]
    action: Action,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Action {
    /// Install (cached venv) and start `LocalStack` on 127.0.0.1:4566, wait until KMS is up
    Up,
    /// Stop the `LocalStack` this script started
    Down,
    /// Say whether `LocalStack` is up
    Status,
}

pub(crate) fn run(args: &Args) -> Result<()> {
    let action = match args.action {
        Action::Up => "up",
        Action::Down => "down",
        Action::Status => "status",
    };
    script(action).map(drop)
}

/// Runs `scripts/localstack.sh ACTION` and returns what it printed on stdout (the endpoint).
pub(crate) fn script(action: &str) -> Result<String> {
    crate::script("localstack.sh", &[action])
}

/// An emulator that this process started, stopped on drop (also when a step fails):
/// `LocalStack`, or `MiniStack` (`scripts/ministack.sh`, the KMS that has Ed25519 keys).
pub(crate) struct Guard {
    pub(crate) endpoint: String,
    script: &'static str,
    started: bool,
}

impl Guard {
    /// Reuses a running `LocalStack`, or starts one and remembers to stop it.
    pub(crate) fn up() -> Result<Guard> {
        Guard::up_with("localstack.sh")
    }

    /// Reuses a running `MiniStack`, or starts one and remembers to stop it.
    pub(crate) fn ministack() -> Result<Guard> {
        Guard::up_with("ministack.sh")
    }

    fn up_with(script: &'static str) -> Result<Guard> {
        let running = crate::script(script, &["status"]).is_ok();
        let endpoint = crate::script(script, &["up"])?;
        Ok(Guard { endpoint, script, started: !running })
    }

    /// The Python of the `LocalStack` venv (boto3, `PyJWT`).
    pub(crate) fn python() -> Result<String> {
        script("python")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.started {
            let _ = crate::script(self.script, &["down"]);
        }
    }
}
