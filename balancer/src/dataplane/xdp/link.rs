//! The program's attachment as a `bpf_link` pinned in the pin directory, so
//! the program keeps forwarding with its maps when the daemon exits, is
//! killed or crashes. The next start swaps its new program into the same
//! link (`bpf_link_update`): there is no moment without a program. The
//! pin's name says where and how the link attaches
//! (`XDP_LINK_IF<ifindex>_<DRV|SKB>_V1`): a start on another interface
//! removes the old link and attaches afresh, a gap it logs. The SYN-cookie
//! program array is pinned beside it, because the kernel empties a program
//! array when its last user reference goes, which would cut the running
//! program's tail call the moment the daemon exits.

use std::{fs, path::Path};

use aya::programs::{
    Xdp,
    links::{FdLink, PinnedLink},
    xdp::XdpLink,
};
use balancer_common::guard::COOKIE_PROGS_MAP;
use tracing::{info, warn};

use super::{
    XdpError,
    iface::Interface,
    pins::{PinError, Pins},
    program::{Attached, XdpProgram},
};

/// The start of every link pin's name.
pub const LINK_PREFIX: &str = "XDP_LINK_IF";

/// How this start came to run its program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handover {
    /// No program was attached: attached now.
    Fresh,
    /// A pinned link from an earlier run was running program `previous`
    /// on this interface; the new program replaced it in place.
    Replaced {
        /// The id of the program that ran until now.
        previous: u32,
    },
    /// A pinned link ran on another interface (index `from`): removed,
    /// and the program attached here afresh.
    Moved {
        /// The interface index it ran on.
        from: u32,
    },
}

/// The attachment this start ended with.
pub struct Attachment {
    /// Native or generic.
    pub attached: Attached,
    /// What happened to an earlier run's program.
    pub handover: Handover,
    /// The kernel's id of the program now attached.
    pub program_id: Option<u32>,
    /// The link, kept open while the daemon runs (the pin keeps it after).
    _link: Option<FdLink>,
}

/// Attaches `program` to `iface` through a link pinned in `pins`, taking
/// over the link an earlier run pinned there when it is on `iface`.
pub fn attach(
    program: &mut XdpProgram,
    iface: &Interface,
    pins: &Pins,
) -> Result<Attachment, XdpError> {
    let mut moved = None;
    for (path, index, attached) in pinned_links(pins)? {
        if index == iface.index
            && let Some(done) = replace(program, &path, attached)?
        {
            pin_cookie_programs(program, pins)?;
            return Ok(done);
        }
        // Another interface, or a link whose interface went away: its
        // program stops when the pin goes.
        remove(&path)?;
        if index != iface.index {
            warn!(from_ifindex = index, to = %iface.name,
                "the pinned XDP link was on another interface: removed; the VIP is not balanced until the program is attached here");
            moved = Some(index);
        }
    }
    let (attached, link) = program.attach_link(&iface.name)?;
    let link = if let Ok(fd) = FdLink::try_from(link) {
        let path = pins.path(&link_name(iface.index, attached));
        Some(FdLink::from(
            fd.pin(&path).map_err(|e| pin_error(&path, &e))?,
        ))
    } else {
        warn!(interface = %iface.name,
            "XDP is attached without a bpf_link (an old kernel): the program stops with the daemon");
        None
    };
    pin_cookie_programs(program, pins)?;
    let program_id = link
        .as_ref()
        .and_then(|l| l.info().ok())
        .map(|i| i.program_id());
    if link.is_some() {
        info!(interface = %iface.name, program = ?program_id, pin_dir = %pins.dir().display(),
            "attached the XDP program through a pinned link: it keeps forwarding when the daemon stops (`balancer detach` stops it)");
    }
    Ok(Attachment {
        attached,
        handover: moved.map_or(Handover::Fresh, |from| Handover::Moved { from }),
        program_id,
        _link: link,
    })
}

/// Swaps `program` into the link pinned at `path`; `None` when that link
/// no longer works (its interface was removed and made again).
fn replace(
    program: &mut XdpProgram,
    path: &Path,
    attached: Attached,
) -> Result<Option<Attachment>, XdpError> {
    let Ok(pinned) = PinnedLink::from_pin(path) else {
        return Ok(None);
    };
    let fd = FdLink::from(pinned);
    let previous = fd.info().map_or(0, |i| i.program_id());
    let Ok(link) = XdpLink::try_from(fd) else {
        return Ok(None);
    };
    let xdp: &mut Xdp = program.entry_mut()?;
    if let Err(e) = xdp.attach_to_link(link) {
        warn!(error = %e, "the pinned XDP link could not take the new program; attaching afresh");
        return Ok(None);
    }
    // Reopen the pin: the link the program took is closed with it, and the
    // id of the program now in it is the new one.
    let reopened = PinnedLink::from_pin(path).ok().map(FdLink::from);
    let program_id = reopened
        .as_ref()
        .and_then(|l| l.info().ok())
        .map(|i| i.program_id());
    info!(previous_program = previous, program = ?program_id,
        "replaced the running XDP program in its pinned link: no packet went unbalanced");
    Ok(Some(Attachment {
        attached,
        handover: Handover::Replaced { previous },
        program_id,
        _link: reopened,
    }))
}

/// The link pins in `pins`: path, interface index, mode.
fn pinned_links(pins: &Pins) -> Result<Vec<(std::path::PathBuf, u32, Attached)>, XdpError> {
    let dir = pins.dir();
    let entries = fs::read_dir(dir).map_err(|source| PinError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((index, attached)) = parse_link_name(&name) {
            out.push((entry.path(), index, attached));
        } else if name.starts_with(LINK_PREFIX) {
            remove(&entry.path())?;
        }
    }
    Ok(out)
}

/// The pin name of a link on interface `index` in mode `attached`.
#[must_use]
pub fn link_name(index: u32, attached: Attached) -> String {
    let mode = match attached {
        Attached::Native => "DRV",
        Attached::Generic => "SKB",
    };
    format!("{LINK_PREFIX}{index}_{mode}_V1")
}

/// The interface index and mode a link pin's name gives.
#[must_use]
pub fn parse_link_name(name: &str) -> Option<(u32, Attached)> {
    let rest = name.strip_prefix(LINK_PREFIX)?.strip_suffix("_V1")?;
    let (index, mode) = rest.split_once('_')?;
    let attached = match mode {
        "DRV" => Attached::Native,
        "SKB" => Attached::Generic,
        _ => return None,
    };
    Some((index.parse().ok()?, attached))
}

/// Pins the program's SYN-cookie program array, replacing an earlier
/// run's (whose program no longer runs).
fn pin_cookie_programs(program: &XdpProgram, pins: &Pins) -> Result<(), XdpError> {
    let path = pins.path(COOKIE_PROGS_MAP);
    if path.exists() {
        remove(&path)?;
    }
    program
        .map(COOKIE_PROGS_MAP)?
        .pin(&path)
        .map_err(|e| pin_error(&path, &e))
}

fn remove(path: &Path) -> Result<(), XdpError> {
    fs::remove_file(path).map_err(|source| {
        XdpError::Pin(PinError::Io {
            path: path.to_path_buf(),
            source,
        })
    })
}

fn pin_error(path: &Path, e: &aya::pin::PinError) -> XdpError {
    XdpError::Pin(PinError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// Removes the program's pinned link (and with it the program, unless the
/// daemon still runs it) and the SYN-cookie program array from `dir`:
/// `balancer detach`. Returns the names removed.
pub fn detach(dir: &Path) -> Result<Vec<String>, std::io::Error> {
    let mut removed = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(LINK_PREFIX) || name == COOKIE_PROGS_MAP {
            fs::remove_file(entry.path())?;
            removed.push(name);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::{Attached, link_name, parse_link_name};

    #[test]
    fn link_names_carry_interface_and_mode() {
        for (index, mode) in [(7, Attached::Native), (123, Attached::Generic)] {
            let name = link_name(index, mode);
            assert_eq!(parse_link_name(&name), Some((index, mode)), "{name}");
        }
        assert_eq!(parse_link_name("XDP_LINK_IF7_XYZ_V1"), None);
        assert_eq!(parse_link_name("XDP_LINK_IFx_DRV_V1"), None);
        assert_eq!(parse_link_name("FLOWS_V3"), None);
    }
}
