//! Host facts from procfs: the kernel release, whether a BPF filesystem is
//! mounted, and the usable routes (of which
//! [`default_route_interfaces`](crate::default_route_interfaces) picks the
//! interfaces that carry a default route).
//!
//! Like [`sysfs`](crate::sysfs), this layer reads files only, in safe code,
//! and takes the filesystem root as an argument (`/` live, a fixture
//! directory in tests). The routing tables are read from
//! `/proc/net/route` and `/proc/net/ipv6_route` rather than rtnetlink so the
//! choice of NIC can be tested against fixture trees.

#![forbid(unsafe_code)]

mod route;

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

pub use route::routes;

use crate::model::{KernelVersion, Known};

/// Why a kernel release string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KernelReleaseError {
    /// The release is empty.
    #[error("empty kernel release")]
    Empty,
    /// The release does not start with `MAJOR.MINOR`.
    #[error("kernel release {0:?} does not start with MAJOR.MINOR")]
    NoVersion(String),
    /// A version number does not fit in 32 bits.
    #[error("kernel release {0:?} has a version number out of range")]
    OutOfRange(String),
}

/// Parses a release such as `6.18.0-1-amd64` or `5.14.0-503.14.1.el9_5.x86_64`
/// (a missing patch level reads as 0: `6.8-rc1` is 6.8.0).
pub fn parse_kernel_release(s: &str) -> Result<KernelVersion, KernelReleaseError> {
    let release = s.trim();
    if release.is_empty() {
        return Err(KernelReleaseError::Empty);
    }
    let end = release.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(release.len());
    let mut parts = release[..end].split('.');
    let mut number = |required: bool| -> Result<u32, KernelReleaseError> {
        match parts.next() {
            Some(p) if !p.is_empty() => p.parse().map_err(|_| KernelReleaseError::OutOfRange(release.to_owned())),
            None if !required => Ok(0),
            _ => Err(KernelReleaseError::NoVersion(release.to_owned())),
        }
    };
    let version = (number(true)?, number(true)?, number(false)?);
    Ok(KernelVersion { release: release.to_owned(), version })
}

/// The running kernel's release, from `<root>/proc/sys/kernel/osrelease`.
pub fn kernel_version(root: &Path) -> Known<KernelVersion> {
    let path = root.join("proc/sys/kernel/osrelease");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => return Known::Unknown(format!("procfs sys/kernel/osrelease: {e}")),
    };
    parse_kernel_release(&text).map_err(|e| format!("procfs sys/kernel/osrelease: {e}")).into()
}

/// Whether a BPF filesystem (fstype `bpf`) is mounted, from `<root>/proc/self/mounts`.
pub fn bpffs_mounted(root: &Path) -> Known<bool> {
    let why = |e: &dyn std::fmt::Display| Known::Unknown(format!("procfs self/mounts: {e}"));
    let file = match File::open(root.join("proc/self/mounts")) {
        Ok(f) => f,
        Err(e) => return why(&e),
    };
    match bpf_in_mounts(BufReader::new(file)) {
        Ok(found) => Known::Known(found),
        Err(e) => why(&e),
    }
}

/// Scans mount entries (`SPEC MOUNTPOINT FSTYPE OPTIONS FREQ PASSNO`, fstab(5))
/// for a `bpf` filesystem; a table without one valid entry is an error.
fn bpf_in_mounts(reader: impl BufRead) -> io::Result<bool> {
    let mut entries = 0usize;
    for line in reader.lines() {
        let line = line?;
        let mut fields = line.split_whitespace();
        let (Some(_spec), Some(_dir), Some(fstype)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if fstype == "bpf" {
            return Ok(true);
        }
        entries += 1;
    }
    if entries == 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "no mount entries"));
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(s: &str) -> Result<(u32, u32, u32), KernelReleaseError> {
        parse_kernel_release(s).map(|k| k.version)
    }

    #[test]
    fn kernel_releases() {
        assert_eq!(release("6.18.0-1-amd64\n"), Ok((6, 18, 0)));
        assert_eq!(release("5.14.0-503.14.1.el9_5.x86_64"), Ok((5, 14, 0)));
        assert_eq!(release("6.8.0-49-generic"), Ok((6, 8, 0)));
        assert_eq!(release("6.8-rc1"), Ok((6, 8, 0)));
        assert_eq!(release("4.19.0+"), Ok((4, 19, 0)));
        assert_eq!(release("2.6.32.71"), Ok((2, 6, 32)));
        let k = parse_kernel_release(" 6.6.58-0-lts\n").unwrap();
        assert_eq!(k.release, "6.6.58-0-lts");
    }

    #[test]
    fn malformed_kernel_releases() {
        assert_eq!(release(""), Err(KernelReleaseError::Empty));
        assert_eq!(release(" \n"), Err(KernelReleaseError::Empty));
        assert_eq!(release("linux"), Err(KernelReleaseError::NoVersion("linux".into())));
        assert_eq!(release("6"), Err(KernelReleaseError::NoVersion("6".into())));
        assert_eq!(release("6-rc1"), Err(KernelReleaseError::NoVersion("6-rc1".into())));
        assert_eq!(release(".6.1"), Err(KernelReleaseError::NoVersion(".6.1".into())));
        assert_eq!(release("6..1"), Err(KernelReleaseError::NoVersion("6..1".into())));
        assert_eq!(release("6.99999999999"), Err(KernelReleaseError::OutOfRange("6.99999999999".into())));
        assert_eq!(
            KernelReleaseError::NoVersion("linux".into()).to_string(),
            "kernel release \"linux\" does not start with MAJOR.MINOR"
        );
    }

    #[test]
    fn mounts() {
        let with = "sysfs /sys sysfs rw 0 0\nbpf /sys/fs/bpf bpf rw,mode=700 0 0\n";
        assert!(bpf_in_mounts(with.as_bytes()).unwrap());
        // The fstype decides, not the mount point or the source.
        let without = "sysfs /sys sysfs rw 0 0\nbpf /sys/fs/bpf tmpfs rw 0 0\nnone /bpf\\040fs ext4 rw 0 0\n";
        assert!(!bpf_in_mounts(without.as_bytes()).unwrap());
        // Short lines are skipped; a table with no entry at all is an error.
        assert!(!bpf_in_mounts("garbage\nproc /proc proc rw 0 0\n".as_bytes()).unwrap());
        assert_eq!(bpf_in_mounts("".as_bytes()).unwrap_err().to_string(), "no mount entries");
        assert_eq!(bpf_in_mounts("x y\n\n".as_bytes()).unwrap_err().to_string(), "no mount entries");
        assert_eq!(bpf_in_mounts(&[0xff, 0xfe, b'\n'][..]).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn missing_files_are_unknown() {
        let t = tempfile::tempdir().unwrap();
        let Known::Unknown(why) = kernel_version(t.path()) else { panic!("kernel version without a file") };
        assert!(why.starts_with("procfs sys/kernel/osrelease: No such file or directory"), "{why}");
        let Known::Unknown(why) = bpffs_mounted(t.path()) else { panic!("bpffs without a file") };
        assert!(why.starts_with("procfs self/mounts: No such file or directory"), "{why}");
        std::fs::create_dir_all(t.path().join("proc/sys/kernel")).unwrap();
        std::fs::write(t.path().join("proc/sys/kernel/osrelease"), "garbage\n").unwrap();
        assert_eq!(
            kernel_version(t.path()),
            Known::Unknown(
                "procfs sys/kernel/osrelease: kernel release \"garbage\" does not start with MAJOR.MINOR".into()
            )
        );
    }
}
