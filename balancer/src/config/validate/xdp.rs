//! The `xdp` section, and what the kernel plane asks of the listeners
//! served by it: a Maglev ring per VIP (so `maglev` pools only) and no
//! port translation (a backend serves the VIP's port). `auto` listeners
//! that do not qualify are served by the proxy instead, so only `xdp`
//! listeners are held to it.

use std::path::PathBuf;

use super::Problems;
use crate::config::{
    defaults::{DEFAULT_FLOW_TABLE, DEFAULT_FORWARDING, DEFAULT_PIN_DIR},
    limits::MAX_FLOW_TABLE,
    model::{Algorithm, Listener, Mode, Pool, Xdp},
    raw::RawXdp,
};

/// The longest interface name the kernel takes is 15 bytes (`IFNAMSIZ` - 1).
const MAX_INTERFACE_NAME: usize = 15;

/// Whether the kernel takes `name` as an interface name.
pub(super) fn interface_name_ok(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_INTERFACE_NAME && !name.contains(['/', ' ', '\0'])
}

/// The `xdp` section.
pub(super) fn xdp(x: &RawXdp, p: &mut Problems) -> Xdp {
    if !interface_name_ok(&x.interface) {
        p.add(
            "xdp.interface",
            format!("`{}` is not a valid interface name", x.interface),
        );
    }
    Xdp {
        interface: x.interface.clone(),
        forwarding: x.forwarding.unwrap_or(DEFAULT_FORWARDING),
        flow_table_size: p.bounded(
            "xdp.flow_table_size",
            x.flow_table_size,
            DEFAULT_FLOW_TABLE,
            MAX_FLOW_TABLE,
        ),
        pin_dir: pin_dir(x.pin_dir.as_deref(), p),
        log: x.log.unwrap_or_default(),
    }
}

fn pin_dir(raw: Option<&str>, p: &mut Problems) -> PathBuf {
    let dir = raw.unwrap_or(DEFAULT_PIN_DIR);
    if !dir.starts_with('/') || dir.trim_end_matches('/').is_empty() {
        p.add(
            "xdp.pin_dir",
            format!(
                "`{dir}` must be an absolute path below a BPF filesystem mount, such as `{DEFAULT_PIN_DIR}`"
            ),
        );
    }
    PathBuf::from(dir)
}

/// Holds every `xdp` listener to what the kernel plane can do.
pub(super) fn listeners(listeners: &[Listener], pools: &[Pool], p: &mut Problems) {
    for (i, l) in listeners.iter().enumerate() {
        if l.mode != Mode::Xdp {
            continue;
        }
        let Some(pool) = l.pool.and_then(|x| pools.get(x)) else {
            continue;
        };
        if pool.algorithm != Algorithm::Maglev {
            p.add(
                format!("listeners[{i}].mode"),
                format!("`xdp` balances with the pool's Maglev ring; pool `{}` uses `{}` (use `maglev`, or mode `auto`/`proxy`)", pool.name, pool.algorithm),
            );
        }
        if pool.proxy_protocol.is_some() {
            p.add(
                format!("listeners[{i}].mode"),
                format!("`xdp` forwards packets and cannot send the PROXY header pool `{}` wants (use `proxy` or `auto`)", pool.name),
            );
        }
        if let Some(port) = pool
            .discover
            .as_ref()
            .and_then(|d| d.dns.as_ref())
            .and_then(|d| d.port)
            .filter(|port| *port != l.address.port())
        {
            p.add(
                format!("listeners[{i}].mode"),
                format!(
                    "`xdp` forwards packets unchanged, so backends must serve the listener's port {}; pool `{}` discovers backends on port {port}",
                    l.address.port(),
                    pool.name
                ),
            );
        }
        if let Some(b) = pool
            .backends
            .iter()
            .find(|b| b.address.port() != l.address.port())
        {
            p.add(
                format!("listeners[{i}].mode"),
                format!(
                    "`xdp` forwards packets unchanged, so backends must serve the listener's port {}; `{}` in pool `{}` does not",
                    l.address.port(),
                    b.address,
                    pool.name
                ),
            );
        }
    }
}
