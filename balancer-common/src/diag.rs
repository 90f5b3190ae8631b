//! Diagnostics from the kernel: the XDP programs report rare events (a map
//! write that failed, a state the daemon should never leave behind) through
//! aya-log, gated by a level the daemon sets at runtime in
//! [`LOG_LEVEL_MAP`]. Levels are numbered as aya-log numbers them, so a
//! record's level and the gate compare directly; 0 is off, the default.

/// The one-entry array holding the current level (a `u32`). Written by the
/// daemon; read by the programs only on the rare paths that log.
pub const LOG_LEVEL_MAP: &str = "LOG_LEVEL_V1";

/// The ring buffer aya-log writes records into (its own name for it).
pub const LOG_RING_MAP: &str = "AYA_LOGS";

/// Nothing is logged.
pub const LOG_OFF: u32 = 0;
/// A state the daemon should never leave behind.
pub const LOG_ERROR: u32 = 1;
/// A map write that failed, or a packet the program could not forward.
pub const LOG_WARN: u32 = 2;
/// Not used by the programs today; kept so every aya-log level has a gate.
pub const LOG_INFO: u32 = 3;
/// Expected but uncommon events worth seeing while debugging (a flow whose
/// backend was removed, placed again).
pub const LOG_DEBUG: u32 = 4;
/// Everything.
pub const LOG_TRACE: u32 = 5;
