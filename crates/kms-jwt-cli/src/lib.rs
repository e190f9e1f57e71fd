//! The `kms-jwt` command line, as a library so that the repository's `xtask` runs the very same
//! commands. The binary (`src/main.rs`) parses the arguments and maps errors to exit codes.

pub mod aws;
pub mod completions;
pub mod decode;
mod input;
pub mod keys;
pub mod keyset;
pub mod publish;
pub mod serve;
pub mod sign;
pub mod token;
pub mod verify;

pub use input::is_broken_pipe;

/// Prints one line on stderr, `kms-jwt: ` first: every message the command line gives people.
pub fn say(message: &str) {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("kms-jwt: {message}");
    }
}
