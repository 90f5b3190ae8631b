//! The `announce` section: the interface the announced addresses live on
//! (a name the kernel takes) and how many up backends a VIP's pool needs
//! for the VIP to be announced.

use super::{Problems, xdp::interface_name_ok};
use crate::config::{
    defaults::{DEFAULT_ANNOUNCE_INTERFACE, DEFAULT_MIN_HEALTHY},
    limits::MAX_BACKENDS,
    model::Announce,
    raw::RawAnnounce,
};

/// The `announce` section.
pub(super) fn announce(a: &RawAnnounce, p: &mut Problems) -> Announce {
    let interface = a
        .interface
        .clone()
        .unwrap_or_else(|| DEFAULT_ANNOUNCE_INTERFACE.to_owned());
    if !interface_name_ok(&interface) {
        p.add(
            "announce.interface",
            format!("`{interface}` is not a valid interface name"),
        );
    }
    Announce {
        interface,
        min_healthy: p
            .bounded(
                "announce.min_healthy",
                a.min_healthy,
                DEFAULT_MIN_HEALTHY,
                u64::try_from(MAX_BACKENDS).unwrap_or(u64::MAX),
            )
            .get(),
    }
}
