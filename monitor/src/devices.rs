//! Which kernel device holds each configured disk, found through `/sys`: the block device and
//! its whole disk (`sda1` on `sda`), and the SCSI address, ATA port, NVMe controller and host
//! adapter above it, so that a kernel line naming any of them is mapped to the disk (or to the
//! bus the disks share).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use cluster::DiskConfig;
use serde::Serialize;

/// A configured disk and the kernel's names for what holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DiskDevice {
    pub disk: String,
    /// The block device of its filesystem (`sda1`, `loop0`, `nvme0n1p2`).
    pub block: Option<String>,
    /// Its major and minor numbers.
    pub dev: Option<(u32, u32)>,
    /// The whole disk (`sda`, `loop0`, `nvme0n1`).
    pub whole: Option<String>,
    /// SCSI address `host:channel:target:lun`.
    pub scsi: Option<String>,
    /// ATA port (`ata3`).
    pub ata: Option<String>,
    /// NVMe controller (`nvme0`).
    pub nvme: Option<String>,
    /// SCSI host adapter (`host2`).
    pub host: Option<String>,
    /// Why nothing was found, for the detector's status.
    pub note: Option<String>,
}

impl DiskDevice {
    /// `/dev/WHOLE`, for smartctl.
    pub fn dev_path(&self) -> Option<PathBuf> {
        self.whole.as_ref().map(|w| Path::new("/dev").join(w))
    }
}

/// Finds the devices of `disks` under the sysfs root `sys` (normally `/sys`).
pub fn discover(disks: &[DiskConfig], sys: &Path) -> Vec<DiskDevice> {
    disks.iter().map(|d| discover_one(d, sys)).collect()
}

fn discover_one(config: &DiskConfig, sys: &Path) -> DiskDevice {
    let mut dev = DiskDevice {
        disk: config.id.clone(),
        ..DiskDevice::default()
    };
    let meta = match std::fs::metadata(&config.path) {
        Ok(m) => m,
        Err(e) => {
            dev.note = Some(format!("{}: {e}", config.path.display()));
            return dev;
        }
    };
    let (major, minor) = (libc::major(meta.dev()), libc::minor(meta.dev()));
    let link = sys.join(format!("dev/block/{major}:{minor}"));
    let Ok(real) = std::fs::canonicalize(&link) else {
        dev.note = Some(format!(
            "its filesystem (device {major}:{minor}) is not on a block device"
        ));
        return dev;
    };
    dev.dev = Some((major, minor));
    dev.block = file_name(&real);
    dev.whole = if real.join("partition").exists() {
        real.parent().and_then(file_name)
    } else {
        dev.block.clone()
    };
    for part in real.components().filter_map(|c| c.as_os_str().to_str()) {
        if is_ata_port(part) {
            dev.ata = Some(part.to_string());
        } else if part.starts_with("host") && part[4..].parse::<u32>().is_ok() {
            dev.host = Some(part.to_string());
        } else if is_scsi_address(part) {
            dev.scsi = Some(part.to_string());
        } else if part.starts_with("nvme") && part[4..].parse::<u32>().is_ok() {
            dev.nvme = Some(part.to_string());
        }
    }
    dev
}

fn file_name(p: &Path) -> Option<String> {
    p.file_name().and_then(|n| n.to_str()).map(String::from)
}

fn is_ata_port(s: &str) -> bool {
    s.strip_prefix("ata")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `2:0:0:0`
pub fn is_scsi_address(s: &str) -> bool {
    let parts: Vec<_> = s.split(':').collect();
    parts.len() == 4 && parts.iter().all(|p| p.parse::<u64>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sata_partition_is_traced_to_its_port_host_and_scsi_address() {
        // A sysfs tree as on a real SATA machine, with the disk's folder on sda1.
        let sys = tempfile::tempdir().unwrap();
        let here = std::fs::metadata(sys.path()).unwrap().dev();
        let (major, minor) = (libc::major(here), libc::minor(here));
        let part = sys
            .path()
            .join("devices/pci0000:00/0000:00:17.0/ata3/host2/target2:0:0/2:0:0:0/block/sda/sda1");
        std::fs::create_dir_all(&part).unwrap();
        std::fs::write(part.join("partition"), "1\n").unwrap();
        std::fs::create_dir_all(sys.path().join("dev/block")).unwrap();
        std::os::unix::fs::symlink(&part, sys.path().join(format!("dev/block/{major}:{minor}")))
            .unwrap();
        let disk = DiskConfig {
            id: "a1".into(),
            path: sys.path().to_path_buf(),
            serial: None,
            location: Default::default(),
        };
        let d = discover_one(&disk, sys.path());
        assert_eq!(d.block.as_deref(), Some("sda1"));
        assert_eq!(d.whole.as_deref(), Some("sda"));
        assert_eq!(d.ata.as_deref(), Some("ata3"));
        assert_eq!(d.host.as_deref(), Some("host2"));
        assert_eq!(d.scsi.as_deref(), Some("2:0:0:0"));
        assert_eq!(d.dev_path(), Some(PathBuf::from("/dev/sda")));
        assert!(d.nvme.is_none());
    }

    #[test]
    fn a_folder_on_no_block_device_says_so() {
        let sys = tempfile::tempdir().unwrap();
        let disk = DiskConfig {
            id: "a1".into(),
            path: sys.path().to_path_buf(),
            serial: None,
            location: Default::default(),
        };
        let d = discover_one(&disk, sys.path());
        assert!(d.block.is_none());
        assert!(d.note.unwrap().contains("not on a block device"));
    }
}
