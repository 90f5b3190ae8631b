//! Network namespaces owned by a test. Names carry a per-run prefix with the
//! test process's pid, so parallel tests never collide and namespaces left by
//! a killed run are recognisable and swept at the next start.
#![expect(unsafe_code, reason = "setns(2) and kill(2) have no std wrapper")]

use std::{
    fs::File,
    os::fd::AsRawFd,
    process::{Command, Stdio},
    sync::{
        Once,
        atomic::{AtomicU32, Ordering},
    },
};

const PREFIX: &str = "bt";

/// A network namespace deleted (with every process inside) on drop.
pub struct Netns {
    name: String,
}

static SEQ: AtomicU32 = AtomicU32::new(0);
static SWEEP: Once = Once::new();

/// Runs `ip ARGS`, panicking with the command and its stderr on failure.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

impl Netns {
    /// Creates a fresh namespace with loopback up; `role` is a short tag
    /// that shows in the name (`bt<pid>-<seq>-<role>`).
    #[must_use]
    pub fn new(role: &str) -> Self {
        SWEEP.call_once(sweep_stale);
        let name = format!(
            "{PREFIX}{}-{}-{role}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip ARGS` inside the namespace.
    pub fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        ip(&full);
    }

    /// A command that runs inside the namespace.
    #[must_use]
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs a command inside the namespace to completion; returns stdout.
    /// Panics with stderr when it fails.
    #[must_use = "tests should check what the command printed"]
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("spawn");
        assert!(
            out.status.success(),
            "{program} {} in {}: {}",
            args.join(" "),
            self.name,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `f` on a thread that has entered this namespace: sockets it opens
    /// live in the namespace. The calling thread is untouched.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                // SAFETY: setns on a namespace fd affects only this thread,
                // which exists solely to run `f`.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
}

impl Netns {
    /// Kills every process in the namespace (a backend "dies") and waits
    /// until they are gone, so nothing half-dead still accepts connections.
    pub fn kill_all(&self) {
        kill_all_in(&self.name);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !pids_in(&self.name).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "processes in {} survived SIGKILL",
                self.name
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Pids of the processes inside the namespace (`ip netns pids`).
    #[must_use]
    pub fn pids(&self) -> Vec<u32> {
        pids_in(&self.name)
    }

    /// Sets a per-namespace sysctl (`key` as in `sysctl -w key=value`).
    pub fn sysctl(&self, key: &str, value: &str) {
        let _ = self.run("sysctl", &["-q", "-w", &format!("{key}={value}")]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        kill_all_in(&self.name);
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn pids_in(name: &str) -> Vec<u32> {
    Command::new("ip")
        .args(["netns", "pids", name])
        .output()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn kill_all_in(name: &str) {
    for pid in pids_in(name) {
        // SAFETY: sending a signal has no memory-safety preconditions.
        unsafe { libc::kill(pid.cast_signed(), libc::SIGKILL) };
    }
}

/// Deletes namespaces left by test runs whose process no longer exists.
fn sweep_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            kill_all_in(name);
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}
