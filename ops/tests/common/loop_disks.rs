//! Real disks for tests: ext4 filesystems on loop devices, and the real faults we can cause on
//! them (the shutdown ioctl, fsfreeze). Needs root.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Loop-device filesystems, torn down in order (unmount, detach) even when the test fails.
#[derive(Default)]
pub struct LoopDisks {
    mounted: Vec<(PathBuf, String)>,
}

impl LoopDisks {
    pub fn add(&mut self, dir: &Path, name: &str) -> PathBuf {
        self.add_sized(dir, name, 64 << 20)
    }

    /// A loop device of `bytes` with ext4 on it, mounted at `dir/name`.
    pub fn add_sized(&mut self, dir: &Path, name: &str, bytes: u64) -> PathBuf {
        let image = dir.join(format!("{name}.img"));
        let file = std::fs::File::create(&image).unwrap();
        file.set_len(bytes).unwrap();
        let dev = sh("losetup", &["-f", "--show", image.to_str().unwrap()]);
        let mnt = dir.join(name);
        std::fs::create_dir(&mnt).unwrap();
        sh("mkfs.ext4", &["-q", &dev]);
        sh("mount", &[&dev, mnt.to_str().unwrap()]);
        self.mounted.push((mnt.clone(), dev));
        mnt
    }

    /// The loop device mounted at `mnt`.
    pub fn device(&self, mnt: &Path) -> &str {
        &self
            .mounted
            .iter()
            .find(|(m, _)| m == mnt)
            .expect("a mounted disk")
            .1
    }
}

impl Drop for LoopDisks {
    fn drop(&mut self) {
        for (mnt, dev) in self.mounted.drain(..).rev() {
            // A frozen filesystem cannot be unmounted; thaw it first (an error if not frozen).
            let _ = Command::new("fsfreeze")
                .arg("-u")
                .arg(&mnt)
                .stderr(Stdio::null())
                .status();
            let _ = Command::new("umount").arg(&mnt).status();
            let _ = Command::new("losetup").args(["-d", &dev]).status();
        }
    }
}

/// Thaws a frozen filesystem when dropped. Declared after the node, so it runs first: a
/// process with a write blocked on a frozen filesystem cannot exit until it is thawed.
pub struct Thaw(pub PathBuf);

impl Drop for Thaw {
    fn drop(&mut self) {
        let _ = Command::new("fsfreeze").arg("-u").arg(&self.0).status();
    }
}

/// The filesystem shutdown ioctl (EXT4_IOC_SHUTDOWN, the same number as XFS's), without
/// flushing the log: the disk is gone as if its cable were pulled.
pub fn shut_down(mnt: &Path) {
    const FS_IOC_SHUTDOWN: libc::c_ulong = 0x8004_587D;
    const NOLOGFLUSH: u32 = 2;
    let dir = std::fs::File::open(mnt).unwrap();
    let flags = NOLOGFLUSH;
    let rc = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&dir),
            FS_IOC_SHUTDOWN,
            &flags,
        )
    };
    assert_eq!(rc, 0, "shutdown ioctl: {}", std::io::Error::last_os_error());
}
