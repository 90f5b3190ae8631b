//! The Debian package `cargo xtask dist` builds (`BALANCER_DEB`, set by
//! `cargo xtask test`): lintian finds no error, and installed into a
//! scratch root with dpkg it holds the binary, the unit, the man pages and
//! completions, the examples, and a default config that `balancer check`
//! accepts and that dpkg keeps as a conffile across a reinstall.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

fn deb() -> PathBuf {
    std::env::var_os("BALANCER_DEB").map(PathBuf::from).expect(
        "BALANCER_DEB is not set: run `cargo xtask test`, or `cargo xtask dist` and set it to the package",
    )
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// An empty dpkg database under `root`.
fn scratch_root(root: &Path) {
    for dir in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
    ] {
        std::fs::create_dir_all(root.join(dir)).expect("dpkg dirs");
    }
    for file in ["var/lib/dpkg/status", "var/lib/dpkg/available"] {
        std::fs::write(root.join(file), "").expect("dpkg files");
    }
}

fn install(root: &Path, deb: &Path) -> String {
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-script-chrootless",
            "--force-depends",
            "--force-confold",
            "--log=/dev/null",
            "-i",
        ])
        .arg(deb))
}

/// No systemd runs here, so the unit is linted rather than started:
/// systemd-analyze parses it as systemd would and warns about every
/// unknown key, bad value or missing command (`bin`, the installed
/// binary, stands in for `/usr/bin/balancer`).
fn lint_unit(unit: &str, bin: &Path, dir: &Path) {
    let linted = dir.join("balancer.service");
    std::fs::write(
        &linted,
        unit.replace("/usr/bin/balancer", &bin.display().to_string()),
    )
    .expect("unit copy");
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&linted)
        .output()
        .expect("systemd-analyze");
    let said = String::from_utf8_lossy(&verify.stderr).into_owned()
        + &String::from_utf8_lossy(&verify.stdout);
    // Only what it says of this unit: a machine's own units (or their
    // absence) are not the package's business.
    let about_unit: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("balancer.service"))
        .collect();
    assert!(
        verify.status.success() && about_unit.is_empty(),
        "systemd-analyze verify: {said}"
    );
}

#[test]
fn the_package_passes_lintian_installs_and_keeps_its_conffile() {
    let deb = deb();
    let lintian = run(Command::new("lintian")
        .args(["--fail-on", "error"])
        .arg(&deb));
    eprintln!("lintian: {}", lintian.trim());
    assert!(!lintian.lines().any(|l| l.starts_with("E:")), "{lintian}");

    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    scratch_root(root);
    install(root, &deb);
    let status = run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["-s", "balancer"]));
    assert!(status.contains("Status: install ok installed"), "{status}");
    assert!(
        status.contains("/etc/balancer/balancer.yaml"),
        "conffile: {status}"
    );

    let bin = root.join("usr/bin/balancer");
    let version = run(Command::new(&bin).arg("--version"));
    assert!(version.starts_with("balancer "), "{version}");
    let config = root.join("etc/balancer/balancer.yaml");
    let checked = run(Command::new(&bin).arg("check").arg(&config));
    assert!(checked.contains(": ok"), "{checked}");

    let unit =
        std::fs::read_to_string(root.join("lib/systemd/system/balancer.service")).expect("unit");
    assert!(
        unit.contains("ExecStart=/usr/bin/balancer run -c /etc/balancer/balancer.yaml"),
        "{unit}"
    );
    assert!(!unit.contains("/usr/local"), "{unit}");
    lint_unit(&unit, &bin, dir.path());
    assert!(root.join("usr/lib/sysusers.d/balancer.conf").exists());
    for page in [
        "balancer",
        "balancer-run",
        "balancer-explain",
        "balancer-status",
    ] {
        let path = root.join(format!("usr/share/man/man1/{page}.1.gz"));
        let text = run(Command::new("zcat").arg(&path));
        assert!(text.contains(&format!(".TH {page} 1")), "{page}: {text}");
    }
    for (path, needle) in [
        (
            "usr/share/bash-completion/completions/balancer",
            "_balancer()",
        ),
        (
            "usr/share/zsh/vendor-completions/_balancer",
            "#compdef balancer",
        ),
        (
            "usr/share/fish/vendor_completions.d/balancer.fish",
            "complete -c balancer",
        ),
    ] {
        let text =
            std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(text.contains(needle), "{path}");
    }
    // Every example in the package is a config the installed binary
    // accepts, but for the certificate files the TLS ones name (an
    // operator puts their own there).
    let examples = root.join("usr/share/doc/balancer/examples");
    let mut checked_examples = 0;
    for entry in std::fs::read_dir(&examples).expect("examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let out = Command::new(&bin)
                .arg("check")
                .arg(&path)
                .output()
                .expect("check");
            let text = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success()
                    || text
                        .lines()
                        .all(|l| l.contains(": cannot read /etc/balancer/")),
                "{}: {text}",
                path.display()
            );
            checked_examples += 1;
        }
    }
    assert!(checked_examples >= 5, "{checked_examples} examples");

    // An operator's edit survives a reinstall: dpkg keeps the conffile.
    let edited = std::fs::read_to_string(&config).expect("config") + "# edited by the operator\n";
    std::fs::write(&config, &edited).expect("edit");
    install(root, &deb);
    assert_eq!(std::fs::read_to_string(&config).expect("config"), edited);
}
