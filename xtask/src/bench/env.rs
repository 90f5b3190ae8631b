//! What the figures ran on: kernel, CPUs, and the version line of every
//! tool and peer, read from the tools themselves so the report cannot drift
//! from the machine.

use std::{path::Path, process::Command};

/// Versions and host facts, each as the tool printed it.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    /// `date -u`, ISO 8601.
    pub date: String,
    /// `uname -r`.
    pub kernel: String,
    /// Online CPUs.
    pub cpus: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// `/proc/loadavg` (1, 5, 15 minutes) before the run: other work on
    /// the machine skews every figure.
    pub load: String,
    /// `balancer --version`.
    pub balancer: String,
    /// First line of `haproxy -v`.
    pub haproxy: String,
    /// `nginx -v`.
    pub nginx: String,
    /// First line of `iperf3 --version`.
    pub iperf3: String,
    /// First line of `wrk -v`.
    pub wrk: String,
}

impl Environment {
    /// Reads everything; a tool that cannot say shows as `unknown`.
    pub fn probe(balancer: &Path) -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("model name")
                        .map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned())
                })
            })
            .unwrap_or_else(|| "unknown".into());
        Self {
            date: first_line(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])),
            kernel: first_line(Command::new("uname").arg("-r")),
            cpus: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            cpu_model,
            load: std::fs::read_to_string("/proc/loadavg").map_or_else(
                |_| "unknown".into(),
                |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
            ),
            balancer: first_line(Command::new(balancer).arg("--version")),
            haproxy: first_line(Command::new("haproxy").arg("-v")),
            nginx: first_line(Command::new("nginx").arg("-v")),
            iperf3: first_line(Command::new("iperf3").arg("--version")),
            wrk: first_line(Command::new("wrk").arg("-v")),
        }
    }

    /// `(what, value)` rows in report order.
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        vec![
            ("date (UTC)", self.date.clone()),
            ("kernel", self.kernel.clone()),
            ("CPUs", format!("{} x {}", self.cpus, self.cpu_model)),
            ("load average before the run", self.load.clone()),
            ("balancer", self.balancer.clone()),
            ("HAProxy", self.haproxy.clone()),
            ("nginx", self.nginx.clone()),
            ("iperf3", self.iperf3.clone()),
            ("wrk", self.wrk.clone()),
        ]
    }
}

/// First non-empty line of stdout, else of stderr (nginx and wrk print
/// their version there, wrk with a failing status).
fn first_line(cmd: &mut Command) -> String {
    let Ok(out) = cmd.output() else {
        return "unknown".into();
    };
    [&out.stdout, &out.stderr]
        .into_iter()
        .find_map(|b| {
            String::from_utf8_lossy(b)
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".into())
}
