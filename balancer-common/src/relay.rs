//! The sockmap relay's maps, shared by its `sk_skb` program
//! (`balancer-ebpf/src/relay.rs`) and the daemon's sockmap engine
//! (`balancer/src/proxy/sockmap`).
//!
//! Every proxied socket is known by its socket cookie (`SO_COOKIE`, which
//! the program reads with `bpf_get_socket_cookie`): [`SOCKETS`] holds it
//! under its own cookie (that attaches the verdict program), [`PEERS`]
//! holds the other socket of its connection under its cookie (where its
//! bytes go), and [`BYTES`] counts what its program run moved.

/// Sockets whose received bytes the verdict program handles, by cookie.
pub const SOCKETS: &str = "RELAY_SOCKETS";
/// Each socket's peer, keyed by the cookie of the socket whose bytes it
/// sends: a separate map, so both ends are targets before either end's
/// program runs.
pub const PEERS: &str = "RELAY_PEERS";
/// Bytes redirected so far from the socket with this cookie (`u64`).
pub const BYTES: &str = "RELAY_BYTES";
/// The verdict program's name in the object.
pub const PROGRAM: &str = "relay_verdict";
/// Room in each map: two sockets per relayed connection. A connection that
/// finds the maps full is spliced instead.
pub const MAX_SOCKETS: u32 = 1 << 18;
