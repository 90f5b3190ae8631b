//! A child process killed on drop, with its output captured to a file so a
//! failing test can show what the process said.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A running child process.
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Spawns `cmd` with stdout and stderr going to `log`.
    #[must_use]
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Self {
        let out = std::fs::File::create(&log).expect("create log");
        let err = out.try_clone().expect("clone log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Self {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// The pid.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process has written so far.
    #[must_use]
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the output contains `needle` `count` times, or panics
    /// with the output after `timeout`.
    pub fn wait_for(&mut self, needle: &str, count: usize, timeout: Duration) {
        let start = Instant::now();
        loop {
            let out = self.output();
            if out.matches(needle).count() >= count {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before printing `{needle}`:\n{out}",
                    self.name
                );
            }
            assert!(
                start.elapsed() < timeout,
                "{} did not print `{needle}` within {timeout:?}:\n{out}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Seconds since midnight (UTC) of the first output line containing all
    /// of `needles` (a tracing line starts `2026-11-23T01:03:58.939174Z`),
    /// waiting up to `timeout` for it.
    #[must_use]
    pub fn logged_at(&self, needles: &[&str], timeout: Duration) -> f64 {
        let start = Instant::now();
        loop {
            let out = self.output();
            if let Some(line) = out.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                let (clock, _) = line
                    .split_once('T')
                    .and_then(|(_, rest)| rest.split_once('Z'))
                    .unwrap_or_else(|| panic!("no timestamp in {line}"));
                let parts: Vec<f64> = clock
                    .split(':')
                    .map(|p| p.parse().expect("time field"))
                    .collect();
                return parts[0] * 3600.0 + parts[1] * 60.0 + parts[2];
            }
            assert!(
                start.elapsed() < timeout,
                "no line with {needles:?} within {timeout:?} in:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`).
    pub fn signal(&self, signal: i32) {
        #[expect(
            unsafe_code,
            reason = "std sends a child only SIGKILL; kill(2) sends any signal"
        )]
        // SAFETY: sending a signal has no memory-safety preconditions.
        unsafe {
            libc::kill(self.child.id().cast_signed(), signal);
        }
    }

    /// Waits for exit up to `timeout`; `None` if still running.
    /// Looks at least once, so a zero timeout asks whether it has exited.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if start.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
