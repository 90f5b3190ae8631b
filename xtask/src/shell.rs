//! Running commands with their output passed through and a clear error
//! naming the command when one fails.

use std::{ffi::OsStr, path::Path, process::Command};

use anyhow::{Context as _, Result, bail};

/// Runs `cargo ARGS` in `dir`.
pub fn cargo(dir: &Path, args: &[&str]) -> Result<()> {
    cargo_env(dir, args, &[])
}

/// Runs `cargo ARGS` in `dir` with extra environment variables.
pub fn cargo_env(dir: &Path, args: &[&str], env: &[(&str, &OsStr)]) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(args).current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    status(&mut cmd)
}

/// Runs `cmd`, failing with the command line if it exits non-zero.
pub fn status(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let st = cmd
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !st.success() {
        bail!("{shown} failed with {st}");
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout; fails with the command line and
/// stderr if it exits non-zero.
pub fn output(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `program` is on PATH and runs.
pub fn has(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
