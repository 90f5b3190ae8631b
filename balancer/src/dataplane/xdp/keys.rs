//! How the program keys addresses and listeners: one place for the
//! layouts the balancer's tables and the guard's maps both index by.

use std::net::{IpAddr, SocketAddr};

use balancer_common::{FlowTuple, maps::VipKey};

use crate::config::model::Protocol;

/// 16-byte, IPv4-mapped form of an address, as the program keys it.
#[must_use]
pub fn mapped(ip: IpAddr) -> [u8; 16] {
    match ip.to_canonical() {
        IpAddr::V4(v4) => FlowTuple::v4_mapped(v4.octets()),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The key the program matches a listener by.
#[must_use]
pub fn vip_key(address: SocketAddr, protocol: Protocol) -> VipKey {
    VipKey {
        addr: mapped(address.ip()),
        port: address.port(),
        protocol: match protocol {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        },
        pad: 0,
    }
}
