//! `cargo xtask fuzz [TARGET] [--secs N]`: runs the cargo-fuzz targets in
//! `fuzz/` (libFuzzer, nightly), each for N seconds from its committed
//! corpus, and prints what each reached. New inputs go to
//! `target/fuzz-corpus/<target>`, not into the committed corpus; a crash is
//! left in `fuzz/artifacts/<target>/` to commit as a corpus entry (which
//! the replay test in `cargo xtask test` then keeps passing).

use std::{path::Path, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::shell::{output, status};

/// The targets, as `balancer::fuzzing::TARGETS` names them, and the XDP
/// program's (`balancer::fuzzing::xdp_frame`, which loads the program:
/// root only).
pub const TARGETS: [&str; 6] = [
    "config",
    "proxy_header",
    "client_hello",
    "admin_route",
    "route_table",
    "xdp_frame",
];

/// Runs `target` (every target when `None`) for `secs` seconds each.
pub fn run(root: &Path, target: Option<&str>, secs: u32) -> Result<()> {
    let targets: Vec<&str> = match target {
        Some(t) if TARGETS.contains(&t) => vec![t],
        Some(t) => bail!(
            "no fuzz target `{t}`; the targets are {}",
            TARGETS.join(", ")
        ),
        None => TARGETS.to_vec(),
    };
    install()?;
    let fuzz = root.join("fuzz");
    let mut report = Vec::new();
    for t in targets {
        let scratch = root.join("target/fuzz-corpus").join(t);
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("cannot create {}", scratch.display()))?;
        let committed = fuzz.join("corpus").join(t);
        eprintln!("fuzz: {t} for {secs} s");
        let out = Command::new("cargo")
            .args(["+nightly", "fuzz", "run", t])
            .arg(&scratch)
            .arg(&committed)
            .args([
                "--",
                &format!("-max_total_time={secs}"),
                "-print_final_stats=1",
            ])
            .current_dir(&fuzz)
            .output()
            .with_context(|| format!("cannot run cargo fuzz for {t}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            bail!(
                "fuzz target {t} failed (a crash is kept in fuzz/artifacts/{t}/):\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        report.push((t, summary(&log)));
    }
    println!("\ntarget          runs        exec/s   coverage  features  corpus");
    for (t, s) in report {
        println!(
            "{t:<14} {:>10} {:>10} {:>10} {:>9} {:>7}",
            s.runs, s.exec_per_sec, s.cov, s.ft, s.corp
        );
    }
    Ok(())
}

/// cargo-fuzz, installed once.
fn install() -> Result<()> {
    if output(Command::new("cargo").args(["+nightly", "fuzz", "--version"])).is_ok() {
        return Ok(());
    }
    eprintln!("fuzz: installing cargo-fuzz");
    status(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))
}

/// What libFuzzer's last status line and final stats say.
#[derive(Default)]
struct Summary {
    runs: String,
    exec_per_sec: String,
    cov: String,
    ft: String,
    corp: String,
}

fn summary(log: &str) -> Summary {
    let mut s = Summary::default();
    // `#123456 DONE cov: 812 ft: 2901 corp: 301/40Kb lim: 4096 exec/s: 9000 rss: 60Mb`
    if let Some(line) = log.lines().rev().find(|l| l.contains(" cov: ")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |key: &str| {
            words
                .iter()
                .position(|w| *w == key)
                .and_then(|i| words.get(i + 1))
                .map(|w| (*w).to_owned())
                .unwrap_or_default()
        };
        s.runs = words
            .first()
            .map(|w| w.trim_start_matches('#').to_owned())
            .unwrap_or_default();
        s.cov = after("cov:");
        s.ft = after("ft:");
        s.corp = after("corp:");
        s.exec_per_sec = after("exec/s:");
    }
    if let Some(rate) = log
        .lines()
        .find_map(|l| l.strip_prefix("stat::average_exec_per_sec:"))
    {
        rate.trim().clone_into(&mut s.exec_per_sec);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn reads_libfuzzers_last_status_line_and_stats() {
        let log = "#2 INITED cov: 10 ft: 11 corp: 1/1b exec/s: 0 rss: 30Mb\n\
                   #81920 DONE cov: 812 ft: 2901 corp: 301/40Kb lim: 4096 exec/s: 9000 rss: 60Mb\n\
                   stat::number_of_executed_units: 81920\nstat::average_exec_per_sec:     8191\n";
        let s = summary(log);
        assert_eq!(
            (
                s.runs.as_str(),
                s.cov.as_str(),
                s.ft.as_str(),
                s.corp.as_str()
            ),
            ("81920", "812", "2901", "301/40Kb")
        );
        assert_eq!(s.exec_per_sec, "8191");
    }
}
