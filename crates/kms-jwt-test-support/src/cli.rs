//! The `kms-jwt` binary as tests and the bench run it, and `LocalStack`'s dummy credentials:
//! the one place either is spelled out.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Output};

/// `LocalStack`'s dummy access key id (it accepts any; this one is the documented default).
pub const ACCESS_KEY_ID: &str = "test";
/// `LocalStack`'s dummy secret access key.
pub const SECRET_ACCESS_KEY: &str = "test";
/// The region the tests and the bench work in.
pub const REGION: &str = "us-east-1";
/// The account `LocalStack` puts the dummy credentials in.
pub const ACCOUNT: &str = "000000000000";

/// The environment that gives a process `LocalStack`'s dummy credentials.
pub const CREDENTIALS: [(&str, &str); 2] =
    [("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID), ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)];

/// The environment that gives a process `LocalStack`'s dummy credentials and [`REGION`], as
/// the AWS SDKs (`AWS_REGION`) and boto3 and the AWS CLI (`AWS_DEFAULT_REGION`) read it.
pub const LOCALSTACK_ENV: [(&str, &str); 4] =
    [CREDENTIALS[0], CREDENTIALS[1], ("AWS_REGION", REGION), ("AWS_DEFAULT_REGION", REGION)];

/// The `kms-jwt` binary under test (an integration test's `CARGO_BIN_EXE_kms-jwt`) as a [`Cli`].
#[macro_export]
macro_rules! kms_jwt {
    () => {
        $crate::Cli::new(env!("CARGO_BIN_EXE_kms-jwt"))
    };
}

/// How to run the `kms-jwt` binary: always with `LocalStack`'s dummy credentials; offline, or
/// pointed at a KMS endpoint and region.
#[derive(Clone, Debug)]
#[must_use]
pub struct Cli {
    bin: PathBuf,
    endpoint: Option<String>,
    region: Option<String>,
}

impl Cli {
    /// The binary at `bin`, offline: no endpoint, and the region of the environment.
    pub fn new(bin: impl Into<PathBuf>) -> Cli {
        Cli { bin: bin.into(), endpoint: None, region: None }
    }

    /// KMS at `url` (`--endpoint-url`), in [`REGION`] unless [`Cli::region`] names another.
    pub fn endpoint(mut self, url: impl Into<String>) -> Cli {
        self.endpoint = Some(url.into());
        self.region.get_or_insert_with(|| REGION.to_owned());
        self
    }

    /// `--region REGION`.
    pub fn region(mut self, region: impl Into<String>) -> Cli {
        self.region = Some(region.into());
        self
    }

    /// `LocalStack`'s KMS ([`crate::endpoint`]).
    #[cfg(feature = "kms")]
    pub fn localstack(self) -> Cli {
        self.endpoint(crate::endpoint())
    }

    /// A command: `--endpoint-url` and `--region` as set, with the credentials; the caller adds
    /// the rest.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        if let Some(url) = &self.endpoint {
            cmd.args(["--endpoint-url", url]);
        }
        if let Some(region) = &self.region {
            cmd.args(["--region", region]);
        }
        cmd.envs(CREDENTIALS);
        cmd
    }

    /// Runs [`Cli::command`] with `args` to its end and returns what it printed.
    pub fn output<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command().args(args).output().expect("run kms-jwt")
    }
}
