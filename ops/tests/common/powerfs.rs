//! A folder that can lose power: `fixtures/powerfs.py` (Debian's python3-fusepy) mounted over
//! it, keeping every write not yet fsynced in memory and every change to a folder's names not
//! yet made durable by an fsync of that folder undoable. [`PowerFs::cut`] loses them all, as a
//! power cut would; what is left is what the program made durable. The rules are at the top of
//! the script. Needs root (FUSE).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Far beyond any command of the layer (a cut moves a few hundred names); only a hang, or a
/// layer that died, reaches it.
const DEADLINE: Duration = Duration::from_secs(60);

/// One powerfs mount. Dropped: unmounted (which is a power cut too), its process ended.
pub struct PowerFs {
    fuse: Child,
    mnt: PathBuf,
    control: PathBuf,
    stderr: PathBuf,
}

impl PowerFs {
    /// Mounts powerfs over `mnt` (an existing folder, empty or not: what is in it is hidden
    /// while mounted), its files kept in `base/backing`, its control FIFO and log in `base`.
    pub fn mount(mnt: &Path, base: &Path) -> PowerFs {
        let backing = base.join("backing");
        std::fs::create_dir_all(&backing).unwrap();
        std::fs::create_dir_all(mnt).unwrap();
        let control = base.join("control");
        let stderr = base.join("powerfs.stderr");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/powerfs.py");
        let fuse = Command::new("/usr/bin/python3")
            .arg(&script)
            .args([&backing, mnt, &control])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("/usr/bin/python3");
        let mut fs = PowerFs {
            fuse,
            mnt: mnt.to_path_buf(),
            control,
            stderr,
        };
        let started = Instant::now();
        while !mounted(mnt) {
            fs.alive("mounting");
            assert!(
                started.elapsed() < DEADLINE,
                "powerfs not mounted on {mnt:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        fs
    }

    pub fn path(&self) -> &Path {
        &self.mnt
    }

    /// Cuts the power: every write and change of names not made durable is gone. The
    /// processes writing here must be dead already.
    pub fn cut(&mut self) {
        self.command("lose-power");
    }

    /// Makes everything durable, as a while of the kernel's writeback would.
    pub fn sync(&mut self) {
        self.command("sync");
    }

    /// Pulls the disk out: every call on it fails with EIO until [`PowerFs::plug`].
    pub fn pull(&mut self) {
        self.command("pull");
    }

    /// Puts a pulled disk back, as it was left when its power went with it.
    pub fn plug(&mut self) {
        self.command("plug");
    }

    /// What the layer said on standard error.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn alive(&mut self, doing: &str) {
        if let Some(status) = self.fuse.try_wait().unwrap() {
            panic!(
                "powerfs on {:?} ended ({status}) while {doing} (Debian's python3-fusepy \
                 installed?): {}",
                self.mnt,
                self.stderr()
            );
        }
    }

    /// How many commands the layer has done (the count in CONTROL.done), and its last answer.
    fn done(&self) -> (u64, String) {
        let text = std::fs::read_to_string(self.control.with_extension("done")).unwrap_or_default();
        let count = text
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        (count, text.trim().to_string())
    }

    /// Sends `command` down the control FIFO and waits for the layer to say it did it.
    fn command(&mut self, command: &str) {
        let (before, _) = self.done();
        let asked = Instant::now();
        // Opened without blocking: while the layer has no reader on it (between two commands,
        // or dead) the open fails with ENXIO, and is tried again.
        let mut fifo = loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&self.control)
            {
                Ok(f) => break f,
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {}
                Err(e) => panic!("powerfs control {:?}: {e}", self.control),
            }
            self.alive(command);
            assert!(asked.elapsed() < DEADLINE, "powerfs never read {command}");
            std::thread::sleep(Duration::from_millis(10));
        };
        fifo.write_all(format!("{command}\n").as_bytes()).unwrap();
        drop(fifo);
        loop {
            let (count, answer) = self.done();
            if count > before {
                assert!(
                    answer.ends_with(&format!("{command} ok")),
                    "powerfs on {:?}: {answer}\n{}",
                    self.mnt,
                    self.stderr()
                );
                return;
            }
            self.alive(command);
            assert!(asked.elapsed() < DEADLINE, "powerfs never did {command}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn mounted(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let p = path.to_str().unwrap();
    mounts.lines().any(|l| l.split(' ').nth(1) == Some(p))
}

impl Drop for PowerFs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.mnt)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (a process of a failed test holds a file) or the layer is dead.
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
        // Unmounted, it ends by itself once its cut is done; wait for that a little, then end
        // it.
        let asked = Instant::now();
        while self.fuse.try_wait().ok().flatten().is_none() && asked.elapsed() < DEADLINE / 6 {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.fuse.kill();
        let _ = self.fuse.wait();
    }
}
