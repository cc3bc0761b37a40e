//! The one case a human is told at once: two nodes in two power domains hold an image; node-b's
//! disk vanishes, and with no third power domain the cluster cannot copy the image again by
//! itself. node-b's ticket for the disk is urgent, and its monitor mails it (into the outbox
//! configured in `[mail]`) once, not at every check; `td tickets` shows it urgent.

mod common;

use std::path::Path;
use std::time::Duration;

use cluster::EventKind;
use common::ingest::Cluster;
use common::monitor::{detector, events, free_addr, start_monitor, wait_until};
use common::remirror::{adopt_disks, start_all, status, Template, LIMIT};

fn mails(outbox: &Path) -> Vec<String> {
    let mut all: Vec<String> = std::fs::read_dir(outbox)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .map(|e| std::fs::read_to_string(e.path()).unwrap())
                .collect()
        })
        .unwrap_or_default();
    all.sort();
    all
}

#[test]
fn a_ticket_whose_images_cannot_be_copied_again_is_mailed_at_once_and_once() {
    let image = Template::new("wave", "plasma:fractal", "300x200");
    let mut c = Cluster::new(&["A", "B"]);
    // Monitors at addresses of their own (the default port would be shared on loopback).
    let mut toml = std::fs::read_to_string(&c.config).unwrap();
    let mut monitors = Vec::new();
    for (_, addr, _) in &c.nodes {
        let m = free_addr();
        toml = toml.replace(
            &format!("address = \"{addr}\"\n"),
            &format!("address = \"{addr}\"\nmonitor = \"{m}\"\n"),
        );
        monitors.push(m);
    }
    std::fs::write(&c.config, toml).unwrap();
    let outbox = c.dir.path().join("outbox");
    c.configure(&format!(
        "[repair]\ndisk_grace_seconds = 2\nticket_grace_seconds = 2\n\n\
         [mail]\noutbox = \"{}\"\nfrom = \"td@museum.example\"\nto = [\"ops@museum.example\"]\n",
        outbox.display()
    ));
    adopt_disks(&mut c);
    image.put(&c.disk(0));
    image.put(&c.disk(1));
    start_all(&mut c);
    let _a = start_monitor(&c.config, "node-a", &["--watch-only"]);
    let b = start_monitor(&c.config, "node-b", &["--watch-only"]);
    wait_until("healthy", LIMIT, || {
        (status(&c)["healthy"] == 1).then_some(())
    });
    assert!(mails(&outbox).is_empty(), "nothing urgent, no mail");

    let disk = c.disk(1);
    std::fs::rename(&disk, disk.with_extension("away")).unwrap();
    let mailed = wait_until("an urgent mail", LIMIT, || {
        let m = mails(&outbox);
        (!m.is_empty()).then_some(m)
    });
    assert_eq!(mailed.len(), 1, "{mailed:#?}");
    let mail = &mailed[0];
    assert!(mail.contains("urgent"), "{mail}");
    assert!(mail.contains("node-b-d1"), "{mail}");
    assert!(mail.contains("one replica left"), "{mail}");
    assert!(mail.contains("To: ops@museum.example"), "{mail}");
    wait_until("the mail recorded", LIMIT, || {
        events(&b.addr)
            .iter()
            .any(|e| e.kind == EventKind::TicketMailed)
            .then_some(())
    });
    // More checks of the ticket: no second mail.
    let runs = |d: serde_json::Value| d["runs"].as_u64().unwrap();
    let from = runs(detector(&b.addr, "urgent mail"));
    wait_until("two more checks", Duration::from_secs(30), || {
        (runs(detector(&b.addr, "urgent mail")) >= from + 2).then_some(())
    });
    assert_eq!(mails(&outbox).len(), 1);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_td"))
        .args(["tickets", "--config", c.config.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("OPEN URGENT"), "{text}");
}
