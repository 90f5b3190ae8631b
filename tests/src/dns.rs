//! Knot DNS as the test's authoritative server: one zone, `disc.test.`,
//! served on an address inside a test namespace. The records are replaced
//! by rewriting the zone file (with a higher serial) and asking `knotc` to
//! reload it, as an operator would; stopping the process is how a test
//! makes the server go away.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{netns::Netns, process::Process};

/// The zone every test record lives in.
pub const ZONE: &str = "disc.test";

/// A running knotd with one zone.
pub struct Knot {
    process: Option<Process>,
    ns: String,
    dir: PathBuf,
    serial: u32,
}

impl Knot {
    /// Starts knotd in `ns` on `listen` port 53, its files under `dir`,
    /// serving `records` (zone file lines, names relative to [`ZONE`],
    /// TTLs given per line or the zone's default of 1 s).
    #[must_use]
    pub fn start(ns: &Netns, dir: &Path, listen: IpAddr, records: &str) -> Self {
        let dir = dir.join("knot");
        std::fs::create_dir_all(dir.join("db")).expect("knot dir");
        let at = match listen {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => a.to_string(),
        };
        let config = format!(
            "server:
    listen: {at}@53
    rundir: {d}
database:
    storage: {d}/db
control:
    listen: {d}/knot.sock
log:
  - target: stderr
    any: info
zone:
  - domain: {ZONE}
    storage: {d}
    file: zone
    journal-content: none
    zonefile-sync: -1
    semantic-checks: off
",
            d = dir.display()
        );
        std::fs::write(dir.join("knot.conf"), config).expect("knot.conf");
        let mut knot = Self {
            process: None,
            ns: ns.name().to_owned(),
            dir,
            serial: 0,
        };
        knot.write_zone(records);
        let mut cmd = ns.command("knotd");
        cmd.args(["-c", knot.conf().to_str().expect("utf-8")]);
        let mut p = Process::spawn("knotd", cmd, knot.dir.join("knotd.log"));
        p.wait_for("loaded, serial", 1, Duration::from_secs(10));
        knot.process = Some(p);
        knot
    }

    /// Serves `records` instead, once the zone reload is done.
    pub fn set(&mut self, records: &str) {
        self.write_zone(records);
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &self.ns, "knotc", "-s"])
            .arg(self.dir.join("knot.sock"))
            .args(["-b", "zone-reload", ZONE])
            .output()
            .expect("knotc");
        assert!(
            out.status.success(),
            "knotc zone-reload: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let want = format!("-> {}", self.serial);
        if let Some(p) = &mut self.process {
            p.wait_for(&want, 1, Duration::from_secs(5));
        }
    }

    /// Stops the server: lookups time out from now on.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.signal(libc::SIGTERM);
            let _ = p.wait_timeout(Duration::from_secs(5));
        }
    }

    fn conf(&self) -> PathBuf {
        self.dir.join("knot.conf")
    }

    fn write_zone(&mut self, records: &str) {
        self.serial += 1;
        let zone = format!(
            "$ORIGIN {ZONE}.\n$TTL 1\n@ IN SOA ns admin {} 60 60 600 1\n@ IN NS ns\nns IN A 127.0.0.1\n{records}\n",
            self.serial
        );
        // Renamed into place, so knotd never reads half a file.
        let tmp = self.dir.join("zone.tmp");
        std::fs::write(&tmp, zone).expect("zone");
        std::fs::rename(&tmp, self.dir.join("zone")).expect("zone rename");
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        self.stop();
    }
}
