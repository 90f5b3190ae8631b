//! The sockmap relay: an `sk_skb` stream verdict program that sends every
//! byte a proxied socket receives out of the other socket of its
//! connection, inside the kernel, with no pipe and no wake-up of the daemon
//! per chunk. Maps and names: `balancer_common::relay`.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]

mod panic;

use aya_ebpf::{
    bindings::{BPF_F_NO_PREALLOC, sk_action},
    helpers::bpf_get_socket_cookie,
    macros::{map, stream_verdict},
    maps::{HashMap, SockHash},
    programs::SkBuffContext,
};
use balancer_common::relay::MAX_SOCKETS;

/// Where the verdict runs: `balancer_common::relay::SOCKETS`.
#[map(name = "RELAY_SOCKETS")]
static RELAY_SOCKETS: SockHash<u64> = SockHash::with_max_entries(MAX_SOCKETS, 0);

/// Where bytes go: `balancer_common::relay::PEERS`.
#[map(name = "RELAY_PEERS")]
static RELAY_PEERS: SockHash<u64> = SockHash::with_max_entries(MAX_SOCKETS, 0);

/// Bytes moved per source socket: `balancer_common::relay::BYTES`.
#[map(name = "RELAY_BYTES")]
static RELAY_BYTES: HashMap<u64, u64> = HashMap::with_max_entries(MAX_SOCKETS, BPF_F_NO_PREALLOC);

/// Redirects the received chunk to the peer's send side. A socket without a
/// peer has its bytes dropped (`SK_DROP`): the daemon links the peer first,
/// so that happens only once the peer has closed.
#[expect(
    clippy::needless_pass_by_value,
    reason = "the #[stream_verdict] wrapper hands the context over by value"
)]
#[stream_verdict]
pub fn relay_verdict(ctx: SkBuffContext) -> u32 {
    // The FIN arrives as an empty buffer. Redirected, the kernel's sender
    // would take its zero-byte write for a broken pipe and stop the peer's
    // relay; the daemon passes the FIN on itself.
    if ctx.len() == 0 {
        return sk_action::SK_DROP;
    }
    // SAFETY: the context is a live `__sk_buff`, which the helper only reads.
    let mut cookie = unsafe { bpf_get_socket_cookie(ctx.skb.skb.cast()) };
    if let Some(bytes) = RELAY_BYTES.get_ptr_mut(cookie) {
        // One socket's verdicts never run at once (they hold its lock), so
        // a plain add is exact; the daemon only reads.
        // SAFETY: the pointer is the map's value slot, valid for this run.
        unsafe { *bytes += u64::from(ctx.len()) };
    }
    let action = RELAY_PEERS.redirect_skb(&ctx, &mut cookie, 0);
    if action == i64::from(sk_action::SK_PASS) {
        sk_action::SK_PASS
    } else {
        sk_action::SK_DROP
    }
}

/// Linked only for the BPF target; on the host this keeps the bin well-formed.
#[cfg(not(target_arch = "bpf"))]
fn main() {}
