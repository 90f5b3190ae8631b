//! Loads the relay's `sk_skb` program once and attaches it to its socket
//! map; every `sockmap` listener shares the result.

use std::sync::{Mutex, OnceLock};

use aya::{
    Ebpf,
    maps::{HashMap, MapData, SockHash},
    programs::SkSkb,
};
use balancer_common::relay::{BYTES, PEERS, PROGRAM, SOCKETS};

/// The relay's object, built by `build.rs` beside the XDP program.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/relay"));

/// Why the relay could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The kernel refused the object, the program or a map.
    #[error(
        "cannot load the sockmap relay ({step}): {detail}; it needs CAP_BPF and CAP_NET_ADMIN (or root) and a kernel with sockmap stream verdicts (5.10 or later); use `proxy_engine: splice` where that is not available"
    )]
    Kernel {
        /// What was being done.
        step: &'static str,
        /// The kernel's or loader's answer.
        detail: String,
    },
}

fn kernel(step: &'static str) -> impl FnOnce(String) -> LoadError {
    move |detail| LoadError::Kernel { step, detail }
}

/// Map `name` of the object, as the kind `T` the daemon uses it as.
fn take<T>(ebpf: &mut Ebpf, name: &str) -> Result<T, LoadError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    ebpf.take_map(name)
        .ok_or_else(|| kernel("maps")(format!("the object has no map {name}")))?
        .try_into()
        .map_err(|e: aya::maps::MapError| kernel("maps")(e.to_string()))
}

/// The maps one relayed connection is entered into.
pub struct Maps {
    /// Sockets under their own cookie: the verdict program runs for these.
    pub sockets: SockHash<MapData, u64>,
    /// Each socket's peer under the socket's cookie.
    pub peers: SockHash<MapData, u64>,
    /// Bytes moved from each socket, under its cookie.
    pub bytes: HashMap<MapData, u64, u64>,
}

/// The loaded, attached relay program and its maps.
pub struct Relay {
    /// Map updates take `&mut` in aya; the lock is held for one system call.
    pub maps: Mutex<Maps>,
    /// Keeps the program loaded and its attachment alive.
    _ebpf: Ebpf,
}

impl Relay {
    /// Loads the program, attaches it to the sockets map, and takes the
    /// maps out for the connections to use.
    pub fn load() -> Result<Self, LoadError> {
        let mut ebpf = Ebpf::load(OBJECT).map_err(|e| kernel("object")(e.to_string()))?;
        let sockets: SockHash<MapData, u64> = take(&mut ebpf, SOCKETS)?;
        let peers: SockHash<MapData, u64> = take(&mut ebpf, PEERS)?;
        let bytes: HashMap<MapData, u64, u64> = take(&mut ebpf, BYTES)?;
        let prog: &mut SkSkb = ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| kernel("program")(format!("the object has no program {PROGRAM}")))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| kernel("program")(e.to_string()))?;
        prog.load().map_err(|e| kernel("verifier")(e.to_string()))?;
        prog.attach(sockets.fd())
            .map_err(|e| kernel("attach")(e.to_string()))?;
        Ok(Self {
            maps: Mutex::new(Maps {
                sockets,
                peers,
                bytes,
            }),
            _ebpf: ebpf,
        })
    }
}

/// The relay, loaded on first use and then shared; a failure is kept too,
/// so every listener that asks gets the same answer without retrying.
#[derive(Default)]
pub struct Loader {
    relay: OnceLock<Result<std::sync::Arc<Relay>, String>>,
}

impl Loader {
    /// The loaded relay, or why it could not be loaded.
    pub fn get(&self) -> Result<std::sync::Arc<Relay>, String> {
        self.relay
            .get_or_init(|| {
                Relay::load()
                    .map(std::sync::Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
    }
}
