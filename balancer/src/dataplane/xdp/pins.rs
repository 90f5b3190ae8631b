//! The balancer's maps pinned on a BPF filesystem, so that the next start
//! of the daemon finds them: the flow table keeps established flows on
//! their backends across a restart, and the counters keep counting. This
//! module owns the directory: making sure it is on a BPF filesystem,
//! reading back what the last run wrote, and deciding per map whether the
//! pinned one can be re-adopted or must be replaced.
#![expect(
    unsafe_code,
    reason = "flock(2), statfs(2) and mount(2) have no std wrapper"
)]

use std::{
    fs, io,
    os::{
        fd::{AsFd as _, AsRawFd as _, OwnedFd},
        unix::{ffi::OsStrExt as _, fs::MetadataExt as _},
    },
    path::{Path, PathBuf},
};

use aya::maps::{Array, HashMap, Map, MapData, MapError, MapInfo, MapType};
use balancer_common::{
    Counter,
    guard::COOKIE_PROGS_MAP,
    maps::{
        BACKENDS_MAP, BackendEntry, FLOWS_MAP, FlowKey, FlowValue, RING_MAP, SETTINGS_MAP,
        Settings, VIPS_MAP, VipKey, VipMeta,
    },
    stats::STATS_MAP,
};

use super::{Sizes, tables::Tables};

/// `f_type` of a BPF filesystem in `statfs`.
const BPF_FS_MAGIC: u64 = 0xcafe_4a11;

/// Where systemd and most distributions mount the BPF filesystem; the
/// daemon mounts it there itself when a pin directory below it has none.
const BPF_FS_ROOT: &str = "/sys/fs/bpf";

/// Why the pin directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// Creating, listing or cleaning the directory failed.
    #[error("XDP pin directory `{path}`: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// The directory is not on a BPF filesystem, and mounting one is not
    /// ours to do there.
    #[error(
        "XDP pin directory `{0}` is not on a BPF filesystem; mount one (`mount -t bpf bpf /sys/fs/bpf`) or set `xdp.pin_dir` below one"
    )]
    NotBpfFs(PathBuf),
    /// Another process holds the directory.
    #[error(
        "XDP pin directory `{0}` is in use by another balancer; stop it, or give this one another `xdp.pin_dir`"
    )]
    InUse(PathBuf),
    /// A pinned map could not be read back.
    #[error("pinned XDP map `{path}`: {source}")]
    Map {
        /// The pin.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: MapError,
    },
}

/// What a pinned map must look like to be re-adopted.
struct Shape {
    name: &'static str,
    kind: MapType,
    key: usize,
    value: usize,
}

const fn shape(name: &'static str, kind: MapType, key: usize, value: usize) -> Shape {
    Shape {
        name,
        kind,
        key,
        value,
    }
}

/// The tables the writer diffs against: re-adopted together or replaced
/// together, so that what the writer believes was written is what is there.
const TABLES: [Shape; 3] = [
    shape(
        VIPS_MAP,
        MapType::Hash,
        size_of::<VipKey>(),
        size_of::<VipMeta>(),
    ),
    shape(RING_MAP, MapType::Array, 4, 4),
    shape(BACKENDS_MAP, MapType::Array, 4, size_of::<BackendEntry>()),
];
const FLOWS: Shape = shape(
    FLOWS_MAP,
    MapType::LruHash,
    size_of::<FlowKey>(),
    size_of::<FlowValue>(),
);
const SETTINGS: Shape = shape(SETTINGS_MAP, MapType::Array, 4, size_of::<Settings>());
const STATS: Shape = shape(STATS_MAP, MapType::PerCpuArray, 4, 8);

/// Every map the balancer pins, by name.
pub const PINNED: [&str; 6] = [
    VIPS_MAP,
    RING_MAP,
    BACKENDS_MAP,
    FLOWS_MAP,
    SETTINGS_MAP,
    STATS_MAP,
];

/// A pin directory on a BPF filesystem, locked for this process: two
/// daemons writing the same maps would undo each other's tables.
#[derive(Debug)]
pub struct Pins {
    dir: PathBuf,
    lock: fs::File,
}

/// What the last run left behind, as far as it can be re-adopted.
#[derive(Debug, Default)]
pub struct Leftover {
    /// The tables as they are in the pinned maps, with the maps' capacities
    /// (VIPs, ring, backends); `None` when any of them is missing or of
    /// another layout.
    pub tables: Option<(Tables, Sizes)>,
    /// Entries in the pinned flow table of the right layout, and its
    /// capacity; `None` when there is none.
    pub flows: Option<u32>,
    /// The capacity of a flow table an older build pinned in a layout this
    /// one migrates from.
    pub older_flows: Option<u32>,
}

/// The decision for one start: the sizes to load with, and which state
/// survives.
#[derive(Debug)]
pub struct Plan {
    /// Map sizes for the loader (pinned capacities where re-adopted).
    pub sizes: Sizes,
    /// The tables as written, when the pinned ones are re-adopted.
    pub old: Option<Tables>,
    /// Whether the pinned flow table is re-adopted.
    pub keep_flows: bool,
    /// Whether an older build's flow table is migrated into the new one.
    pub migrate_flows: bool,
    /// Why something was replaced rather than re-adopted, for the log.
    pub replaced: Vec<String>,
}

impl Pins {
    /// Opens (creating it if needed) the pin directory `dir`, mounting the
    /// BPF filesystem on `/sys/fs/bpf` when `dir` is below it and nothing
    /// is mounted there. Pins of map layouts this build does not know (an
    /// older version's) are removed: no program of this build can use them.
    /// `inherited` is the lock a daemon handed over on `run --upgrade`:
    /// when it is on `dir`, this process holds the lock through it.
    pub fn open(dir: &Path, inherited: Option<OwnedFd>) -> Result<Self, PinError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PinError::Io { path, source }
        };
        if !on_bpf_fs(dir) {
            let root = Path::new(BPF_FS_ROOT);
            if !dir.starts_with(root) {
                return Err(PinError::NotBpfFs(dir.to_path_buf()));
            }
            mount_bpf_fs(root).map_err(io(root))?;
            if !on_bpf_fs(dir) {
                return Err(PinError::NotBpfFs(dir.to_path_buf()));
            }
        }
        fs::create_dir_all(dir).map_err(io(dir))?;
        // Locking again through the handed descriptor succeeds: the lock
        // belongs to the open file both daemons share.
        let lock = match inherited.map(fs::File::from) {
            Some(file) if same_file(&file, dir) => file,
            _ => fs::File::open(dir).map_err(io(dir))?,
        };
        // SAFETY: flock on a descriptor we own; no memory is involved.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            return Err(if e.kind() == io::ErrorKind::WouldBlock {
                PinError::InUse(dir.to_path_buf())
            } else {
                PinError::Io {
                    path: dir.to_path_buf(),
                    source: e,
                }
            });
        }
        for entry in fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // The running program's link and program array stay until the
            // new program has taken the link over (see `link`).
            let running = name.starts_with(super::link::LINK_PREFIX) || name == COOKIE_PROGS_MAP;
            // Older layouts this build migrates stay until they are copied.
            let running = running || super::migrate::MIGRATES_FROM.contains(&name.as_ref());
            if looks_like_ours(&name) && !PINNED.contains(&name.as_ref()) && !running {
                fs::remove_file(entry.path()).map_err(io(&entry.path()))?;
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            lock,
        })
    }

    /// Another handle on the same lock, for a new daemon (`run --upgrade`)
    /// or a restart of the plane in this one.
    pub fn share(&self) -> io::Result<OwnedFd> {
        self.lock.as_fd().try_clone_to_owned()
    }

    /// The pin path of map `name`.
    #[must_use]
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads what the last run left, without changing anything.
    pub fn leftover(&self) -> Result<Leftover, PinError> {
        let mut left = Leftover::default();
        let caps: Option<Vec<u32>> = TABLES.iter().map(|s| self.capacity(s)).collect();
        if let Some(caps) = caps {
            let tables = self.read_tables()?;
            left.tables = Some((
                tables,
                Sizes {
                    vips: caps[0],
                    ring: caps[1],
                    backends: caps[2],
                    flows: 0,
                    lists: 0,
                    sources: 0,
                },
            ));
        }
        left.flows = self.capacity(&FLOWS);
        left.older_flows = super::migrate::flows_v1(self);
        Ok(left)
    }

    /// Decides what to re-adopt for `tables` (the new config's, built with
    /// backend ids recovered from `left`) and `want` (their sizes), and
    /// removes the pins that must be replaced, so the loader creates them
    /// afresh.
    pub fn plan(&self, left: Leftover, tables: &Tables, want: Sizes) -> Result<Plan, PinError> {
        let mut plan = Plan {
            sizes: want,
            old: None,
            keep_flows: false,
            migrate_flows: false,
            replaced: Vec::new(),
        };
        let recovered = left.tables.is_some();
        match left.tables {
            Some((old, caps)) if fits(tables, caps) => {
                plan.sizes = Sizes {
                    flows: want.flows,
                    lists: want.lists,
                    sources: want.sources,
                    ..caps
                };
                plan.old = Some(old);
            }
            Some(_) => {
                plan.replaced.push(
                    "the config has outgrown the pinned VIP, ring or backend maps; they are rebuilt (established flows keep their backends)".to_owned(),
                );
                self.remove(TABLES.iter().map(|s| s.name))?;
            }
            None => self.remove(TABLES.iter().map(|s| s.name))?,
        }
        match left.flows {
            Some(n) if n == want.flows && recovered => plan.keep_flows = true,
            Some(n) if n != want.flows => {
                plan.replaced.push(format!(
                    "xdp.flow_table_size changed from {n} to {}; the flow table starts empty and established flows are placed again by the ring",
                    want.flows
                ));
                self.remove([FLOWS.name])?;
            }
            Some(_) => {
                plan.replaced.push(
                    "the pinned backend tables were unreadable, so the pinned flows cannot be matched to backends; the flow table starts empty".to_owned(),
                );
                self.remove([FLOWS.name])?;
            }
            None => self.remove([FLOWS.name])?,
        }
        // An older layout's table is copied only into a new table, with
        // backend ids that mean what they meant to the build that wrote it.
        if left.older_flows.is_some() {
            if left.flows.is_none() && recovered {
                plan.migrate_flows = true;
            } else {
                self.remove(super::migrate::MIGRATES_FROM)?;
            }
        }
        for shape in [&SETTINGS, &STATS] {
            let expected = if shape.name == STATS_MAP {
                Counter::COUNT
            } else {
                1
            };
            if self.capacity(shape) != Some(expected) {
                self.remove([shape.name])?;
            }
        }
        Ok(plan)
    }

    /// The capacity of the pinned map of `shape`, when there is one of that
    /// layout.
    fn capacity(&self, shape: &Shape) -> Option<u32> {
        let info = MapInfo::from_pin(self.path(shape.name)).ok()?;
        let same = info.map_type().ok() == Some(shape.kind)
            && info.key_size() as usize == shape.key
            && info.value_size() as usize == shape.value;
        same.then(|| info.max_entries())
    }

    fn remove<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Result<(), PinError> {
        for name in names {
            let path = self.path(name);
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(PinError::Io { path, source: e });
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn open_map(&self, name: &str) -> Result<(PathBuf, MapData), PinError> {
        let path = self.path(name);
        match MapData::from_pin(&path) {
            Ok(m) => Ok((path, m)),
            Err(source) => Err(PinError::Map { path, source }),
        }
    }

    /// The VIPs, rings, backends and settings as the pinned maps hold them.
    fn read_tables(&self) -> Result<Tables, PinError> {
        let bad = |path: &PathBuf| {
            let path = path.clone();
            move |source| PinError::Map { path, source }
        };
        let (path, data) = self.open_map(VIPS_MAP)?;
        let vips_map: HashMap<MapData, VipKey, VipMeta> =
            HashMap::try_from(Map::HashMap(data)).map_err(bad(&path))?;
        let vips = vips_map
            .iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad(&path))?;
        let used = vips
            .iter()
            .map(|(_, m)| m.ring_offset.saturating_add(m.ring_size))
            .max()
            .unwrap_or(0);
        let (path, data) = self.open_map(RING_MAP)?;
        let ring_map: Array<MapData, u32> =
            Array::try_from(Map::Array(data)).map_err(bad(&path))?;
        let ring = (0..used.min(ring_map.len()))
            .map(|i| ring_map.get(&i, 0))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad(&path))?;
        let (path, data) = self.open_map(BACKENDS_MAP)?;
        let backends_map: Array<MapData, BackendEntry> =
            Array::try_from(Map::Array(data)).map_err(bad(&path))?;
        let mut backends = Vec::new();
        for id in 0..backends_map.len() {
            let b = backends_map.get(&id, 0).map_err(bad(&path))?;
            if b.family != 0 {
                backends.push((id, b));
            }
        }
        let settings = match self.open_map(SETTINGS_MAP) {
            Ok((path, data)) => Array::<MapData, Settings>::try_from(Map::Array(data))
                .and_then(|a| a.get(&0, 0))
                .map_err(bad(&path))?,
            Err(_) => zeroed_settings(),
        };
        Ok(Tables {
            vips,
            ring,
            backends,
            // The device map is not pinned: interface indexes are facts of
            // this boot, written afresh on every start.
            ports: Vec::new(),
            settings,
            // Nor are the guard's maps: they hold only what the config
            // says, and the per-source buckets may start afresh.
            guard: super::tables::GuardTables::default(),
        })
    }
}

/// Whether `tables` fit in maps of capacities `caps`.
fn fits(tables: &Tables, caps: Sizes) -> bool {
    let max_id = tables
        .backends
        .iter()
        .map(|(id, _)| u64::from(*id) + 1)
        .max()
        .unwrap_or(0);
    tables.vips.len() as u64 <= u64::from(caps.vips)
        && tables.ring.len() as u64 <= u64::from(caps.ring)
        && max_id <= u64::from(caps.backends)
}

fn zeroed_settings() -> Settings {
    Settings {
        forwarding: 0,
        mtu: 0,
        ipip_src4: [0; 4],
        ipip_src6: [0; 16],
    }
}

/// A map name of this project's style: capitals, digits and `_`, ending in
/// a layout version `_V<n>`.
fn looks_like_ours(name: &str) -> bool {
    name.rsplit_once("_V").is_some_and(|(stem, v)| {
        !stem.is_empty()
            && !v.is_empty()
            && v.bytes().all(|b| b.is_ascii_digit())
            && stem
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    })
}

/// Whether `file` is the directory at `path`.
fn same_file(file: &fs::File, path: &Path) -> bool {
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Whether `path`, or the nearest ancestor that exists, is on a BPF
/// filesystem.
fn on_bpf_fs(path: &Path) -> bool {
    let mut p = path;
    loop {
        if p.exists() {
            return statfs_type(p) == Some(BPF_FS_MAGIC);
        }
        match p.parent() {
            Some(parent) => p = parent,
            None => return false,
        }
    }
}

fn statfs_type(path: &Path) -> Option<u64> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `c` is a valid C string and `st` is large enough for the
    // kernel's answer; it is read only when the call succeeded.
    let rc = unsafe { libc::statfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    #[allow(
        clippy::cast_sign_loss,
        clippy::unnecessary_cast,
        reason = "`f_type`'s type differs by architecture (signed on x86_64, unsigned \
                  elsewhere), so which lint fires does too; magic numbers are compared as bits"
    )]
    // SAFETY: statfs returned 0, so it filled `st`.
    Some(unsafe { st.assume_init() }.f_type as u64)
}

/// Mounts a BPF filesystem on `at`.
pub fn mount_bpf_fs(at: &Path) -> io::Result<()> {
    let target = std::ffi::CString::new(at.as_os_str().as_bytes())?;
    let kind = c"bpf";
    // SAFETY: every pointer is a valid C string or null, as mount(2) wants.
    let rc = unsafe {
        libc::mount(
            kind.as_ptr(),
            target.as_ptr(),
            kind.as_ptr(),
            0,
            c"mode=0700".as_ptr().cast(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::looks_like_ours;

    #[test]
    fn only_versioned_map_names_count_as_ours() {
        for ours in ["FLOWS_V1", "STATS_V2", "BACKENDS_V12", "A1_B_V3"] {
            assert!(looks_like_ours(ours), "{ours}");
        }
        for other in ["flows_v1", "FLOWS", "FLOWS_V", "_V1", "FLOWS_V1x", "my-map"] {
            assert!(!looks_like_ours(other), "{other}");
        }
    }
}
