//! `balancer check`: validate a config file and print its summary; and
//! `balancer detach`, which reads the same file for its pin directory.

use std::path::Path;

use balancer::{config, summary};

/// The file's summary, or its first error located by file, line and column.
/// The error goes out as its own text only: its causes are already in it.
pub(crate) fn check(file: &Path) -> Result<String, String> {
    config::load(file)
        .map(|c| format!("{}: ok\n{}", file.display(), summary::render(&c)))
        .map_err(|e| e.to_string())
}

/// `balancer detach`: removes the pinned XDP link of `file`'s `xdp.pin_dir`.
pub(crate) fn detach(file: &Path) -> Result<String, String> {
    let c = config::load(file).map_err(|e| e.to_string())?;
    let Some(xdp) = c.xdp else {
        return Err(format!(
            "{}: no `xdp` section, so no XDP program to detach",
            file.display()
        ));
    };
    let dir = &xdp.pin_dir;
    match balancer::dataplane::xdp::link::detach(dir) {
        Ok(removed) if removed.is_empty() => Ok(format!(
            "{}: no pinned XDP link (nothing attached outlives a daemon)\n",
            dir.display()
        )),
        Ok(removed) => Ok(format!(
            "{}: removed {}; the XDP program stops unless a daemon still runs it\n",
            dir.display(),
            removed.join(", ")
        )),
        Err(e) => Err(format!("{}: {e}", dir.display())),
    }
}
