//! `balancer check`: validate a config file and print its summary.

use std::path::Path;

use balancer::{config, summary};

/// The file's summary, or its first error located by file, line and column.
/// The error goes out as its own text only: its causes are already in it.
pub(crate) fn check(file: &Path) -> Result<String, String> {
    config::load(file)
        .map(|c| format!("{}: ok\n{}", file.display(), summary::render(&c)))
        .map_err(|e| e.to_string())
}
