//! A blocking rtnetlink socket for the XDP plane's look-ups: where the
//! kernel routes an address, and the link-layer address of a neighbour.
//! The plane builds its tables from synchronous code (start, reload), so
//! this speaks netlink directly with the same message crates the
//! announcements' asynchronous client uses, one request at a time.

use std::{io, net::IpAddr};

use rtnetlink::{
    RouteMessageBuilder,
    packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload},
    packet_route::{
        AddressFamily, RouteNetlinkMessage,
        neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState},
        route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteType},
    },
    sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE},
};

/// One netlink socket and its request sequence.
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

/// Where the kernel sends packets for an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The output interface's index.
    pub index: u32,
    /// The gateway, when the address is not on a link of this host.
    pub via: Option<IpAddr>,
}

impl Netlink {
    /// Opens a socket bound to the kernel.
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Self { socket, seq: 0 })
    }

    /// The kernel's route for `ip` (`ip route get`).
    pub fn route(&mut self, ip: IpAddr) -> io::Result<Route> {
        let message = match ip {
            IpAddr::V4(v4) => RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                .destination_prefix(v4, 32)
                .table_id(0)
                .protocol(RouteProtocol::Unspec)
                .kind(RouteType::Unspec)
                .build(),
            IpAddr::V6(v6) => RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                .destination_prefix(v6, 128)
                .table_id(0)
                .protocol(RouteProtocol::Unspec)
                .kind(RouteType::Unspec)
                .build(),
        };
        let answers = self.ask(RouteNetlinkMessage::GetRoute(message))?;
        answers
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => route_of(&r),
                _ => None,
            })
            .ok_or_else(|| io::Error::other("the kernel answered without a route"))
    }

    /// The link-layer address the kernel holds for neighbour `ip` on
    /// interface `index`, if it has a usable one (`ip neigh get`).
    pub fn neighbour(&mut self, index: u32, ip: IpAddr) -> io::Result<Option<[u8; 6]>> {
        let mut message = NeighbourMessage::default();
        message.header.family = family(ip);
        message.header.ifindex = index;
        message
            .attributes
            .push(NeighbourAttribute::Destination(match ip {
                IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
                IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
            }));
        match self.ask(RouteNetlinkMessage::GetNeighbour(message)) {
            Ok(answers) => Ok(answers.iter().find_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) => usable(n).map(|(_, _, mac)| mac),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends one request and collects the answers up to its end (one
    /// message, or a dump's `Done`); a netlink error becomes its errno.
    fn ask(&mut self, request: RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST;
        header.sequence_number = self.seq;
        let mut message = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(request));
        message.finalize();
        let mut buffer = vec![0; message.buffer_len()];
        message.serialize(&mut buffer);
        self.socket.send(&buffer, 0)?;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.socket.recv_from_full()?;
            for answer in messages(&data) {
                let answer = answer?;
                if answer.header.sequence_number != self.seq {
                    continue;
                }
                let multipart = answer.header.flags & rtnetlink::packet_core::NLM_F_MULTIPART != 0;
                match answer.payload {
                    NetlinkPayload::InnerMessage(m) => {
                        out.push(m);
                        if !multipart {
                            return Ok(out);
                        }
                    }
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                            None => Ok(out),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    _ => {}
                }
            }
        }
    }
}

/// The netlink messages one datagram holds, in order; a message that does
/// not decode ends the walk with its error.
pub fn messages(
    data: &[u8],
) -> impl Iterator<Item = io::Result<NetlinkMessage<RouteNetlinkMessage>>> + '_ {
    let mut offset = 0;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || offset >= data.len() {
            return None;
        }
        match NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..]) {
            Err(e) => {
                failed = true;
                Some(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    e.to_string(),
                )))
            }
            Ok(message) => {
                let length = message.header.length as usize;
                if length == 0 {
                    return None;
                }
                // Messages are aligned to 4 bytes.
                offset += (length + 3) & !3;
                Some(Ok(message))
            }
        }
    })
}

/// The address family netlink names for `ip`.
fn family(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// The output interface and gateway of a route answer.
fn route_of(r: &RouteMessage) -> Option<Route> {
    let mut index = None;
    let mut via = None;
    for a in &r.attributes {
        match a {
            RouteAttribute::Oif(i) => index = Some(*i),
            RouteAttribute::Gateway(RouteAddress::Inet(v4)) => via = Some(IpAddr::V4(*v4)),
            RouteAttribute::Gateway(RouteAddress::Inet6(v6)) => via = Some(IpAddr::V6(*v6)),
            _ => {}
        }
    }
    Some(Route { index: index?, via })
}

/// A neighbour entry's interface, address and link-layer address, when
/// the entry can be sent to (resolved, or being re-checked).
#[must_use]
pub fn usable(n: &NeighbourMessage) -> Option<(u32, IpAddr, [u8; 6])> {
    if !matches!(
        n.header.state,
        NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent
            | NeighbourState::Noarp
    ) {
        return None;
    }
    let mut ip = None;
    let mut mac = None;
    for a in &n.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                ip = Some(IpAddr::V4(*v4));
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                ip = Some(IpAddr::V6(*v6));
            }
            NeighbourAttribute::LinkLayerAddress(l) => mac = <[u8; 6]>::try_from(l.as_slice()).ok(),
            _ => {}
        }
    }
    Some((n.header.ifindex, ip?, mac?))
}

#[cfg(test)]
mod tests {
    use super::Netlink;

    /// Loopback is routed through `lo` with no gateway, and has no
    /// neighbour entry; asked of this host's kernel, which every test host
    /// has.
    #[test]
    fn loopback_routes_through_lo_without_a_neighbour() {
        let mut n = Netlink::open().expect("netlink");
        let lo = n.route("127.0.0.1".parse().expect("ip")).expect("route");
        assert_eq!(lo.via, None);
        let index = nix_index("lo");
        assert_eq!(lo.index, index);
        assert_eq!(
            n.neighbour(index, "127.0.0.2".parse().expect("ip"))
                .expect("neighbour"),
            None
        );
    }

    /// A route through a gateway names it; a direct one does not.
    #[test]
    fn route_answers_give_the_interface_and_gateway() {
        use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
        let mut routed = RouteMessage::default();
        routed.attributes = vec![
            RouteAttribute::Oif(3),
            RouteAttribute::Gateway(RouteAddress::Inet("198.18.0.254".parse().expect("ip"))),
        ];
        assert_eq!(
            super::route_of(&routed),
            Some(super::Route {
                index: 3,
                via: Some("198.18.0.254".parse().expect("ip"))
            })
        );
        let mut direct = RouteMessage::default();
        direct.attributes = vec![RouteAttribute::Oif(2)];
        assert_eq!(
            super::route_of(&direct),
            Some(super::Route {
                index: 2,
                via: None
            })
        );
        assert_eq!(super::route_of(&RouteMessage::default()), None);
    }

    fn nix_index(name: &str) -> u32 {
        let c = std::ffi::CString::new(name).expect("name");
        #[expect(unsafe_code, reason = "if_nametoindex(3) has no std wrapper")]
        // SAFETY: a valid C string.
        unsafe {
            libc::if_nametoindex(c.as_ptr())
        }
    }
}
