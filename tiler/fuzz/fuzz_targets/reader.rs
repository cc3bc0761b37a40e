//! Any bytes as a pyramid file: opening, reading every tile and verifying must return errors,
//! never panic, hang or allocate without bound.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tiler::PyramidReader;

fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| std::env::temp_dir().join(format!("tdp-fuzz-{}.tdp", std::process::id())))
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    std::fs::write(path, data).expect("scratch file");
    let Ok(reader) = PyramidReader::open(path) else {
        return;
    };
    let g = reader.geometry().clone();
    for (level, l) in g.levels.iter().enumerate() {
        for row in 0..l.rows {
            for col in 0..l.cols {
                let _ = reader.read_tile(level, col, row);
            }
        }
    }
    let _ = reader.verify(|_, _| {});
});
