//! Real disks for tests: ext4 filesystems on loop devices, and the real faults we can cause on
//! them (the shutdown ioctl, fsfreeze, a disk pulled and put back, bytes changed below the
//! filesystem). Needs root.

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

/// A tmpfs of at most `size` (as `mount -o size=` reads it) mounted at a test's folder, so
/// that what the test writes takes memory, not the machine's disk, and so that the test can
/// really fill it; unmounted when dropped, even when the test fails.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        sh(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tdtest",
                at.to_str().unwrap(),
            ],
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            Command::new("umount")
                .args(args)
                .arg(&self.0)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        // Lazily if something (a node being killed) still holds a file of it open.
        let _ = quiet(&[]) || quiet(&["-l"]);
    }
}

/// Loop-device filesystems, torn down in order (unmount, detach) even when the test fails.
#[derive(Default)]
pub struct LoopDisks {
    mounted: Vec<(PathBuf, String)>,
    /// Loop devices replaced by [`LoopDisks::reattach`], detached last.
    stale: Vec<String>,
}

impl LoopDisks {
    pub fn add(&mut self, dir: &Path, name: &str) -> PathBuf {
        self.add_sized(dir, name, 64 << 20)
    }

    /// A loop device of `bytes` with ext4 on it, mounted at `dir/name`.
    pub fn add_sized(&mut self, dir: &Path, name: &str, bytes: u64) -> PathBuf {
        self.add_formatted(dir, name, bytes, &[])
    }

    /// [`LoopDisks::add_sized`] with more options for `mkfs.ext4` (block size, inode size and
    /// count, features).
    pub fn add_formatted(&mut self, dir: &Path, name: &str, bytes: u64, mkfs: &[&str]) -> PathBuf {
        let image = dir.join(format!("{name}.img"));
        let file = std::fs::File::create(&image).unwrap();
        file.set_len(bytes).unwrap();
        let dev = sh("losetup", &["-f", "--show", image.to_str().unwrap()]);
        let mnt = dir.join(name);
        std::fs::create_dir(&mnt).unwrap();
        let mut args = vec!["-q"];
        args.extend_from_slice(mkfs);
        args.push(&dev);
        sh("mkfs.ext4", &args);
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

    /// The disk at `mnt` pulled and put back: its filesystem unmounted (lazily, as a node may
    /// still hold files of it open; a shut-down filesystem stays shut down while they are),
    /// and its backing file attached to a new loop device, as the kernel sees a disk put back,
    /// and mounted there again, its journal replayed. Returns the new device.
    pub fn reattach(&mut self, mnt: &Path) -> String {
        let at = self
            .mounted
            .iter()
            .position(|(m, _)| m == mnt)
            .expect("a mounted disk");
        let old = self.mounted[at].1.clone();
        let image = sh("losetup", &["-n", "-O", "BACK-FILE", &old]);
        sh("umount", &["-l", mnt.to_str().unwrap()]);
        self.stale.push(old);
        let dev = sh("losetup", &["-f", "--show", &image]);
        sh("mount", &[&dev, mnt.to_str().unwrap()]);
        self.mounted[at].1 = dev.clone();
        dev
    }

    /// The disk at `mnt` swapped for a new blank one: the old filesystem unmounted (lazily)
    /// and its device kept until the end, a new backing file with a new ext4 filesystem
    /// mounted in its place. Returns the new device.
    pub fn swap_blank(&mut self, mnt: &Path) -> String {
        let at = self
            .mounted
            .iter()
            .position(|(m, _)| m == mnt)
            .expect("a mounted disk");
        let old = self.mounted[at].1.clone();
        let image = PathBuf::from(sh("losetup", &["-n", "-O", "BACK-FILE", &old]));
        sh("umount", &["-l", mnt.to_str().unwrap()]);
        self.stale.push(old);
        let new = image.with_extension("new.img");
        let file = std::fs::File::create(&new).unwrap();
        file.set_len(std::fs::metadata(&image).unwrap().len())
            .unwrap();
        let dev = sh("losetup", &["-f", "--show", new.to_str().unwrap()]);
        sh("mkfs.ext4", &["-q", &dev]);
        sh("mount", &[&dev, mnt.to_str().unwrap()]);
        self.mounted[at].1 = dev.clone();
        dev
    }

    /// What holds files open under `mnt`: "PID (COMMAND): PATH" for each.
    pub fn open_under(mnt: &Path) -> Vec<String> {
        let mut held = Vec::new();
        for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                if let Ok(target) = std::fs::read_link(fd.path()) {
                    if target.starts_with(mnt) {
                        let comm =
                            std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
                        held.push(format!(
                            "{} ({}): {}",
                            p.file_name().to_string_lossy(),
                            comm.trim(),
                            target.display()
                        ));
                    }
                }
            }
        }
        held
    }
}

/// The byte of `dev`'s filesystem (ext4) where byte `offset` of file `path` (in the
/// filesystem, from its root) is kept, from the file's block list (`debugfs -R "blocks
/// PATH"`) and the block size (`dumpe2fs -h`). The filesystem is synced first, so the
/// on-disk metadata debugfs reads is current.
pub fn physical_offset(dev: &str, path: &str, offset: u64) -> u64 {
    sh("sync", &[]);
    let block_size: u64 = sh("dumpe2fs", &["-h", dev])
        .lines()
        .find_map(|l| l.strip_prefix("Block size:"))
        .expect("a block size from dumpe2fs")
        .trim()
        .parse()
        .unwrap();
    let blocks: Vec<u64> = sh("debugfs", &["-R", &format!("blocks {path}"), dev])
        .split_whitespace()
        .map(|b| b.parse().unwrap())
        .collect();
    let block = blocks[(offset / block_size) as usize];
    block * block_size + offset % block_size
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
        for dev in self.stale.drain(..) {
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
