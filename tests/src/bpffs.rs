//! A BPF filesystem of a test's own, mounted in the root mount namespace so
//! that every process the test starts (`ip netns exec` gives each a mount
//! namespace that inherits this mount) sees the same pinned maps, and a
//! restarted daemon finds what the first one pinned. Unmounted on drop.
#![expect(unsafe_code, reason = "umount2(2) has no std wrapper")]

use std::{ffi::CString, os::unix::ffi::OsStrExt as _, path::Path};

/// A mounted BPF filesystem on a temporary directory.
pub struct BpfFs {
    dir: tempfile::TempDir,
}

impl BpfFs {
    /// Mounts a fresh BPF filesystem.
    #[must_use]
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("balancer-bpffs-")
            .tempdir()
            .expect("tempdir");
        let status = std::process::Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -t bpf failed: {status}");
        Self { dir }
    }

    /// Where it is mounted.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for BpfFs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for BpfFs {
    fn drop(&mut self) {
        let target = CString::new(self.dir.path().as_os_str().as_bytes()).expect("path");
        // SAFETY: a valid C string. A lazy unmount, so the directory can be
        // removed even while a crashed daemon still holds a map.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}
