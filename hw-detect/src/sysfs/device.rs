//! The device behind a network interface: the `device` link of
//! `/sys/class/net/IFACE` and the directories above it in `/sys/devices`,
//! which carry the driver, the bus address and the NUMA placement.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::cpulist::parse_cpulist;
use super::{IntoKnown, read_attr};
use crate::model::{Driver, Known};

/// Buses whose device names are hardware addresses worth reporting as
/// `bus_info` (PCI `0000:3b:00.0`, USB `1-2:1.0`, SDIO `mmc1:0001:1`,
/// platform `fd580000.ethernet`). Intermediate buses such as `virtio` are
/// skipped, so virtio-net reports its PCI function as ethtool does.
const HARDWARE_BUSES: [&str; 4] = ["pci", "usb", "sdio", "platform"];

/// Where the interface's device is, as far as sysfs says.
#[derive(Debug)]
pub(super) enum Device {
    /// No `device` link: a virtual interface (veth, bridge, tun, loopback...).
    Virtual,
    /// The canonical device directory, inside `<root>/sys/devices`.
    At(PathBuf),
    /// The link exists but cannot be followed; the text says why.
    Broken(String),
}

/// Follows `iface_dir/device`, refusing targets outside `<root>/sys/devices`.
pub(super) fn resolve(root: &Path, iface_dir: &Path) -> Device {
    let link = iface_dir.join("device");
    match fs::symlink_metadata(&link) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Device::Virtual,
        Err(e) => return Device::Broken(format!("cannot stat device link: {e}")),
        Ok(_) => {}
    }
    let devices = devices_root(root);
    match fs::canonicalize(&link) {
        Ok(dev) if dev.starts_with(&devices) && dev != devices => Device::At(dev),
        Ok(dev) => Device::Broken(format!("device link leads outside sys/devices, to {}", dev.display())),
        Err(e) => Device::Broken(format!("cannot follow device link: {e}")),
    }
}

fn devices_root(root: &Path) -> PathBuf {
    let devices = root.join("sys/devices");
    fs::canonicalize(&devices).unwrap_or(devices)
}

/// `dev` and its parents, up to (not including) `<root>/sys/devices`.
fn lineage<'a>(root: &Path, dev: &'a Path) -> impl Iterator<Item = &'a Path> {
    let devices = devices_root(root);
    dev.ancestors().take_while(move |d| d.starts_with(&devices) && *d != devices)
}

/// The file name of a symlink's target (`driver` → `e1000e`).
fn link_name(link: &Path) -> io::Result<String> {
    let target = fs::read_link(link)?;
    target
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("odd link target {}", target.display())))
}

/// The driver bound to the device, its module's version and the device's bus address.
pub(super) fn driver(root: &Path, dev: &Path) -> Result<Driver, String> {
    let name = link_name(&dev.join("driver")).map_err(|e| format!("no driver bound (device/driver: {e})"))?;
    // Module names use '_' where driver names may use '-' (virtio-pci is module virtio_pci).
    let module = link_name(&dev.join("driver/module")).unwrap_or_else(|_| name.replace('-', "_"));
    // In-tree drivers mostly have no MODULE_VERSION, and then no `version` file.
    let version = match read_attr(&root.join("sys/module").join(&module).join("version")) {
        Ok(v) if !v.is_empty() => Some(v),
        Ok(_) => None,
        Err(e) => {
            if e.kind() != io::ErrorKind::NotFound {
                log::debug!("sys/module/{module}/version: {e}");
            }
            None
        }
    };
    Ok(Driver { name, version, firmware: None, bus_info: bus_address(root, dev) })
}

/// The sysfs name of the nearest device, from `dev` upwards, that sits on a hardware bus.
pub(super) fn bus_address(root: &Path, dev: &Path) -> Option<String> {
    lineage(root, dev).find_map(|d| {
        let bus = link_name(&d.join("subsystem")).ok()?;
        if HARDWARE_BUSES.contains(&bus.as_str()) {
            d.file_name().and_then(|n| n.to_str()).map(str::to_owned)
        } else {
            None
        }
    })
}

/// The nearest device directory, from `dev` upwards, that has `file`: a
/// virtio or USB device has no NUMA files of its own, its PCI parent does.
fn nearest_with(root: &Path, dev: &Path, file: &str) -> Option<PathBuf> {
    lineage(root, dev).map(|d| d.join(file)).find(|p| p.is_file())
}

/// `numa_node` of the device (or its nearest parent that has one).
pub(super) fn numa_node(root: &Path, dev: &Path) -> Result<u32, String> {
    let path = nearest_with(root, dev, "numa_node")
        .ok_or_else(|| "neither the device nor its parents have a numa_node file".to_owned())?;
    let text = read_attr(&path).map_err(|e| e.to_string())?;
    parse_numa_node(&text)
}

/// Parses a `numa_node` file: a node number, or -1 for "no affinity".
pub(super) fn parse_numa_node(text: &str) -> Result<u32, String> {
    match text.trim() {
        "-1" => Err("no NUMA affinity reported (numa_node = -1)".to_owned()),
        t => t.parse::<u32>().map_err(|_| format!("unexpected value {t:?}")),
    }
}

/// `local_cpulist` of the device (or its nearest parent that has one).
pub(super) fn local_cpus(root: &Path, dev: &Path) -> Result<Vec<usize>, String> {
    let path = nearest_with(root, dev, "local_cpulist")
        .ok_or_else(|| "neither the device nor its parents have a local_cpulist file".to_owned())?;
    let text = read_attr(&path).map_err(|e| e.to_string())?;
    parse_cpulist(&text).map_err(|e| e.to_string())
}

/// Applies `f` to the resolved device, or explains why there is none.
pub(super) fn with_device<T>(
    device: &Device,
    field: &str,
    iface: &str,
    virtual_why: &str,
    f: impl FnOnce(&Path) -> Result<T, String>,
) -> Known<T> {
    match device {
        Device::At(dev) => f(dev),
        Device::Virtual => Err(virtual_why.to_owned()),
        Device::Broken(why) => Err(why.clone()),
    }
    .into_known(field, iface)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(t.path().join("sys/devices/pci0000:00/0000:00:02.0/net/eth9")).unwrap();
        fs::create_dir_all(t.path().join("sys/bus/pci/drivers/outoftree")).unwrap();
        symlink("../../../0000:00:02.0", t.path().join("sys/devices/pci0000:00/0000:00:02.0/net/eth9/device")).unwrap();
        symlink("../../../bus/pci", t.path().join("sys/devices/pci0000:00/0000:00:02.0/subsystem")).unwrap();
        t
    }

    fn iface(t: &tempfile::TempDir) -> PathBuf {
        t.path().join("sys/devices/pci0000:00/0000:00:02.0/net/eth9")
    }

    #[test]
    fn numa_node_values() {
        assert_eq!(parse_numa_node("1\n"), Ok(1));
        assert_eq!(parse_numa_node("-1\n"), Err("no NUMA affinity reported (numa_node = -1)".to_owned()));
        assert_eq!(parse_numa_node("node1"), Err("unexpected value \"node1\"".to_owned()));
        assert_eq!(parse_numa_node("-2"), Err("unexpected value \"-2\"".to_owned()));
        assert_eq!(parse_numa_node(""), Err("unexpected value \"\"".to_owned()));
    }

    #[test]
    fn module_version_is_read_when_present() {
        let t = tree();
        let dev = t.path().join("sys/devices/pci0000:00/0000:00:02.0");
        symlink("../../../bus/pci/drivers/outoftree", dev.join("driver")).unwrap();
        fs::create_dir_all(t.path().join("sys/module/outoftree")).unwrap();
        fs::write(t.path().join("sys/module/outoftree/version"), "3.8.7-NAPI\n").unwrap();
        let Device::At(dev) = resolve(t.path(), &iface(&t)) else { panic!("device not resolved") };
        let d = driver(t.path(), &dev).expect("driver");
        assert_eq!(d.name, "outoftree");
        assert_eq!(d.version.as_deref(), Some("3.8.7-NAPI"));
        assert_eq!(d.bus_info.as_deref(), Some("0000:00:02.0"));
        assert_eq!(d.firmware, None);
    }

    #[test]
    fn missing_driver_and_numa_files_are_reasons() {
        let t = tree();
        let Device::At(dev) = resolve(t.path(), &iface(&t)) else { panic!("device not resolved") };
        let err = driver(t.path(), &dev).unwrap_err();
        assert!(err.starts_with("no driver bound (device/driver: "), "{err}");
        let err = numa_node(t.path(), &dev).unwrap_err();
        assert_eq!(err, "neither the device nor its parents have a numa_node file");
        let err = local_cpus(t.path(), &dev).unwrap_err();
        assert_eq!(err, "neither the device nor its parents have a local_cpulist file");
    }

    #[test]
    fn malformed_local_cpulist_is_a_reason() {
        let t = tree();
        let dev = t.path().join("sys/devices/pci0000:00/0000:00:02.0");
        fs::write(dev.join("local_cpulist"), "3-1\n").unwrap();
        let Device::At(dev) = resolve(t.path(), &iface(&t)) else { panic!("device not resolved") };
        assert_eq!(local_cpus(t.path(), &dev), Err("CPU range 3-1 runs backwards".to_owned()));
        fs::write(dev.join("local_cpulist"), "\n").unwrap();
        assert_eq!(local_cpus(t.path(), &dev), Err("empty CPU list".to_owned()));
    }

    #[test]
    fn dangling_and_escaping_links_are_broken() {
        let t = tree();
        let dangling = t.path().join("sys/devices/virtual/net/x0");
        fs::create_dir_all(&dangling).unwrap();
        symlink("../../../nowhere", dangling.join("device")).unwrap();
        assert!(
            matches!(resolve(t.path(), &dangling), Device::Broken(w) if w.starts_with("cannot follow device link"))
        );

        let outside = tempfile::tempdir().unwrap();
        let escaping = t.path().join("sys/devices/virtual/net/x1");
        fs::create_dir_all(&escaping).unwrap();
        symlink(outside.path(), escaping.join("device")).unwrap();
        assert!(
            matches!(resolve(t.path(), &escaping), Device::Broken(w) if w.starts_with("device link leads outside"))
        );
    }

    #[test]
    fn no_device_link_is_virtual() {
        let t = tree();
        let v = t.path().join("sys/devices/virtual/net/v0");
        fs::create_dir_all(&v).unwrap();
        assert!(matches!(resolve(t.path(), &v), Device::Virtual));
        let k: Known<u32> =
            with_device(&Device::Virtual, "device/numa_node", "v0", "virtual device: no NUMA node", |_| Ok(0));
        assert_eq!(k, Known::Unknown("sysfs device/numa_node on v0: virtual device: no NUMA node".into()));
    }
}
