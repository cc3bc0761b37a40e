//! A one-node cluster on folders for tests: its `cluster.toml`, disks, and replicas placed on
//! them the way ingest will place them.

#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};

use backend::replica::{self, Sources};
use backend::{CatalogStart, ImageMeta, Node};
use cluster::ClusterConfig;
use image::RgbImage;
use tiler::TileOptions;

pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub config: ClusterConfig,
}

/// A picture with structure everywhere: a colour ramp plus a checkerboard of 37 px cells, so
/// that a wrong offset or a wrong scale shows.
pub fn picture(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let check = if (x / 37 + y / 37) % 2 == 0 { 60 } else { 0 };
        image::Rgb([
            (x * 255 / w) as u8,
            (y * 255 / h) as u8,
            (128 + check) as u8,
        ])
    })
}

impl TestCluster {
    /// Node `n1` with `disks` folder disks `d1`, `d2`, …, and a peer `n2` (not running) that
    /// holds the other replicas.
    pub fn new(disks: usize) -> TestCluster {
        let dir = tempfile::tempdir().unwrap();
        let mut toml = String::from(
            "name = \"test\"\n\n[[node]]\nname = \"n1\"\naddress = \"127.0.0.1:1\"\n\
             power_domain = \"A\"\nstate_dir = \"state\"\n",
        );
        for d in 1..=disks {
            toml.push_str(&format!(
                "\n[[node.disk]]\nid = \"d{d}\"\npath = \"d{d}\"\nserial = \"SN-{d}\"\n\
                 location = {{ slot = {d} }}\n"
            ));
            std::fs::create_dir(dir.path().join(format!("d{d}"))).unwrap();
        }
        toml.push_str(
            "\n[[node]]\nname = \"n2\"\naddress = \"127.0.0.2:8080\"\npower_domain = \"B\"\n",
        );
        let path = dir.path().join("cluster.toml");
        std::fs::write(&path, toml).unwrap();
        let config = ClusterConfig::load(&path).unwrap();
        for d in &config.node("n1").unwrap().disks {
            backend::disk::adopt_or_check(d, "n1").unwrap();
        }
        TestCluster { dir, config }
    }

    pub fn disk_path(&self, disk: usize) -> PathBuf {
        self.dir.path().join(format!("d{disk}"))
    }

    /// The folder of `id`'s replica on `disk`.
    pub fn replica(&self, disk: usize, id: &str) -> PathBuf {
        self.disk_path(disk).join("images").join(id)
    }

    /// Tiles `picture` and places a replica of it as `id` on `disk`.
    pub fn place(&self, disk: usize, id: &str, picture: &RgbImage, title: &str) {
        let work = self.dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let png = work.join(format!("{id}.png"));
        picture.save(&png).unwrap();
        let (pyramid, thumb) = (
            work.join(format!("{id}.tdp")),
            work.join(format!("{id}.jpg")),
        );
        tiler::tile(&png, &pyramid, &thumb, &TileOptions::default(), &|_, _| {}).unwrap();
        let meta = ImageMeta {
            title: title.into(),
            artist: "Tester".into(),
            ..ImageMeta::default()
        };
        let sources = Sources {
            original: &png,
            pyramid: &pyramid,
            thumbnail: &thumb,
            meta: &meta,
        };
        let nodes = ["n1".to_string(), "n2".to_string()];
        replica::place(&self.disk_path(disk).join("images"), id, &sources, &nodes).unwrap();
    }

    /// Replicas `{of}-{n}` for n in `0..count` on `disk`, each its own folder and manifest
    /// with the files of `of`'s replica hard-linked: many replicas for the room of one.
    pub fn copies(&self, disk: usize, of: &str, count: usize) -> Vec<String> {
        let first = replica::read_manifest(&self.replica(disk, of), of).unwrap();
        (0..count)
            .map(|n| {
                let id = format!("{of}-{n:05}");
                let dir = self.replica(disk, &id);
                std::fs::create_dir(&dir).unwrap();
                for f in &first.files {
                    std::fs::hard_link(self.replica(disk, of).join(&f.name), dir.join(&f.name))
                        .unwrap();
                }
                let manifest = replica::Manifest {
                    id: id.clone(),
                    ..first.clone()
                };
                std::fs::write(
                    dir.join(replica::MANIFEST),
                    serde_json::to_vec(&manifest).unwrap(),
                )
                .unwrap();
                id
            })
            .collect()
    }

    pub fn open(&self, start: CatalogStart) -> (Node, backend::node::Opening) {
        Node::open(&self.config, "n1", start).unwrap()
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
}

/// Flips one byte of a file in place.
pub fn flip_byte(path: &Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x55], at).unwrap();
}
