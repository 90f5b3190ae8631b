//! Follows the kernel's neighbour table while the XDP plane runs: the
//! program sends each backend's frames to a MAC resolved when its tables
//! were built, so when a next hop answers from another MAC (a replaced
//! backend machine, a failed-over router, a moved virtual machine) and
//! the kernel learns it, the plane's routes take the new MAC and the
//! control loop rewrites the backend entries. A thread, since the netlink
//! socket is a blocking one and the events are rare.

use std::{
    io,
    net::IpAddr,
    sync::{Mutex, Weak},
    time::Duration,
};

use rtnetlink::{
    packet_core::NetlinkPayload,
    packet_route::RouteNetlinkMessage,
    sys::{Socket, protocols::NETLINK_ROUTE},
};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{
    netlink::{messages, usable},
    plane::XdpPlane,
};
use crate::runtime::events::Event;

/// The rtnetlink multicast group of neighbour changes.
const RTNLGRP_NEIGH: u32 = 3;
/// How often the thread looks whether the plane still runs.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Starts following for `plane`; the thread ends once the plane is gone or
/// the control loop (`events`) stops.
pub fn spawn(plane: Weak<Mutex<XdpPlane>>, events: mpsc::Sender<Event>) -> io::Result<()> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.add_membership(RTNLGRP_NEIGH)?;
    socket2::SockRef::from(&socket).set_read_timeout(Some(CHECK_EVERY))?;
    std::thread::Builder::new()
        .name("xdp-neighbours".to_owned())
        .spawn(move || run(&socket, &plane, &events))?;
    Ok(())
}

fn run(socket: &Socket, plane: &Weak<Mutex<XdpPlane>>, events: &mpsc::Sender<Event>) {
    loop {
        let changed = match socket.recv_from_full() {
            Ok((data, _)) => learned(&data).into_iter().any(|(index, ip, mac)| {
                with_plane(plane, |p| p.neighbour_changed(index, ip, mac)) == Some(true)
            }),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if plane.strong_count() == 0 {
                    return;
                }
                false
            }
            // The kernel dropped changes it could not queue: ask it again
            // for every next hop.
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                with_plane(plane, XdpPlane::refresh_neighbours) == Some(true)
            }
            Err(e) => {
                warn!(error = %e, "cannot read neighbour changes; backends' MACs are no longer followed");
                return;
            }
        };
        if changed {
            info!("a backend's next hop answers from a new MAC: rewriting the XDP backend entries");
            if events.blocking_send(Event::NextHops).is_err() {
                return;
            }
        }
    }
}

/// Runs `f` on the plane, if it still runs and its lock is sound.
fn with_plane<T>(plane: &Weak<Mutex<XdpPlane>>, f: impl FnOnce(&mut XdpPlane) -> T) -> Option<T> {
    let plane = plane.upgrade()?;
    let mut guard = plane.lock().ok()?;
    Some(f(&mut guard))
}

/// The usable neighbour entries announced in one datagram.
fn learned(data: &[u8]) -> Vec<(u32, IpAddr, [u8; 6])> {
    messages(data)
        .map_while(Result::ok)
        .filter_map(|m| match m.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(n)) => usable(&n),
            _ => None,
        })
        .collect()
}
