//! The binary's commands. `args` holds the command line's shape; each other
//! file is one family of commands and turns parsed arguments into library
//! calls and text: `check` and `explain` read config files, `status` reads
//! the daemon's status file, `admin` talks to a running daemon, `run`
//! serves. anyhow lives here and in `main.rs` only: this is the edge where
//! errors become lines on stderr and an exit code.

pub(crate) mod admin;
mod args;
pub(crate) mod check;
pub(crate) mod explain;
pub(crate) mod generate;
pub(crate) mod run;
pub(crate) mod status;

use std::{fmt::Display, process::ExitCode};

pub(crate) use self::args::{
    AnnounceAction, BackendAction, Cli, Command, Generated, GuardAction, GuardList,
};

/// Prints a command's text as it is, or its error (with its causes); the
/// exit code says which.
pub(crate) fn printed<E: Display>(r: Result<String, E>) -> ExitCode {
    match r {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
