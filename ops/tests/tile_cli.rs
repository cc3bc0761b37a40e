//! `td tile` and `td inspect` as a user runs them: bad originals get one clear line and leave
//! nothing behind, a killed run leaves no partial file, and inspect finds damage.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn td(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_td"))
        .args(args)
        .output()
        .expect("run td")
}

fn tool(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}); the README's test command installs it")
        });
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Runs `td tile` on a bad original and checks the promise: non-zero exit, exactly one line on
/// stderr that names the file and says `expect`, and no file added to the directory.
fn assert_refused(original: &Path, extra: &[&str], expect: &str) {
    let dir = original.parent().unwrap();
    let before = listing(dir);
    let out_path = dir.join("out.tdp");
    let mut args = vec![
        "tile",
        original.to_str().unwrap(),
        "-o",
        out_path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = td(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{} was accepted", original.display());
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line expected, got:\n{stderr}"
    );
    let name = original.file_name().unwrap().to_str().unwrap();
    assert!(
        stderr.contains(name),
        "error does not name the file: {stderr}"
    );
    assert!(stderr.contains(expect), "expected '{expect}' in: {stderr}");
    assert_eq!(listing(dir), before, "files left behind by a refused run");
}

struct Originals {
    dir: tempfile::TempDir,
}

impl Originals {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("good.png");
        tool(
            "convert",
            &[
                "-seed",
                "3",
                "-size",
                "800x600",
                "plasma:fractal",
                png.to_str().unwrap(),
            ],
        );
        let d = dir.path().to_str().unwrap();
        tool(
            "convert",
            &[&format!("{d}/good.png"), &format!("{d}/good.jpg")],
        );
        tool(
            "convert",
            &[
                &format!("{d}/good.png"),
                "-compress",
                "lzw",
                &format!("{d}/good.tif"),
            ],
        );
        Originals { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A bad variant of a good original, alone in a fresh directory.
    fn variant(
        &self,
        from: &str,
        name: &str,
        change: impl FnOnce(&mut Vec<u8>),
    ) -> (tempfile::TempDir, PathBuf) {
        let mut bytes = fs::read(self.path(from)).unwrap();
        change(&mut bytes);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        fs::write(&p, bytes).unwrap();
        (dir, p)
    }
}

#[test]
fn truncated_originals_are_refused() {
    let o = Originals::new();
    for (from, expect) in [
        ("good.jpg", "truncated"),
        ("good.png", "end of file"),
        ("good.tif", "cannot decode TIFF"),
    ] {
        let (_d, p) = o.variant(from, &format!("cut-{from}"), |b| {
            b.truncate(b.len() * 6 / 10)
        });
        assert_refused(&p, &[], expect);
    }
}

#[test]
fn corrupt_originals_are_refused() {
    let o = Originals::new();
    let (_d, p) = o.variant("good.jpg", "bad.jpg", |b| {
        let dht = b.windows(2).position(|w| w == [0xFF, 0xC4]).unwrap();
        b[dht + 4..dht + 40].fill(0xFF);
    });
    assert_refused(&p, &[], "damaged");
    let (_d, p) = o.variant("good.png", "bad.png", |b| b[200..260].fill(0));
    assert_refused(&p, &[], "CRC");
    let (_d, p) = o.variant("good.tif", "bad.tif", |b| b[100..160].fill(0x13));
    assert_refused(&p, &[], "cannot decode TIFF");
}

#[test]
fn empty_unknown_and_unsupported_files_are_refused() {
    let o = Originals::new();
    let (_d, p) = o.variant("good.jpg", "empty.jpg", Vec::clear);
    assert_refused(&p, &[], "file is empty");
    let (_d, p) = o.variant("good.jpg", "notes.txt", |b| *b = b"not an image\n".to_vec());
    assert_refused(&p, &[], "not a JPEG, PNG or TIFF");
    let dir = tempfile::tempdir().unwrap();
    let gif = dir.path().join("anim.gif");
    tool(
        "convert",
        &[o.path("good.png").to_str().unwrap(), gif.to_str().unwrap()],
    );
    assert_refused(&gif, &[], "Gif originals are not supported");
}

/// A PNG whose header claims `width × height` but whose image data is a few hundred zero bytes:
/// a decompression bomb's shape, with valid chunk CRCs.
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
                                              // zlib stream with one stored block of zeros, and its Adler-32.
    let zeros = [0u8; 300];
    let mut idat = b"IDAT\x78\x01\x01".to_vec();
    idat.extend_from_slice(&(zeros.len() as u16).to_le_bytes());
    idat.extend_from_slice(&(!(zeros.len() as u16)).to_le_bytes());
    idat.extend_from_slice(&zeros);
    let adler = (zeros.len() as u32 + 1) << 16 | 1;
    idat.extend_from_slice(&adler.to_be_bytes());
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for chunk in [&ihdr[..], &idat[..], &b"IEND"[..]] {
        png.extend_from_slice(&(chunk.len() as u32 - 4).to_be_bytes());
        png.extend_from_slice(chunk);
        png.extend_from_slice(&crc32(chunk).to_be_bytes());
    }
    png
}

#[test]
fn oversized_and_zero_sized_originals_are_refused_from_their_header() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.png");
    fs::write(&bomb, png_header_only(100_000, 100_000)).unwrap();
    assert_refused(&bomb, &[], "over the limit of 4295 megapixels");
    let dir = tempfile::tempdir().unwrap();
    let small_limit = dir.path().join("big.png");
    fs::write(&small_limit, png_header_only(5_000, 5_000)).unwrap();
    assert_refused(
        &small_limit,
        &["--max-megapixels", "20"],
        "over the limit of 20 megapixels",
    );
    let dir = tempfile::tempdir().unwrap();
    let zero = dir.path().join("zero.png");
    fs::write(&zero, png_header_only(0, 10)).unwrap();
    assert_refused(&zero, &[], "zero.png");
}

/// A sequential JPEG is decoded row by row, so a memory limit far below its pixels does not
/// stop it; a progressive one must hold its coefficients whole, and over the limit it is
/// refused from its header with what it would need.
#[test]
fn whole_decode_over_the_memory_limit_is_refused() {
    let o = Originals::new();
    let (d, p) = o.variant("good.jpg", "large.jpg", |_| {});
    let out = td(&[
        "tile",
        p.to_str().unwrap(),
        "-o",
        d.path().join("large.tdp").to_str().unwrap(),
        "--max-memory",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let progressive = o.path("progressive.jpg");
    tool(
        "convert",
        &[
            o.path("good.png").to_str().unwrap(),
            "-interlace",
            "JPEG",
            progressive.to_str().unwrap(),
        ],
    );
    let (_d, p) = o.variant("progressive.jpg", "progressive.jpg", |_| {});
    assert_refused(&p, &["--max-memory", "1"], "MiB, over the limit of 1.0 MiB");
}

#[test]
fn bad_options_and_missing_files_get_clear_errors() {
    let o = Originals::new();
    let (_d, p) = o.variant("good.jpg", "fine.jpg", |_| {});
    for (option, value, expect) in [
        ("--quality", "0", "JPEG quality 0 is out of range"),
        ("--tile-size", "100000", "tile size 100000 is not supported"),
        ("--thumbnail-size", "0", "thumbnail size must be at least 1"),
    ] {
        let out = td(&["tile", p.to_str().unwrap(), "-o", "x.tdp", option, value]);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(expect),
            "{option} {value}"
        );
        assert!(!Path::new("x.tdp").exists());
    }
    let missing = o.path("missing.jpg");
    assert_refused(&missing, &[], "No such file");
    let out = td(&["tile", p.to_str().unwrap(), "-o", "/nonexistent-dir/x.tdp"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot write /nonexistent-dir/x.tdp"));
}

#[test]
fn good_original_tiles_and_inspects_clean() {
    let o = Originals::new();
    let out_path = o.path("good.tdp");
    let out = td(&[
        "tile",
        o.path("good.tif").to_str().unwrap(),
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("800×600 px, 3 levels, 17 tiles"),
        "{report}"
    );
    assert!(o.path("good.thumb.jpg").exists());
    let out = td(&["inspect", out_path.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("verify      OK: all 17 tiles"));
}

#[test]
fn inspect_names_the_damaged_tile() {
    let o = Originals::new();
    let out_path = o.path("good.tdp");
    assert!(td(&[
        "tile",
        o.path("good.png").to_str().unwrap(),
        "-o",
        out_path.to_str().unwrap()
    ])
    .status
    .success());
    let reader = tiler::PyramidReader::open(&out_path).unwrap();
    let entry = reader.entry(1, 1, 0).unwrap();
    drop(reader);
    let mut bytes = fs::read(&out_path).unwrap();
    bytes[(entry.offset + u64::from(entry.length) / 2) as usize] ^= 0x40;
    fs::write(&out_path, &bytes).unwrap();
    let out = td(&["inspect", out_path.to_str().unwrap()]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tile (level 1, col 1, row 0) is corrupt: checksum mismatch"),
        "{text}"
    );
    bytes.truncate(bytes.len() - 10);
    fs::write(&out_path, &bytes).unwrap();
    let out = td(&["inspect", out_path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("file is truncated"));
}

/// A run killed in the middle leaves neither a partial pyramid nor a changed old one, and the
/// next run cleans up the dead run's temporary file.
#[test]
fn killed_run_leaves_old_file_intact_and_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Noise is the slowest content to encode: the run lasts long enough to be caught mid-way.
    let noise = d.join("noise.v");
    tool(
        "vips",
        &[
            "gaussnoise",
            noise.to_str().unwrap(),
            "8000",
            "8000",
            "--mean",
            "128",
            "--sigma",
            "60",
        ],
    );
    let original = d.join("noise.tif");
    tool(
        "vips",
        &[
            "cast",
            noise.to_str().unwrap(),
            original.to_str().unwrap(),
            "uchar",
        ],
    );
    fs::remove_file(&noise).unwrap();
    let target = d.join("art.tdp");
    fs::write(&target, b"the previous, complete pyramid").unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_td"))
        .args([
            "tile",
            original.to_str().unwrap(),
            "-o",
            target.to_str().unwrap(),
            "--quiet",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the temporary pyramid holds real tile data, then kill without warning.
    let deadline = Instant::now() + Duration::from_secs(120);
    let temp = loop {
        let found = listing(d)
            .into_iter()
            .find(|n| n.starts_with(".art.tdp.tmp-"));
        if let Some(name) = found {
            let p = d.join(name);
            if fs::metadata(&p).map(|m| m.len() > 2 << 20).unwrap_or(false) {
                break p;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "td finished before it could be killed"
        );
        assert!(Instant::now() < deadline, "no temporary file appeared");
        std::thread::sleep(Duration::from_millis(5));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        fs::read(&target).unwrap(),
        b"the previous, complete pyramid"
    );
    assert!(
        !d.join("art.thumb.jpg").exists(),
        "thumbnail committed without its pyramid"
    );
    assert!(
        temp.exists(),
        "the killed run's temp file is what the next run must clean"
    );

    let out = td(&[
        "tile",
        original.to_str().unwrap(),
        "-o",
        target.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(listing(d), ["art.tdp", "art.thumb.jpg", "noise.tif"]);
    assert!(td(&["inspect", target.to_str().unwrap()]).status.success());
}
