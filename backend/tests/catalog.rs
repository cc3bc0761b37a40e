//! The node's catalog is a cache of what its disks hold: rebuilt from them alone, brought up to
//! date at start, versioned for frontends, and audited against them.

mod common;

use backend::CatalogStart;
use cluster::ReplicaState;
use common::{flip_byte, picture, TestCluster};

/// Three images over two disks.
fn three_images() -> TestCluster {
    let c = TestCluster::new(2);
    c.place(1, "apple", &picture(700, 300), "Apple");
    c.place(2, "birch", &picture(300, 500), "Birch");
    c.place(1, "cedar", &picture(260, 260), "Cedar");
    c
}

#[test]
fn a_deleted_catalog_comes_back_identical() {
    let c = three_images();
    let (node, opening) = c.open(CatalogStart::Sync);
    assert_eq!(opening.rebuilt.as_deref(), Some("there was no catalog"));
    let (before, name) = (node.catalog.entries(), node.catalog.generation());
    assert_eq!(before.len(), 3);
    assert!(before.iter().all(|e| e.state == ReplicaState::Ok));
    let apple = &before[0];
    assert_eq!((apple.id.as_str(), apple.disk.as_str()), ("apple", "d1"));
    assert_eq!((apple.width, apple.height), (700, 300));
    assert_eq!(apple.nodes, ["n1", "n2"]);
    assert_eq!(apple.meta.title, "Apple");
    let names: Vec<_> = apple.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["original.png", "pyramid.tdp", "thumb.jpg", "meta.json"]
    );
    drop(node);

    std::fs::remove_dir_all(c.state().join("catalog")).unwrap();
    let (node, opening) = c.open(CatalogStart::Sync);
    assert!(opening.rebuilt.is_some());
    assert_eq!(
        node.catalog.entries(),
        before,
        "the same entries, versions and all"
    );
    assert_ne!(
        node.catalog.generation(),
        name,
        "a new name tells frontends to fetch it all again"
    );
    drop(node);

    let (node, opening) = c.open(CatalogStart::Rebuild);
    assert_eq!(opening.rebuilt.as_deref(), Some("asked for"));
    assert_eq!(node.catalog.entries(), before);
    let events = node.events.since(0, 100).events;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == cluster::EventKind::CatalogRebuilt)
            .count(),
        3,
        "each rebuild is an event"
    );
}

#[test]
fn a_damaged_catalog_is_moved_aside_and_rebuilt() {
    let c = three_images();
    let before = c.open(CatalogStart::Sync).0.catalog.entries();
    for entry in std::fs::read_dir(c.state().join("catalog")).unwrap() {
        let file = entry.unwrap().path();
        if file.is_file() && std::fs::metadata(&file).unwrap().len() > 0 {
            std::fs::write(&file, vec![0x5A; 100]).unwrap();
        }
    }
    let (node, opening) = c.open(CatalogStart::Sync);
    let why = opening.rebuilt.unwrap();
    assert!(
        why.contains("damaged") && why.contains("moved aside"),
        "{why}"
    );
    assert_eq!(node.catalog.entries(), before);
    assert_eq!(node.library.len(), 3);
}

/// A catalog read in pages of one: every entry exactly once, each page's version the cursor of
/// the next, and a change made between pages comes in a later page, never lost.
#[test]
fn a_catalog_read_in_pages_misses_nothing_and_repeats_nothing() {
    let c = three_images();
    let (node, _) = c.open(CatalogStart::Sync);
    let first = node.catalog.page_after(0, 1);
    assert_eq!(first.entries.len(), 1);
    assert!(first.more);
    assert_eq!(first.version, first.entries[0].version);
    // Changed while the reader is between pages: the first entry again, and a later one.
    let suspect = ReplicaState::Suspect {
        reason: "tile 0/1/1 fails its checksum".into(),
    };
    let mut seen = vec![first.entries[0].id.clone()];
    node.catalog
        .set_state(&first.entries[0].id, suspect.clone())
        .unwrap();
    let mut since = first.version;
    loop {
        let page = node.catalog.page_after(since, 1);
        seen.extend(page.entries.iter().map(|e| e.id.clone()));
        since = page.version;
        if !page.more {
            break;
        }
    }
    assert_eq!(since, node.catalog.page_since(0).version);
    let mut ids: Vec<_> = node
        .catalog
        .page_since(0)
        .entries
        .into_iter()
        .map(|e| e.id)
        .collect();
    ids.sort();
    // The changed entry comes twice (before and after its change), every other once.
    assert_eq!(seen.len(), 4, "{seen:?}");
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ids);
    let whole = node.catalog.page_after(0, 10);
    assert!(!whole.more);
    assert_eq!(whole.entries.len(), 3);
}

/// Pages are read without holding up the catalog's writers: a reader following pages of one
/// while a writer changes every entry again and again ends, once the writer stops, with every
/// entry as the catalog has it (no change lost, whatever the interleaving).
#[test]
fn pages_read_while_entries_change_lose_no_change() {
    let c = three_images();
    let (node, _) = c.open(CatalogStart::Sync);
    let node = std::sync::Arc::new(node);
    let ids: Vec<String> = node
        .catalog
        .page_since(0)
        .entries
        .into_iter()
        .map(|e| e.id)
        .collect();
    let writer = {
        let node = node.clone();
        std::thread::spawn(move || {
            for round in 0..300 {
                for id in &ids {
                    let state = if round % 2 == 0 {
                        ReplicaState::Suspect {
                            reason: format!("round {round}"),
                        }
                    } else {
                        ReplicaState::Ok
                    };
                    node.catalog.set_state(id, state).unwrap();
                }
            }
        })
    };
    let mut view = std::collections::BTreeMap::new();
    let mut since = 0;
    let mut follow = |since: &mut u64| loop {
        let page = node.catalog.page_after(*since, 1);
        for e in page.entries {
            view.insert(e.id.clone(), e.state);
        }
        assert!(page.version >= *since, "the cursor went back");
        *since = page.version;
        if !page.more {
            break;
        }
    };
    while !writer.is_finished() {
        follow(&mut since);
    }
    writer.join().unwrap();
    follow(&mut since);
    let now: std::collections::BTreeMap<_, _> = node
        .catalog
        .page_since(0)
        .entries
        .into_iter()
        .map(|e| (e.id, e.state))
        .collect();
    assert_eq!(view, now);
}

#[test]
fn frontends_fetch_only_what_changed() {
    let c = three_images();
    let (node, _) = c.open(CatalogStart::Sync);
    let all = node.catalog.page_since(0);
    assert_eq!(all.entries.len(), 3);
    assert_eq!(all.node, "n1");
    assert!(node.catalog.page_since(all.version).entries.is_empty());
    let suspect = ReplicaState::Suspect {
        reason: "tile 0/1/1 fails its checksum".into(),
    };
    assert!(node.catalog.set_state("birch", suspect.clone()).unwrap());
    assert!(
        !node.catalog.set_state("birch", suspect.clone()).unwrap(),
        "no new version when nothing changes"
    );
    let page = node.catalog.page_since(all.version);
    assert_eq!(page.version, all.version + 1);
    assert_eq!(page.entries.len(), 1);
    assert_eq!(
        (page.entries[0].id.as_str(), &page.entries[0].state),
        ("birch", &suspect)
    );
    assert_eq!(page.catalog, all.catalog);
    // The wire form: state flattened beside the entry, as frontends read it.
    let json = serde_json::to_value(&page).unwrap();
    assert_eq!(json["entries"][0]["state"], "suspect");
    assert_eq!(
        json["entries"][0]["reason"],
        "tile 0/1/1 fails its checksum"
    );
}

#[test]
fn what_changed_on_the_disks_while_stopped_is_found_at_start() {
    let c = three_images();
    let first = c.open(CatalogStart::Sync).0.catalog.entries();
    std::fs::remove_dir_all(c.replica(2, "birch")).unwrap();
    c.place(2, "dogwood", &picture(300, 200), "Dogwood");
    // Debris of a placement that died is not an image.
    std::fs::create_dir(c.disk_path(2).join("images/.elm.placing")).unwrap();
    let (node, opening) = c.open(CatalogStart::Sync);
    assert!(opening.rebuilt.is_none());
    let s = &opening.sync;
    assert_eq!((s.kept, s.added, s.removed), (2, 1, 1), "{s:?}");
    let birch = node.catalog.get("birch").unwrap();
    assert_eq!(birch.state, ReplicaState::Removed);
    assert!(birch.version > first.iter().map(|e| e.version).max().unwrap());
    assert!(node.library.get("dogwood").is_some());
    assert!(node.library.get("birch").is_none());
    assert!(node.catalog.get("elm").is_none());
    drop(node);

    // A disk that is not the configured one any more: its replicas are not in service.
    let identity = c.disk_path(1).join("td-disk.json");
    let text = std::fs::read_to_string(&identity).unwrap();
    std::fs::write(&identity, text.replace("\"d1\"", "\"d9\"")).unwrap();
    let (node, opening) = c.open(CatalogStart::Sync);
    assert!(
        opening.warnings.iter().any(|w| w.contains("d9")),
        "{:?}",
        opening.warnings
    );
    for id in ["apple", "cedar"] {
        assert_eq!(
            node.catalog.get(id).unwrap().state,
            ReplicaState::unreadable("disk d1 is not in service")
        );
    }
    assert_eq!(node.library.len(), 1);
}

#[test]
fn the_audit_reads_every_file_and_names_what_disagrees() {
    let c = three_images();
    drop(c.open(CatalogStart::Sync));
    let audit = || backend::node::audit(&c.config, "n1", &mut |_, _| {}).unwrap();
    let clean = audit();
    assert!(clean.problems.is_empty(), "{:?}", clean.problems);
    assert_eq!(clean.replicas, 3);
    let on_disk: u64 = ["apple", "birch", "cedar"]
        .iter()
        .enumerate()
        .flat_map(|(i, id)| {
            let disk = if i == 1 { 2 } else { 1 };
            std::fs::read_dir(c.replica(disk, id)).unwrap()
        })
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let manifests: u64 = ["apple", "birch", "cedar"]
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let disk = if i == 1 { 2 } else { 1 };
            std::fs::metadata(c.replica(disk, id).join("replica.json"))
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(
        clean.bytes,
        on_disk - manifests,
        "every file but the manifests is read"
    );

    flip_byte(&c.replica(1, "apple").join("original.png"), 60);
    std::fs::remove_file(c.replica(2, "birch").join("thumb.jpg")).unwrap();
    c.place(2, "dogwood", &picture(200, 200), "Dogwood");
    let report = audit();
    let text = report.problems.join("\n");
    assert_eq!(report.problems.len(), 3, "{text}");
    assert!(
        text.contains("apple on disk d1")
            && text.contains("original.png")
            && text.contains("damaged"),
        "{text}"
    );
    assert!(
        text.contains("birch on disk d2") && text.contains("thumb.jpg"),
        "{text}"
    );
    assert!(
        text.contains("dogwood on disk d2: on the disk but not in the catalog"),
        "{text}"
    );
}
