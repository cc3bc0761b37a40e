//! SMART and SES parsers against recorded real outputs (`fixtures/SOURCES.md` says where each
//! comes from): healthy and failing SATA drives, a cable with CRC errors, NVMe drives with media
//! errors and a critical warning, SCSI drives with grown defects, and what smartctl says of a
//! loop device, a missing device and a sleeping one.

use cluster::EventKind;
use monitor::detectors::enclosure::parse_status_page;
use monitor::detectors::smart::{parse, SmartReport};

fn smart(name: &str) -> SmartReport {
    let path = format!("{}/tests/fixtures/smart/{name}", env!("CARGO_MANIFEST_DIR"));
    parse(&std::fs::read(&path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// (kind, attribute, value) of what a report finds.
fn found(name: &str) -> Vec<(EventKind, String, u64)> {
    match smart(name) {
        SmartReport::Read { findings, .. } => findings
            .into_iter()
            .map(|f| (f.kind, f.attribute, f.value))
            .collect(),
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn healthy_drives_have_nothing_to_report() {
    for name in [
        "ata-healthy.json",
        "ata-healthy-megaraid.json",
        "nvme-healthy.json",
        "scsi.json",
    ] {
        assert_eq!(found(name), [], "{name}");
    }
    let SmartReport::Read { serial, passed, .. } = smart("ata-healthy-megaraid.json") else {
        panic!()
    };
    assert_eq!((serial.as_deref(), passed), (Some("ZAD2C11G"), Some(true)));
}

#[test]
fn a_failing_sata_drive_reports_its_verdict_and_sectors() {
    let f = found("ata-failing.json");
    assert!(
        f.contains(&(EventKind::SmartFailed, "smart_status".into(), 1)),
        "{f:?}"
    );
    assert!(
        f.contains(&(
            EventKind::SmartWarning,
            "5 Reallocated_Sector_Ct".into(),
            1975
        )),
        "{f:?}"
    );
    assert!(
        f.contains(&(
            EventKind::SmartWarning,
            "197 Current_Pending_Sector".into(),
            8
        )),
        "{f:?}"
    );
    assert_eq!(f.len(), 3, "{f:?}");
}

#[test]
fn crc_errors_point_at_the_cable() {
    assert_eq!(
        found("ata-crc.json"),
        [(EventKind::CableErrors, "199 CRC_Error_Count".into(), 108)]
    );
    assert_eq!(
        found("ata-crc-2.json"),
        [(
            EventKind::CableErrors,
            "199 UDMA_CRC_Error_Count".into(),
            3118119
        )]
    );
}

#[test]
fn nvme_media_errors_and_critical_warnings() {
    assert_eq!(
        found("nvme.json"),
        [(EventKind::SmartWarning, "media_errors".into(), 7)]
    );
    let f = found("nvme-critical-warning.json");
    assert!(
        f.contains(&(EventKind::SmartFailed, "smart_status".into(), 1)),
        "{f:?}"
    );
    assert!(
        f.contains(&(EventKind::SmartWarning, "critical_warning".into(), 16)),
        "{f:?}"
    );
}

#[test]
fn scsi_grown_defects_and_uncorrected_errors() {
    let f = found("scsi-grown-defects.json");
    assert!(
        f.contains(&(
            EventKind::SmartWarning,
            "scsi_grown_defect_list".into(),
            260
        )),
        "{f:?}"
    );
    assert!(
        f.contains(&(
            EventKind::SmartWarning,
            "read total_uncorrected_errors".into(),
            1
        )),
        "{f:?}"
    );
    assert!(
        f.contains(&(
            EventKind::SmartWarning,
            "write total_uncorrected_errors".into(),
            535
        )),
        "{f:?}"
    );
}

#[test]
fn no_smart_is_said_in_smartctls_words() {
    for (name, words) in [
        ("loop.json", "Unable to detect device type"),
        ("loop-x.json", "Unable to detect device type"),
        ("loop-d-sat.json", "no SMART data (smartctl exit status 2)"),
        ("loop-d-scsi.json", "no SMART data (smartctl exit status 2)"),
        ("nonexistent.json", "Unable to detect device type"),
        ("nonexistent-7.5.json", "Unable to detect device type"),
        ("nonexistent-d-sat.json", "No such device"),
        ("standby.json", "STANDBY"),
        ("scan-empty.json", "no SMART data"),
    ] {
        match smart(name) {
            SmartReport::Unavailable(why) => assert!(why.contains(words), "{name}: {why}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn nonsense_from_smartctl_is_an_error_not_a_crash() {
    for junk in [
        &b""[..],
        b"Segmentation fault",
        b"[1,2,3]",
        b"{\"ata_smart_attributes\":{\"table\":[{\"id\":\"x\"}]}}",
        b"\xff\xfe",
    ] {
        let _ = parse(junk);
    }
    assert!(parse(b"smartctl: command not found")
        .unwrap_err()
        .contains("not JSON"));
}

#[test]
fn the_enclosure_status_page_names_the_faulty_elements() {
    let path = format!(
        "{}/tests/fixtures/ses/es-psu-fan-slot-fault.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let elements = parse_status_page(&std::fs::read_to_string(path).unwrap()).unwrap();
    let faults: Vec<(String, String)> = elements
        .iter()
        .filter_map(|e| Some((e.name(), e.fault()?)))
        .collect();
    assert_eq!(
        faults,
        [
            (
                "Array device slot 2".into(),
                "status Critical, Predicted failure, Fault sensed".into()
            ),
            (
                "Power supply 1".into(),
                "status Critical, Fail, AC fail, DC fail".into()
            ),
            ("Cooling 1".into(), "status Noncritical".into()),
        ]
    );
    let temp = elements
        .iter()
        .find(|e| e.kind == "Temperature sensor" && e.index == Some(0))
        .unwrap();
    assert_eq!(temp.field("Temperature"), Some("31 C"));
    // What sg_ses prints without an enclosure, and on a device that is not SCSI, recorded here.
    for name in [
        "absent.txt",
        "loop-not-scsi.txt",
        "areca-arc8028-supported-and-cf.txt",
    ] {
        let path = format!("{}/tests/fixtures/ses/{name}", env!("CARGO_MANIFEST_DIR"));
        let err = parse_status_page(&std::fs::read_to_string(path).unwrap()).unwrap_err();
        assert!(
            err.contains("not an enclosure status page"),
            "{name}: {err}"
        );
    }
}
