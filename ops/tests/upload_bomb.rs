//! Decompression bombs sent as uploads by an account holder, to real `td backend` processes:
//! a PNG whose header claims 70000×70000 (4.9 gigapixels, over the limit) and a 333-byte JPEG
//! whose header claims 20000×20000. Each upload fails with a plain reason naming the
//! uploader's file, nothing is published, and the node's own memory never holds the image:
//! tiling runs in a child held to the node's `tile_memory_mb`, and the node keeps serving
//! throughout. (A PNG that really is 20000×20000 is no bomb any more: PNGs are tiled row by
//! row, in a few MiB.)

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::ingest::Cluster;

/// A small real PNG whose header is rewritten to claim `side`² grey pixels, its checksum made
/// good again so that only the size gives it away.
fn png_bomb(dir: &Path, side: u32) -> PathBuf {
    let mut png = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png, 16, 16);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&[0u8; 256]).unwrap();
    }
    // After the 8-byte signature: IHDR's length (4), its type (4), width (4), height (4), the
    // rest of its 13 bytes, then the CRC of type and data.
    png[16..20].copy_from_slice(&side.to_be_bytes());
    png[20..24].copy_from_slice(&side.to_be_bytes());
    let crc = crc32fast::hash(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    let path = dir.join("bomb.png");
    std::fs::write(&path, &png).unwrap();
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
    // Each node may give a tiling 512 MiB.
    let text = std::fs::read_to_string(&c.config).unwrap();
    std::fs::write(
        &c.config,
        text.replace("state_dir = ", "tile_memory_mb = 512\nstate_dir = "),
    )
    .unwrap();
    c.start(0, None);
    c.start(1, None);
    let work = tempfile::tempdir().unwrap();

    let png = png_bomb(work.path(), 70_000);
    let size = std::fs::metadata(&png).unwrap().len();
    let reason = fails(&c, &png);
    eprintln!("{size}-byte PNG claiming 70000×70000: {reason}");
    assert!(
        reason.contains("bomb.png") && reason.contains("megapixels"),
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

    // The node never held either image: its peak is far below the 1.2 GB the JPEG claims.
    let pid = c.pid(0);
    let peak = peak_kib(pid);
    eprintln!("node-a's peak memory: {} MiB", peak / 1024);
    assert!(peak < 200 * 1024, "node-a peaked at {} MiB", peak / 1024);
    let (status, _, _) = c.call(0, "GET", "/health", "", &[], b"");
    assert_eq!(status, 200, "the node still serves");
}
