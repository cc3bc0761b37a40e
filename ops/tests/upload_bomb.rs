//! Decompression bombs sent as uploads by an account holder, to real `td backend` processes:
//! a 0.4 MB PNG that really is 20000×20000 pixels, and a 333-byte JPEG whose header claims
//! 20000×20000. Each upload fails with a plain reason naming the uploader's file, nothing is
//! published, and the node's own memory never holds the image: tiling runs in a child held
//! to the node's `tile_memory_mb`, and the node keeps serving throughout.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::ingest::Cluster;

/// A grey PNG of `side`² black pixels, written row by row (the test never holds it whole).
fn png_bomb(dir: &Path, side: u32) -> PathBuf {
    let path = dir.join("bomb.png");
    let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut encoder = png::Encoder::new(file, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::High);
    let mut writer = encoder.write_header().unwrap();
    let mut stream = writer.stream_writer().unwrap();
    let row = vec![0u8; side as usize];
    for _ in 0..side {
        stream.write_all(&row).unwrap();
    }
    stream.finish().unwrap();
    path
}

/// A small real JPEG whose frame header is rewritten to claim `side`² pixels.
fn lying_jpeg(dir: &Path, side: u16) -> PathBuf {
    let mut jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpeg, 80)
        .encode(&[128u8; 16 * 16], 16, 16, jpeg_encoder::ColorType::Luma)
        .unwrap();
    let sof = jpeg.windows(2).position(|m| m == [0xFF, 0xC0]).unwrap();
    jpeg[sof + 5..sof + 7].copy_from_slice(&side.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&side.to_be_bytes());
    let path = dir.join("claims-huge.jpg");
    std::fs::write(&path, &jpeg).unwrap();
    path
}

fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Uploads `file` to node 0 and waits for it to fail; its reason.
fn fails(c: &Cluster, file: &Path) -> String {
    let bytes = std::fs::read(file).unwrap();
    let name = file.file_name().unwrap().to_str().unwrap();
    let (id, _) = c.create_upload(0, "mallory", name, bytes.len(), "Innocent title");
    let (status, head, _) = c.send_chunk(0, "mallory", &id, 0, &bytes);
    assert!(status < 300, "{name}: {head}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = c.status_of(0, "mallory", &id);
        if let Some(s) = s.as_ref().filter(|s| s["stage"] == "failed") {
            return s["error"].as_str().unwrap_or_default().to_string();
        }
        assert_ne!(
            s.as_ref().map(|s| s["stage"].clone()),
            Some("published".into()),
            "{name} was published"
        );
        assert!(
            Instant::now() < deadline,
            "{name}: not failed in 120 s: {s:?}\n{}",
            c.stderr(0)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn bombs_fail_with_a_plain_reason_and_never_reach_the_node_s_memory() {
    let mut c = Cluster::new(&["A", "B"]);
    // Each node may give a tiling 512 MiB; the PNG decoded is 400 MB (fits no half of it).
    let text = std::fs::read_to_string(&c.config).unwrap();
    std::fs::write(
        &c.config,
        text.replace("state_dir = ", "tile_memory_mb = 512\nstate_dir = "),
    )
    .unwrap();
    c.start(0, None);
    c.start(1, None);
    let work = tempfile::tempdir().unwrap();

    let png = png_bomb(work.path(), 20_000);
    let size = std::fs::metadata(&png).unwrap().len();
    assert!(size < 2 << 20, "the bomb is small: {size} bytes");
    let reason = fails(&c, &png);
    eprintln!("{size}-byte PNG of 20000×20000: {reason}");
    assert!(
        reason.contains("bomb.png") && reason.contains("MiB"),
        "{reason}"
    );
    assert!(
        !reason.contains("staging") && !reason.contains("/original"),
        "{reason}"
    );

    let jpeg = lying_jpeg(work.path(), 20_000);
    let size = std::fs::metadata(&jpeg).unwrap().len();
    let reason = fails(&c, &jpeg);
    eprintln!("{size}-byte JPEG claiming 20000×20000: {reason}");
    assert!(
        reason.contains("claims-huge.jpg") && reason.contains("truncated"),
        "{reason}"
    );

    // The node never held either image: its peak is far below the 400 MB one would take.
    let pid = c.pid(0);
    let peak = peak_kib(pid);
    eprintln!("node-a's peak memory: {} MiB", peak / 1024);
    assert!(peak < 200 * 1024, "node-a peaked at {} MiB", peak / 1024);
    let (status, _, _) = c.call(0, "GET", "/health", "", &[], b"");
    assert_eq!(status, 200, "the node still serves");
}
