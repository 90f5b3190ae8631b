//! The kernel side of announcements, by netlink: the interface announced
//! addresses live on (adopted when the operator made it, else created as a
//! `dummy`, or an `ifb` where the kernel has no dummy driver), and the
//! VIP addresses on it, each a /32 or /128 (IPv6 without duplicate
//! address detection, which would hold a new address back for a second).
//! An address on an interface is a local address: for a VIP the host must
//! never answer itself (an `xdp` one), its route in table `local` is
//! deleted each time the address is added, so packets the program does not
//! take are dropped instead of refused or reset by the host's stack.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures_util::TryStreamExt as _;
use rtnetlink::{
    Handle, LinkDummy, LinkIfb, LinkUnspec, RouteMessageBuilder,
    packet_route::{
        address::{AddressAttribute, AddressFlags, AddressHeaderFlags},
        route::{RouteAddress, RouteAttribute, RouteProtocol, RouteScope, RouteType},
    },
};

/// The kernel's routing table of local addresses.
const TABLE_LOCAL: u32 = 255;

/// Why a netlink request failed.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// No netlink socket (outside a tokio runtime, or no permission).
    #[error("cannot open a netlink socket: {0}")]
    Connect(#[source] std::io::Error),
    /// The kernel refused a request.
    #[error("{what}: {source} (announcing needs CAP_NET_ADMIN)")]
    Refused {
        /// What was asked, with its subject.
        what: String,
        /// The kernel's answer.
        #[source]
        source: rtnetlink::Error,
    },
}

fn refused(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> KernelError {
    let what = what.into();
    move |source| KernelError::Refused { what, source }
}

/// The negative errno of a kernel refusal, if it is one.
/// The route table `local` holds for the host address `ip` on interface
/// `index`.
fn local_route(index: u32, ip: IpAddr) -> rtnetlink::packet_route::route::RouteMessage {
    match ip {
        IpAddr::V4(v4) => RouteMessageBuilder::<Ipv4Addr>::new()
            .table_id(TABLE_LOCAL)
            .destination_prefix(v4, 32)
            .output_interface(index)
            .kind(RouteType::Local)
            .scope(RouteScope::Host)
            .protocol(RouteProtocol::Unspec)
            .build(),
        IpAddr::V6(v6) => RouteMessageBuilder::<Ipv6Addr>::new()
            .table_id(TABLE_LOCAL)
            .destination_prefix(v6, 128)
            .output_interface(index)
            .kind(RouteType::Local)
            .protocol(RouteProtocol::Unspec)
            .build(),
    }
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

/// The announcement interface as found or made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its index.
    pub index: u32,
    /// The kind the daemon created it as (`dummy` or `ifb`); `None` when
    /// it was there already and is adopted as it is.
    pub created: Option<&'static str>,
}

/// A netlink connection to the kernel's routing subsystem.
#[derive(Clone)]
pub struct Kernel {
    handle: Handle,
}

impl Kernel {
    /// Opens the connection; its task runs on the current tokio runtime
    /// until the last clone is dropped.
    pub fn connect() -> Result<Self, KernelError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(KernelError::Connect)?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    /// The index of interface `name`, if there is one.
    pub async fn index_of(&self, name: &str) -> Result<Option<u32>, KernelError> {
        let found = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute()
            .try_next()
            .await;
        match found {
            Ok(link) => Ok(link.map(|l| l.header.index)),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(refused(format!("looking up interface `{name}`"))(e)),
        }
    }

    /// Interface `name`, up: adopted when it exists, else created as a
    /// `dummy` or, without that driver, an `ifb`.
    pub async fn interface(&self, name: &str) -> Result<Interface, KernelError> {
        let created = match self.index_of(name).await? {
            Some(_) => None,
            None => Some(self.create(name).await?),
        };
        let index = self
            .index_of(name)
            .await?
            .ok_or_else(|| KernelError::Refused {
                what: format!("interface `{name}` vanished after it was created"),
                source: rtnetlink::Error::RequestFailed,
            })?;
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(refused(format!("bringing interface `{name}` up")))?;
        Ok(Interface {
            name: name.to_owned(),
            index,
            created,
        })
    }

    async fn create(&self, name: &str) -> Result<&'static str, KernelError> {
        let dummy = self
            .handle
            .link()
            .add(LinkDummy::new(name).build())
            .execute()
            .await;
        if dummy.is_ok() {
            return Ok("dummy");
        }
        // No dummy driver (EOPNOTSUPP, or "unknown kind"): an ifb holds
        // addresses the same way.
        self.handle
            .link()
            .add(LinkIfb::new(name).build())
            .execute()
            .await
            .map_err(refused(format!(
                "creating interface `{name}` (neither the dummy nor the ifb driver would)"
            )))?;
        Ok("ifb")
    }

    /// The host addresses (/32 and /128) on interface `index`.
    pub async fn addresses(&self, index: u32) -> Result<Vec<IpAddr>, KernelError> {
        let mut out = Vec::new();
        let mut dump = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        while let Some(a) = dump
            .try_next()
            .await
            .map_err(refused("listing the announced addresses"))?
        {
            let host = a.header.prefix_len == 32 || a.header.prefix_len == 128;
            for attr in &a.attributes {
                if let AddressAttribute::Address(ip) = attr
                    && host
                {
                    out.push(*ip);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Puts `ip` on interface `index` as a host address (no duplicate
    /// address detection for IPv6); with `answer: false`, deletes its
    /// route in table `local` after, so the host never answers for it.
    /// Adding an address that is there already is not an error.
    pub async fn add(&self, index: u32, ip: IpAddr, answer: bool) -> Result<(), KernelError> {
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        let mut request = self.handle.address().add(index, ip, prefix).replace();
        if ip.is_ipv6() {
            let message = request.message_mut();
            message.header.flags |= AddressHeaderFlags::Nodad;
            message
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        request
            .execute()
            .await
            .map_err(refused(format!("adding address {ip}")))?;
        if !answer {
            self.unroute_local(index, ip).await?;
        }
        Ok(())
    }

    /// Takes `ip` off interface `index`; an address already gone is not
    /// an error.
    pub async fn remove(&self, index: u32, ip: IpAddr) -> Result<(), KernelError> {
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        let mut listed = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(ip)
            .set_prefix_length_filter(prefix)
            .execute();
        while let Some(a) = listed
            .try_next()
            .await
            .map_err(refused(format!("finding address {ip}")))?
        {
            match self.handle.address().del(a).execute().await {
                Err(e) if errno(&e) != Some(libc::EADDRNOTAVAIL) => {
                    return Err(refused(format!("removing address {ip}"))(e));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Deletes the kernel's local route for `ip` on interface `index`; one
    /// already gone is not an error.
    pub async fn unroute_local(&self, index: u32, ip: IpAddr) -> Result<(), KernelError> {
        match self
            .handle
            .route()
            .del(local_route(index, ip))
            .execute()
            .await
        {
            Err(e) if errno(&e) != Some(libc::ESRCH) => {
                Err(refused(format!("deleting the local route of {ip}"))(e))
            }
            _ => Ok(()),
        }
    }

    /// Puts back the local route of `ip` on interface `index` (as the
    /// kernel makes it for a new address), so the host answers for it.
    pub async fn route_local(&self, index: u32, ip: IpAddr) -> Result<(), KernelError> {
        let mut message = local_route(index, ip);
        message
            .attributes
            .push(RouteAttribute::PrefSource(match ip {
                IpAddr::V4(v4) => RouteAddress::Inet(v4),
                IpAddr::V6(v6) => RouteAddress::Inet6(v6),
            }));
        self.handle
            .route()
            .add(message)
            .replace()
            .execute()
            .await
            .map_err(refused(format!("adding the local route of {ip}")))
    }

    /// The destinations of table `local`'s routes through interface
    /// `index`: the addresses the host would answer for there.
    pub async fn local_routes(&self, index: u32) -> Result<Vec<IpAddr>, KernelError> {
        let mut out = Vec::new();
        for dump in [
            RouteMessageBuilder::<Ipv4Addr>::new()
                .table_id(TABLE_LOCAL)
                .build(),
            RouteMessageBuilder::<Ipv6Addr>::new()
                .table_id(TABLE_LOCAL)
                .build(),
        ] {
            let mut routes = self.handle.route().get(dump).execute();
            while let Some(r) = routes
                .try_next()
                .await
                .map_err(refused("listing table local"))?
            {
                if r.header.kind != RouteType::Local {
                    continue;
                }
                let through = r
                    .attributes
                    .iter()
                    .any(|a| matches!(a, RouteAttribute::Oif(i) if *i == index));
                let table = r
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        RouteAttribute::Table(t) => Some(*t),
                        _ => None,
                    })
                    .unwrap_or(u32::from(r.header.table));
                for a in &r.attributes {
                    if let RouteAttribute::Destination(d) = a
                        && through
                        && table == TABLE_LOCAL
                    {
                        match d {
                            RouteAddress::Inet(v4) => out.push(IpAddr::V4(*v4)),
                            RouteAddress::Inet6(v6) => out.push(IpAddr::V6(*v6)),
                            _ => {}
                        }
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::Kernel;

    /// Runs `test` on a thread of its own in a network namespace of its
    /// own (gone with the thread), on a single-threaded runtime there, so
    /// nothing it does touches the host's network.
    fn in_private_netns<F>(test: impl FnOnce() -> F + Send + 'static)
    where
        F: std::future::Future<Output = ()>,
    {
        std::thread::spawn(move || {
            #[expect(unsafe_code, reason = "unshare(2) has no std wrapper")]
            // SAFETY: moves only this thread into a new network namespace.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(test());
        })
        .join()
        .expect("the test thread");
    }

    /// The interface is made (here an ifb: this kernel has no dummy
    /// driver) and adopted on the next start; an `xdp`-style VIP loses its
    /// local route, a proxy one keeps it; removing takes the address away;
    /// adding or removing twice is not an error.
    #[test]
    fn addresses_go_on_and_off_the_interface_and_only_answered_ones_stay_local() {
        in_private_netns(|| async {
            let k = Kernel::connect().expect("netlink");
            let made = k.interface("vip0").await.expect("create vip0");
            assert!(made.created.is_some(), "{made:?}");
            let again = k.interface("vip0").await.expect("adopt vip0");
            assert_eq!((again.index, again.created), (made.index, None));

            let kernel_only: IpAddr = "198.18.100.10".parse().expect("ip");
            let local: IpAddr = "198.18.100.11".parse().expect("ip");
            let v6: IpAddr = "fd00:100::10".parse().expect("ip");
            k.add(made.index, kernel_only, false).await.expect("add");
            k.add(made.index, kernel_only, false)
                .await
                .expect("add again");
            k.add(made.index, local, true).await.expect("add");
            k.add(made.index, v6, false).await.expect("add v6");
            assert_eq!(
                k.addresses(made.index).await.expect("list"),
                vec![kernel_only, local, v6]
            );
            let routes = k.local_routes(made.index).await.expect("routes");
            assert!(routes.contains(&local), "{routes:?}");
            assert!(!routes.contains(&kernel_only), "{routes:?}");
            assert!(!routes.contains(&v6), "{routes:?}");

            k.remove(made.index, kernel_only).await.expect("remove");
            k.remove(made.index, kernel_only)
                .await
                .expect("remove again");
            k.remove(made.index, v6).await.expect("remove v6");
            assert_eq!(k.addresses(made.index).await.expect("list"), vec![local]);
            assert_eq!(k.index_of("nosuch0").await.expect("look up"), None);
        });
    }
}
