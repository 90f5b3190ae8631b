//! `cargo xtask dist`: the Debian package, built with `dpkg-deb` from a
//! staging tree this step fills: the stripped binary, the systemd unit and
//! a sysusers.d entry for its user, the man pages and the bash, zsh and fish
//! completions that `balancer generate` makes from the clap definitions,
//! the example configs, and `/etc/balancer/balancer.yaml` (the demo config)
//! as a conffile. `lintian` checks the result when it is installed.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::shell::{self, output, status};

/// Package name.
const NAME: &str = "balancer";

/// Builds the package from the release binary, or the debug one with
/// `debug` (the test suite's, which has it built already); returns its path.
pub fn build(root: &Path, debug: bool) -> Result<PathBuf> {
    let profile = if debug { "debug" } else { "release" };
    let mut args = vec!["build", "-p", "balancer", "--bin", "balancer"];
    if !debug {
        args.push("--release");
    }
    shell::cargo(root, &args)?;
    let bin = root.join("target").join(profile).join("balancer");
    let out = root.join("target/dist");
    let stage = out.join("stage");
    if stage.exists() {
        std::fs::remove_dir_all(&stage).context("cannot clear target/dist/stage")?;
    }
    let version = version(&bin)?;
    let arch = output(Command::new("dpkg").arg("--print-architecture"))?
        .trim()
        .to_owned();
    files(root, &bin, &stage)?;
    control(&stage, &version, &arch)?;
    let deb = out.join(format!("{NAME}_{version}_{arch}.deb"));
    status(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&stage)
            .arg(&deb),
    )?;
    if shell::has("lintian", "--version") {
        status(
            Command::new("lintian")
                .args(["--fail-on", "error"])
                .arg(&deb),
        )
        .context("lintian found errors in the package")?;
    }
    eprintln!("dist: {}", deb.display());
    Ok(deb)
}

/// The version `balancer --version` prints.
fn version(bin: &Path) -> Result<String> {
    let text = output(Command::new(bin).arg("--version"))?;
    text.split_whitespace()
        .nth(1)
        .map(str::to_owned)
        .context("`balancer --version` printed no version")
}

/// The staging tree.
struct Stage<'a>(&'a Path);

impl Stage<'_> {
    /// Writes `bytes` at `rel` with `mode`.
    fn put(&self, rel: &str, bytes: &[u8], mode: u32) -> Result<()> {
        let path = self.0.join(rel);
        std::fs::create_dir_all(path.parent().expect("a file in a folder"))?;
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {rel}"))?;
        set_mode(&path, mode)
    }

    /// Copies `from` to `rel`.
    fn copy(&self, rel: &str, from: &Path) -> Result<()> {
        let bytes =
            std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
        self.put(rel, &bytes, 0o644)
    }
}

/// Fills the staging tree (all but `DEBIAN/`).
fn files(root: &Path, bin: &Path, stage: &Path) -> Result<()> {
    let st = Stage(stage);
    program(bin, &st)?;
    st.put(
        "lib/systemd/system/balancer.service",
        unit(root)?.as_bytes(),
        0o644,
    )?;
    st.put(
        "usr/lib/sysusers.d/balancer.conf",
        b"# The user balancer.service runs as.\nu balancer - \"balancer load balancer\" /nonexistent /usr/sbin/nologin\n",
        0o644,
    )?;
    st.copy(
        "etc/balancer/balancer.yaml",
        &root.join("config/default.yaml"),
    )?;
    st.put(
        "usr/share/lintian/overrides/balancer",
        LINTIAN_OVERRIDES.as_bytes(),
        0o644,
    )?;
    let doc = "usr/share/doc/balancer";
    st.put(&format!("{doc}/copyright"), COPYRIGHT.as_bytes(), 0o644)?;
    st.put(
        &format!("{doc}/changelog.gz"),
        &gzip_bytes(changelog()?.as_bytes())?,
        0o644,
    )?;
    st.copy(&format!("{doc}/README.md"), &root.join("README.md"))?;
    for (from, to) in [("config", "examples"), ("config/bird", "examples/bird")] {
        for entry in std::fs::read_dir(root.join(from))? {
            let path = entry?.path();
            if path.is_file() {
                let name = path.file_name().and_then(|n| n.to_str()).context("name")?;
                st.copy(&format!("{doc}/{to}/{name}"), &path)?;
            }
        }
    }
    Ok(())
}

/// The stripped binary, and the man pages and completions it makes.
fn program(bin: &Path, st: &Stage<'_>) -> Result<()> {
    let exe = st.0.join("usr/bin/balancer");
    std::fs::create_dir_all(exe.parent().expect("usr/bin"))?;
    std::fs::copy(bin, &exe).context("cannot copy the binary")?;
    // As dh_strip does: debug info and notes out, the symbols it needs kept.
    status(
        Command::new("strip")
            .args([
                "--remove-section=.comment",
                "--remove-section=.note",
                "--strip-unneeded",
            ])
            .arg(&exe),
    )?;
    set_mode(&exe, 0o755)?;
    let generated = st.0.join("../generated");
    if generated.exists() {
        std::fs::remove_dir_all(&generated)?;
    }
    for what in ["man", "bash", "zsh", "fish"] {
        output(
            Command::new(bin)
                .args(["generate", what, "--out"])
                .arg(generated.join(what)),
        )?;
    }
    for page in std::fs::read_dir(generated.join("man"))? {
        let page = page?.path();
        let name = page
            .file_name()
            .and_then(|n| n.to_str())
            .context("page name")?;
        st.put(
            &format!("usr/share/man/man1/{name}.gz"),
            &gzip(&page)?,
            0o644,
        )?;
    }
    st.copy(
        "usr/share/bash-completion/completions/balancer",
        &generated.join("bash/balancer.bash"),
    )?;
    st.copy(
        "usr/share/zsh/vendor-completions/_balancer",
        &generated.join("zsh/_balancer"),
    )?;
    st.copy(
        "usr/share/fish/vendor_completions.d/balancer.fish",
        &generated.join("fish/balancer.fish"),
    )
}

/// `dist/balancer.service` with the packaged binary's path, its
/// install-by-hand header replaced.
fn unit(root: &Path) -> Result<String> {
    let text = std::fs::read_to_string(root.join("dist/balancer.service"))?;
    let body = text
        .find("[Unit]")
        .map(|i| &text[i..])
        .context("dist/balancer.service has no [Unit]")?;
    Ok(format!(
        "# balancer, from the Debian package. Edit /etc/balancer/balancer.yaml,\n# then: systemctl enable --now balancer. See balancer(1).\n{}",
        body.replace("/usr/local/bin/balancer", "/usr/bin/balancer")
    ))
}

/// `DEBIAN/`: control (dependencies from `dpkg-shlibdeps`), conffiles and
/// the postinst that makes the service's user.
fn control(stage: &Path, version: &str, arch: &str) -> Result<()> {
    let depends = shlibdeps(stage)?;
    let size = output(Command::new("du").args(["-sk"]).arg(stage))?;
    let size = size.split_whitespace().next().unwrap_or("0");
    let dir = stage.join("DEBIAN");
    std::fs::create_dir_all(&dir)?;
    let mut control = String::new();
    let _ = write!(
        control,
        "Package: {NAME}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: balancer developers <balancer@example.org>\nInstalled-Size: {size}\nDepends: {depends}\nSection: net\nPriority: optional\nDescription: L4/L7 load balancer with an XDP fast path\n balancer balances TCP and UDP flows in the kernel (XDP: Maglev, a flow\n table, DSR or IP-in-IP) and in a daemon: a splice TCP proxy, a UDP proxy\n and an HTTP layer with routing and TLS. It runs health checks, hot\n reloads, hitless upgrades, guards listeners against floods, announces\n VIPs for BGP scale-out and follows backends in DNS or a watched file.\n"
    );
    std::fs::write(dir.join("control"), control)?;
    std::fs::write(dir.join("conffiles"), "/etc/balancer/balancer.yaml\n")?;
    std::fs::write(dir.join("postinst"), POSTINST)?;
    set_mode(&dir.join("postinst"), 0o755)
}

/// `dpkg-shlibdeps` run on the staged binary from a scratch source tree
/// (it wants a `debian/control`).
fn shlibdeps(stage: &Path) -> Result<String> {
    let scratch = stage.join("../shlibdeps");
    std::fs::create_dir_all(scratch.join("debian"))?;
    std::fs::write(
        scratch.join("debian/control"),
        format!("Source: {NAME}\n\nPackage: {NAME}\nArchitecture: any\n"),
    )?;
    let exe = stage.join("usr/bin/balancer").canonicalize()?;
    let text = output(
        Command::new("dpkg-shlibdeps")
            .current_dir(&scratch)
            .args(["-O", "-e"])
            .arg(exe),
    )?;
    let Some(deps) = text.trim().strip_prefix("shlibs:Depends=") else {
        bail!("dpkg-shlibdeps said {text:?}");
    };
    Ok(deps.to_owned())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))
}

fn gzip(path: &Path) -> Result<Vec<u8>> {
    gzip_bytes(&std::fs::read(path)?)
}

/// `gzip -9n`: no name or time stamp, so the package is reproducible.
fn gzip_bytes(bytes: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write as _;
    let mut child = Command::new("gzip")
        .args(["-9n", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot run gzip")?;
    child.stdin.take().context("stdin")?.write_all(bytes)?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("gzip failed");
    }
    Ok(out.stdout)
}

/// A native package's changelog, one entry for this version.
fn changelog() -> Result<String> {
    let version = env!("CARGO_PKG_VERSION");
    let date = output(Command::new("date").args(["-R", "-u", "-d", "@0"]))?;
    Ok(format!(
        "{NAME} ({version}) unstable; urgency=medium\n\n  * Built by cargo xtask dist.\n\n -- balancer developers <balancer@example.org>  {}\n",
        date.trim()
    ))
}

/// Makes the service's user with systemd-sysusers where there is one; an
/// install into another root (`DPKG_ROOT`) leaves it to that system.
const POSTINST: &str = "#!/bin/sh
set -e
if [ \"$1\" = configure ] && [ -z \"${DPKG_ROOT:-}\" ] && command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers balancer.conf
fi
exit 0
";

const COPYRIGHT: &str = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: balancer

Files: *
Copyright: 2026 The balancer developers
License: MIT or Apache-2.0
 balancer is available under either the MIT license or the Apache License,
 Version 2.0, at your option. On Debian systems the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
";

/// The YAML parser is unsafe-libyaml, a Rust translation of libyaml that is
/// linked statically like every Rust dependency; lintian recognises
/// libyaml's strings in it.
const LINTIAN_OVERRIDES: &str =
    "# serde_yaml_ng parses with unsafe-libyaml, a Rust translation of libyaml,
# linked statically as Rust crates are; there is no shared library to use.
balancer: embedded-library libyaml [usr/bin/balancer]
";
