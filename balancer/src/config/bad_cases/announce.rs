//! Bad `announce` sections: an interface name the kernel would refuse, a
//! `min_healthy` of 0 or beyond any pool, an unknown key.

use super::{Case, append};

/// The `announce` cases.
pub(super) fn cases() -> Vec<Case> {
    vec![
        (
            "announce interface with a space",
            append("announce:\n  interface: \"vip 0\"\n"),
            16,
            "announce.interface",
            "`vip 0` is not a valid interface name",
        ),
        (
            "announce interface too long",
            append("announce:\n  interface: announcements-v4\n"),
            16,
            "announce.interface",
            "`announcements-v4`",
        ),
        (
            "announce min_healthy 0",
            append("announce:\n  min_healthy: 0\n"),
            16,
            "announce.min_healthy",
            "`0` is out of range",
        ),
        (
            "announce unknown key",
            append("announce:\n  intrface: vip0\n"),
            16,
            "announce",
            "unknown field `intrface`",
        ),
    ]
}
