//! Hard limits on what a file may ask for. Each exists so that no setting
//! can demand an unbounded amount of memory, file descriptors or work; the
//! validator refuses values beyond them, and the runtime may rely on them.

// Callers read the admin default here from before the defaults had their
// own module.
pub use super::defaults::DEFAULT_ADMIN as ADMIN;

/// Largest config file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// Longest name of a listener, pool, route or other named item, in bytes.
pub const MAX_NAME: usize = 128;
/// Most pools in one file.
pub const MAX_POOLS: usize = 1024;
/// Most built-in demo backends.
pub const MAX_DEMO_BACKENDS: usize = 64;
/// Highest backend weight; 0 (the lowest) drains the backend.
pub const MAX_WEIGHT: u32 = 10_000;
/// Most listeners in one file.
pub const MAX_LISTENERS: usize = 1024;
/// Most backends in one pool.
pub const MAX_BACKENDS: usize = 10_000;
/// Largest Maglev table size.
pub const MAX_MAGLEV_TABLE: u64 = 4_194_301;
/// Highest `max_connections` of a TCP listener.
pub const MAX_MAX_CONNECTIONS: u64 = 1_000_000;
/// Highest `max_sessions` of a UDP listener.
pub const MAX_MAX_SESSIONS: u64 = 1_000_000;
/// Highest backend connect attempts.
pub const MAX_CONNECT_ATTEMPTS: u64 = 16;
/// Largest flow-table size.
pub const MAX_FLOW_TABLE: u64 = 100_000_000;
/// Highest health rise/fall count.
pub const MAX_RISE_FALL: u64 = 100;
/// Entries a single guard list may hold.
pub const MAX_LIST: usize = 4096;
/// Largest guard rate or burst accepted, per second.
pub const MAX_RATE: u64 = 100_000_000;
/// Largest per-source guard table.
pub const MAX_SOURCES: u64 = 16_777_216;
/// Most routes on one listener.
pub const MAX_ROUTES: usize = 4096;
/// Largest HTTP request head accepted.
pub const MAX_HEADER_BYTES: u64 = 1_048_576;
/// Most header fields in an HTTP request.
pub const MAX_HEADERS: u64 = 10_000;
/// Most concurrent HTTP/2 streams per connection.
pub const MAX_STREAMS: u64 = 10_000;
/// Most idle upstream connections kept per backend.
pub const MAX_UPSTREAM_IDLE: u64 = 10_000;
/// Largest compiled route regex, in bytes of the regex engine's program.
pub const MAX_REGEX_SIZE: usize = 1 << 20;
/// Longest fixed answer body or header value written in the file.
pub const MAX_TEXT: usize = 65_536;
