//! A pyramid file damaged in any way — bytes flipped, cut short, grown, overwritten — is either
//! refused at open or has every damaged tile refused at read: the reader never hands out bytes
//! that differ from what was written, and never panics.

use std::path::Path;

use proptest::prelude::*;
use tiler::{PyramidReader, PyramidWriter};

/// A small pyramid whose tiles are recognisable byte strings (the reader does not decode them
/// unless asked to verify).
fn write_sample(path: &Path) -> Vec<Vec<u8>> {
    let g = tiler::Geometry::new(700, 300, 128).unwrap();
    let mut w = PyramidWriter::create(path, g.clone(), 3, 85).unwrap();
    let mut tiles = Vec::new();
    // Written in reverse order on purpose: the index, not the order, says where tiles are.
    for i in (0..g.tile_count()).rev() {
        let (level, col, row) = g.tile_at(i).unwrap();
        let bytes: Vec<u8> = format!("\u{ff}\u{d8}tile {level}/{col}/{row} ")
            .repeat(3 + i as usize % 5)
            .into_bytes();
        w.add_tile(level, col, row, &bytes).unwrap();
        tiles.push((i, bytes));
    }
    w.finish().unwrap().commit().unwrap();
    tiles.sort();
    tiles.into_iter().map(|(_, b)| b).collect()
}

#[derive(Debug, Clone)]
enum Damage {
    Flip { at: usize, mask: u8 },
    Truncate { keep: usize },
    Append { bytes: Vec<u8> },
    Overwrite { at: usize, bytes: Vec<u8> },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(at, mask)| Damage::Flip { at, mask }),
        any::<usize>().prop_map(|keep| Damage::Truncate { keep }),
        prop::collection::vec(any::<u8>(), 1..64).prop_map(|bytes| Damage::Append { bytes }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(at, bytes)| Damage::Overwrite { at, bytes }),
    ]
}

fn apply(file: &mut Vec<u8>, d: &Damage) {
    let n = file.len();
    if n == 0 {
        // An earlier damage cut the file to nothing; only appending can change it now.
        if let Damage::Append { bytes } = d {
            file.extend_from_slice(bytes);
        }
        return;
    }
    match d {
        Damage::Flip { at, mask } => file[at % n] ^= mask,
        Damage::Truncate { keep } => file.truncate(keep % n),
        Damage::Append { bytes } => file.extend_from_slice(bytes),
        Damage::Overwrite { at, bytes } => {
            for (i, b) in bytes.iter().enumerate() {
                if let Some(x) = file.get_mut(at % n + i) {
                    *x = *b;
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        // Integration tests have no lib.rs beside them to persist failures next to.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn damaged_files_never_yield_wrong_tiles(damages in prop::collection::vec(damage(), 1..4)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tdp");
        let tiles = write_sample(&path);
        let good = std::fs::read(&path).unwrap();
        let mut bad = good.clone();
        for d in &damages {
            apply(&mut bad, d);
        }
        prop_assume!(bad != good);
        std::fs::write(&path, &bad).unwrap();
        if let Ok(reader) = PyramidReader::open(&path) {
            let g = reader.geometry().clone();
            for (i, want) in tiles.iter().enumerate() {
                let (level, col, row) = g.tile_at(i as u64).unwrap();
                match reader.read_tile(level, col, row) {
                    Ok(got) => prop_assert_eq!(&got, want, "tile {}/{}/{} changed", level, col, row),
                    Err(e) => prop_assert!(e.is_corruption(), "{}", e),
                }
            }
        }
    }
}

#[test]
fn damage_in_a_tile_names_that_tile() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.tdp");
    write_sample(&path);
    let reader = PyramidReader::open(&path).unwrap();
    let e = reader.entry(1, 2, 0).unwrap();
    drop(reader);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[e.offset as usize + 3] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let reader = PyramidReader::open(&path).unwrap();
    let err = reader.read_tile(1, 2, 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: tile (level 1, col 2, row 0) is corrupt: checksum mismatch (index says {:08x}, bytes give {:08x})",
            path.display(),
            e.crc32c,
            crc32c::crc32c(&bytes[e.offset as usize..][..e.length as usize])
        )
    );
    assert!(
        reader.read_tile(1, 1, 0).is_ok(),
        "the other tiles still read"
    );
}

#[test]
fn cut_short_file_says_how_short() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.tdp");
    write_sample(&path);
    let full = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(full - 1).unwrap();
    let err = PyramidReader::open(&path).unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "file is truncated ({} bytes, the tile data needs {full})",
            full - 1
        )),
        "{err}"
    );
}
