//! The kernel log parser against recorded real lines: `/dev/kmsg` records caught on this
//! machine while real faults were caused (ext4 and XFS shutdowns, EIO from the block layer,
//! corrupted ext4 metadata), and `dmesg` lines from failing disks posted in public bug
//! reports (`fixtures/SOURCES.md` says where each comes from).

use cluster::EventKind;
use monitor::kernel_log::parse::{classify, record, DeviceRef, Record, Symptom};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/kmsg/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `/dev/kmsg` records: a record is its first line and the ` KEY=value` lines after it.
fn kmsg_records(text: &str) -> Vec<Record> {
    let mut raw: Vec<String> = Vec::new();
    for line in text.lines() {
        match raw.last_mut() {
            Some(r) if line.starts_with(' ') => {
                r.push('\n');
                r.push_str(line);
            }
            _ => raw.push(line.to_string()),
        }
    }
    raw.iter().filter_map(|r| record(r)).collect()
}

fn symptoms(records: &[Record]) -> Vec<(String, Symptom)> {
    records
        .iter()
        .filter(|r| r.facility == 0)
        .filter_map(|r| classify(&r.message).map(|s| (r.message.clone(), s)))
        .collect()
}

fn block(name: &str) -> DeviceRef {
    DeviceRef::Block(name.into())
}

#[test]
fn an_ext4_shutdown_on_this_machine_is_a_filesystem_shutdown_of_its_loop_device() {
    let found = symptoms(&kmsg_records(&fixture("ext4-shutdown.kmsg")));
    let kinds: Vec<_> = found
        .iter()
        .map(|(_, s)| (s.kind, s.device.clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            (EventKind::FilesystemShutdown, block("loop0")),
            (EventKind::FilesystemError, block("loop0")), // Aborting journal on device loop0-8.
        ]
    );
}

#[test]
fn an_xfs_shutdown_and_corruption_are_recognised_and_mount_chatter_is_not() {
    let shutdown = symptoms(&kmsg_records(&fixture("xfs-shutdown.kmsg")));
    assert!(shutdown
        .iter()
        .all(|(_, s)| s.kind == EventKind::FilesystemShutdown && s.device == block("loop0")));
    assert_eq!(shutdown.len(), 2, "{shutdown:?}");
    let corrupt = symptoms(&kmsg_records(&fixture("xfs-corruption-mount.kmsg")));
    assert!(corrupt
        .iter()
        .any(|(m, s)| m.contains("Metadata corruption") && s.kind == EventKind::FilesystemError));
    assert!(corrupt
        .iter()
        .any(|(m, s)| m.contains("metadata I/O error") && s.kind == EventKind::IoError));
}

#[test]
fn block_layer_eio_names_device_and_sector() {
    let found = symptoms(&kmsg_records(&fixture("loop-eio.kmsg")));
    assert!(found.len() >= 5, "{found:?}");
    assert!(found
        .iter()
        .all(|(_, s)| s.kind == EventKind::IoError && s.device == block("loop0")));
    assert!(found.iter().any(|(_, s)| s.sector == Some(20616)));
}

#[test]
fn ext4_metadata_errors_and_the_read_only_remount_are_filesystem_errors() {
    let found = symptoms(&kmsg_records(&fixture("ext4-error-remount-ro.kmsg")));
    assert!(found
        .iter()
        .any(|(m, s)| m.starts_with("EXT4-fs error (device loop0)")
            && s.kind == EventKind::FilesystemError));
    assert!(found
        .iter()
        .any(|(m, _)| m.contains("Remounting filesystem read-only")));
}

#[test]
fn lines_written_by_programs_are_not_the_kernels() {
    let records = kmsg_records(&fixture("userspace-writes.kmsg"));
    assert!(!records.is_empty());
    assert!(records.iter().all(|r| r.facility != 0), "{records:?}");
    // Boot records with their dictionaries: read, nothing reported.
    let boot = kmsg_records(&fixture("boot-dict-records.kmsg"));
    assert!(boot.len() > 10);
    assert!(symptoms(&boot).is_empty(), "{:?}", symptoms(&boot));
    let escaped = kmsg_records(&fixture("boot-escaped-records.kmsg"));
    assert!(!escaped.is_empty());
}

/// Real lines from failing disks: each fault line is recognised with the right kind and
/// device; the chatter around them (command dumps, link up, EH complete) is not.
#[test]
fn recorded_dmesg_lines_from_failing_disks() {
    let text = fixture("recorded-dmesg.txt");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    let classify_line = |l: &str| record(l).and_then(|r| classify(&r.message));
    let expect = |needle: &str, kind: EventKind, device: DeviceRef| {
        let hits: Vec<_> = lines.iter().filter(|l| l.contains(needle)).collect();
        assert!(!hits.is_empty(), "no recorded line has {needle:?}");
        for l in hits {
            let s = classify_line(l).unwrap_or_else(|| panic!("not recognised: {l}"));
            assert_eq!((s.kind, &s.device), (kind, &device), "{l}");
        }
    };
    expect(
        "critical medium error, dev sde",
        EventKind::MediumError,
        block("sde"),
    );
    expect(
        "[sde] tag#40 Sense Key : Medium Error",
        EventKind::MediumError,
        block("sde"),
    );
    expect(
        "Buffer I/O error on dev sdb",
        EventKind::IoError,
        block("sdb"),
    );
    expect(
        "I/O error, dev sde, sector 3150499624",
        EventKind::IoError,
        block("sde"),
    );
    expect(
        "print_req_error: I/O error, dev sda",
        EventKind::IoError,
        block("sda"),
    );
    expect("Sense Key : 0x3", EventKind::MediumError, block("sde"));
    expect(
        "ata1.00: error: { UNC }",
        EventKind::MediumError,
        DeviceRef::Ata("ata1".into()),
    );
    expect(
        "ata1: hard resetting link",
        EventKind::DeviceReset,
        DeviceRef::Ata("ata1".into()),
    );
    expect(
        "BadCRC",
        EventKind::CableErrors,
        DeviceRef::Ata("ata1".into()),
    );
    expect(
        "ata2.00: exception Emask",
        EventKind::IoError,
        DeviceRef::Ata("ata2".into()),
    );
    expect(
        "nvme nvme0: I/O 12 QID 5 timeout",
        EventKind::CommandTimeout,
        DeviceRef::Nvme("nvme0".into()),
    );
    expect(
        "Removing after probe failure",
        EventKind::DeviceOffline,
        DeviceRef::Nvme("nvme2".into()),
    );
    expect(
        "XFS (dm-4): I/O Error Detected. Shutting down",
        EventKind::FilesystemShutdown,
        block("dm-4"),
    );
    expect(
        "XFS (dm-4): Corruption detected",
        EventKind::FilesystemError,
        block("dm-4"),
    );
    expect(
        "Power-on or device reset occurred",
        EventKind::DeviceReset,
        DeviceRef::Scsi("15:0:0:1".into()),
    );
    let sector = classify_line(
        lines
            .iter()
            .find(|l| l.contains("critical medium error, dev sdb, sector 5120"))
            .unwrap(),
    )
    .unwrap()
    .sector;
    assert_eq!(sector, Some(5120));

    // Chatter: never a fault.
    for needle in [
        "CDB:",
        "callbacks suppressed",
        "EH complete",
        "SATA link up",
        "configured for UDMA",
        "Please umount the filesystem",
        "mounted filesystem",
        "iSCSI Initiator",
        "Quotacheck needed",
    ] {
        for l in lines.iter().filter(|l| l.contains(needle)) {
            assert_eq!(classify_line(l), None, "{l}");
        }
    }
    // Most of the recorded lines are about a fault; count what is recognised.
    let recognised = lines.iter().filter(|l| classify_line(l).is_some()).count();
    println!(
        "{recognised} of {} recorded lines recognised as faults",
        lines.len()
    );
    assert!(recognised * 2 > lines.len());
}
