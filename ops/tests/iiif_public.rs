//! The IIIF Image API 3.0 and Presentation API 3.0 as a viewer on another website meets them:
//! through the canonical address (a redirect to a replica), with an `Origin` of its own, and
//! on a node directly. Each check is a rule of the specifications, computed here from the
//! image's size, not copied from the server: ids rooted at the cluster's public URL whatever
//! `Host` was sent; CORS on every answer, redirects and errors included, and on preflights;
//! regions, sizes (`max` within the advertised limits), rotations, qualities and formats that
//! decode to the dimensions the rules give; errors with their statuses; percent-encoded ids.

mod common;

use common::{get, request, Backend, DemoPlan};
use image::GenericImageView;

const ORIGIN: (&str, &str) = ("Origin", "https://museum.example");

/// A demo cluster with its canonical address held.
struct Cluster {
    plan: DemoPlan,
    _processes: Vec<Backend>,
}

impl Cluster {
    fn start() -> Cluster {
        let plan = DemoPlan::prepare();
        let processes = plan.start_serving(|| {
            std::net::TcpStream::connect(&plan.canonical).ok()?;
            serde_json::from_slice(&get(&plan.canonical, "/health").2).ok()
        });
        Cluster {
            plan,
            _processes: processes,
        }
    }

    fn public_url(&self) -> String {
        format!("http://{}", self.plan.canonical)
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(": ")?;
        k.eq_ignore_ascii_case(name).then_some(v)
    })
}

/// `path` asked at the canonical address as a page on another origin would: the answer (a
/// redirect or an error) is readable there, and a redirect is followed to the replica, whose
/// answer must be readable too. Returns the replica's (or the error's) status, head and body.
fn fetch(c: &Cluster, path: &str, extra: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
    let headers: Vec<_> = std::iter::once(ORIGIN)
        .chain(extra.iter().copied())
        .collect();
    let (status, head, body) = request(&c.plan.canonical, "GET", path, &headers);
    assert_eq!(
        header(&head, "access-control-allow-origin"),
        Some("*"),
        "{path} at the canonical address: {head}"
    );
    if status != 302 {
        return (status, head, body);
    }
    let to = header(&head, "location").expect("a redirect has a location");
    let rest = to.strip_prefix("http://").expect("an http location");
    let (host, target) = rest.split_at(rest.find('/').unwrap());
    let (status, head, body) = request(host, "GET", target, &headers);
    assert_eq!(
        header(&head, "access-control-allow-origin"),
        Some("*"),
        "{to}: {head}"
    );
    (status, head, body)
}

fn json(c: &Cluster, path: &str) -> serde_json::Value {
    let (status, head, body) = fetch(c, path, &[]);
    assert_eq!(status, 200, "{path}: {head}");
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An image request through the canonical address, decoded; its format is checked against
/// the content type and the magic bytes.
fn picture(c: &Cluster, path: &str) -> image::DynamicImage {
    let (status, head, body) = fetch(c, path, &[]);
    assert_eq!(
        status,
        200,
        "{path}: {head} {}",
        String::from_utf8_lossy(&body)
    );
    let (format, magic): (_, &[u8]) = if path.ends_with(".png") {
        (image::ImageFormat::Png, b"\x89PNG")
    } else {
        (image::ImageFormat::Jpeg, b"\xff\xd8\xff")
    };
    assert_eq!(
        header(&head, "content-type"),
        Some(format.to_mime_type()),
        "{path}"
    );
    assert!(body.starts_with(magic), "{path}: not a {format:?}");
    image::load_from_memory_with_format(&body, format).unwrap()
}

/// Within one pixel of `want`: the specifications leave the rounding of a kept aspect
/// ratio to the server.
fn about(got: (u32, u32), want: (f64, f64), what: &str) {
    let near = |g: u32, w: f64| (f64::from(g) - w).abs() <= 1.0;
    assert!(
        near(got.0, want.0) && near(got.1, want.1),
        "{what}: {got:?}, the rules give {want:?}"
    );
}

#[test]
fn the_image_api_through_the_canonical_address_follows_the_specification() {
    let c = Cluster::start();
    let id = "seahorse-valley";
    let base = format!("{}/iiif/3/{id}", c.public_url());

    // info.json: the id is the public one whichever node answered and whatever Host was sent.
    let info = json(&c, &format!("/iiif/3/{id}/info.json"));
    assert_eq!(info["@context"], "http://iiif.io/api/image/3/context.json");
    assert_eq!(info["id"], base);
    assert_eq!(info["type"], "ImageService3");
    assert_eq!(info["protocol"], "http://iiif.io/api/image");
    assert_eq!(info["profile"], "level2");
    let (w, h) = (
        info["width"].as_u64().unwrap() as u32,
        info["height"].as_u64().unwrap() as u32,
    );
    let (max_w, max_h, max_area) = (
        info["maxWidth"].as_u64().unwrap_or(u64::MAX),
        info["maxHeight"].as_u64().unwrap_or(u64::MAX),
        info["maxArea"].as_u64().unwrap_or(u64::MAX),
    );
    for node in ["node-a", "node-b", "node-c"] {
        let (status, _, body) = request(
            c.plan.addr(node),
            "GET",
            &format!("/iiif/3/{id}/info.json"),
            &[("Host", "evil.example")],
        );
        if status == 200 {
            let there: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(there["id"], base, "{node} with Host: evil.example");
        }
    }
    // The base URI redirects to info.json; JSON-LD when asked, saying it varies.
    let (status, head, _) = fetch(&c, &format!("/iiif/3/{id}"), &[]);
    assert_eq!(status, 303, "{head}");
    let ld = "application/ld+json;profile=\"http://iiif.io/api/image/3/context.json\"";
    let (_, head, _) = fetch(&c, &format!("/iiif/3/{id}/info.json"), &[("Accept", ld)]);
    assert_eq!(header(&head, "content-type"), Some(ld));
    assert_eq!(header(&head, "vary"), Some("Accept"));

    // Regions, at max: the region's own size unless that exceeds a limit of info.json, then
    // scaled down keeping its shape.
    let at_max = |rw: u32, rh: u32| {
        let (rw, rh) = (f64::from(rw), f64::from(rh));
        let scale = 1f64
            .min(max_w as f64 / rw)
            .min(max_h as f64 / rh)
            .min((max_area as f64 / (rw * rh)).sqrt());
        (rw * scale, rh * scale)
    };
    let region = |r: &str| picture(&c, &format!("/iiif/3/{id}/{r}/max/0/default.jpg")).dimensions();
    about(region("full"), at_max(w, h), "full");
    let side = w.min(h);
    about(region("square"), at_max(side, side), "square");
    assert_eq!(region("10,20,300,200"), (300, 200));
    // Partly outside: cropped to the image.
    assert_eq!(
        region(&format!("{},{},500,500", w - 100, h - 50)),
        (100, 50)
    );
    about(
        region("pct:25,25,50,50"),
        at_max(w / 2, h / 2),
        "pct region",
    );

    // Sizes.
    let (fw, fh) = (f64::from(w), f64::from(h));
    let size = |s: &str| picture(&c, &format!("/iiif/3/{id}/full/{s}/0/default.jpg")).dimensions();
    about(size("200,"), (200.0, fh * 200.0 / fw), "w,");
    about(size(",150"), (fw * 150.0 / fh, 150.0), ",h");
    about(size("pct:10"), (fw / 10.0, fh / 10.0), "pct:n");
    assert_eq!(size("123,45"), (123, 45), "w,h");
    let fit = (300.0 / fw).min(200.0 / fh);
    about(size("!300,200"), (fw * fit, fh * fit), "!w,h");
    // Upscaling with ^ (of a region small enough to stay within the limits); without it,
    // a size larger than the region is refused.
    let up =
        |s: &str| picture(&c, &format!("/iiif/3/{id}/0,0,300,200/{s}/0/default.jpg")).dimensions();
    assert_eq!(up("^450,"), (450, 300), "^w,");
    assert_eq!(up("^!900,900"), (900, 600), "^!w,h");
    let (status, _, _) = fetch(
        &c,
        &format!("/iiif/3/{id}/0,0,300,200/450,/0/default.jpg"),
        &[],
    );
    assert_eq!(status, 400, "450, of a 300-wide region without ^");
    // max within every advertised limit, and ^max too.
    for s in ["max", "^max"] {
        let (ow, oh) = size(s);
        assert!(
            u64::from(ow) <= max_w
                && u64::from(oh) <= max_h
                && u64::from(ow) * u64::from(oh) <= max_area,
            "{s}: {ow}×{oh} over the limits of info.json"
        );
    }

    // Rotation, mirroring, quality and format.
    let one = |r: &str, qf: &str| picture(&c, &format!("/iiif/3/{id}/0,0,200,100/max/{r}/{qf}"));
    assert_eq!(one("90", "default.jpg").dimensions(), (100, 200));
    assert_eq!(one("180", "default.jpg").dimensions(), (200, 100));
    assert_eq!(one("!270", "default.jpg").dimensions(), (100, 200));
    let gray = one("0", "gray.png");
    assert_eq!(gray.color().channel_count(), 1, "gray is one channel");
    let bitonal = one("0", "bitonal.png").into_luma8();
    assert!(
        bitonal.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255),
        "bitonal is black and white only"
    );
    assert_eq!(one("0", "color.png").dimensions(), (200, 100));

    // Errors: malformed is 400, well-formed but not offered is 501, unknown is 404; all of
    // them readable from the other origin (fetch checks), the 400 naming what was sent.
    for (path, status) in [
        (format!("/iiif/3/{id}/full/0,/0/default.jpg"), 400),
        (format!("/iiif/3/{id}/full/max/45/default.jpg"), 501),
        (format!("/iiif/3/{id}/full/max/0/default.webp"), 501),
        (format!("/iiif/3/{id}/full/max/0/best.jpg"), 400),
        (format!("/iiif/3/{id}/{w},0,10,10/max/0/default.jpg"), 400),
        ("/iiif/3/no-such-image/info.json".to_string(), 404),
    ] {
        let (got, head, _) = fetch(&c, &path, &[]);
        assert_eq!(got, status, "{path}: {head}");
    }
    let (_, _, body) = fetch(
        &c,
        &format!("/iiif/3/{id}/0,0,100,100/150,/0/default.jpg"),
        &[],
    );
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("'150,'") && !text.contains("upscale:"),
        "{text}"
    );

    // A percent-encoded id is the same image; an encoded slash is no path.
    let encoded = id.replace('-', "%2D");
    assert_eq!(
        json(&c, &format!("/iiif/3/{encoded}/info.json"))["id"],
        base
    );
    let (status, head, _) = fetch(&c, "/iiif/3/seahorse%2Fvalley/info.json", &[]);
    assert_eq!(
        status, 404,
        "refused at the canonical address, not redirected: {head}"
    );
}

#[test]
fn preflights_and_every_public_answer_of_the_canonical_address_allow_other_origins() {
    let c = Cluster::start();
    for path in [
        "/iiif/3/zone-plate/info.json",
        "/iiif/3/zone-plate/manifest.json",
        "/iiif/collection.json",
        "/tiles/zone-plate/0/0/0.jpg",
    ] {
        for addr in [c.plan.canonical.as_str(), c.plan.addr("node-c")] {
            let (status, head, _) = request(
                addr,
                "OPTIONS",
                path,
                &[
                    ORIGIN,
                    ("Access-Control-Request-Method", "GET"),
                    ("Access-Control-Request-Headers", "accept"),
                ],
            );
            assert_eq!(status, 204, "OPTIONS {addr}{path}: {head}");
            assert_eq!(header(&head, "access-control-allow-origin"), Some("*"));
            assert_eq!(
                header(&head, "access-control-allow-headers"),
                Some("accept")
            );
            assert!(
                header(&head, "access-control-allow-methods").is_some_and(|m| m.contains("GET"))
            );
        }
    }
    // Redirects, thumbnails, errors and pages: readable elsewhere (fetch checks each hop).
    for (path, status) in [
        ("/thumbs/zone-plate.jpg", 200),
        ("/meta/zone-plate.json", 200),
        ("/images/zone-plate", 200),
        ("/images/no-such-image", 404),
        ("/nowhere", 404),
        ("/", 200),
    ] {
        assert_eq!(fetch(&c, path, &[]).0, status, "{path}");
    }
    // The portal is not shared with other websites: no CORS, no preflight.
    let (_, head, _) = request(&c.plan.canonical, "GET", "/portal/", &[ORIGIN]);
    assert_eq!(header(&head, "access-control-allow-origin"), None, "{head}");
    let (status, _, _) = request(
        &c.plan.canonical,
        "OPTIONS",
        "/portal/login",
        &[ORIGIN, ("Access-Control-Request-Method", "POST")],
    );
    assert_ne!(status, 204);
}

#[test]
fn manifests_and_the_collection_follow_the_presentation_api_with_public_ids() {
    let c = Cluster::start();
    let public = c.public_url();
    let collection = json(&c, "/iiif/collection.json");
    assert_eq!(
        collection["@context"],
        "http://iiif.io/api/presentation/3/context.json"
    );
    assert_eq!(collection["type"], "Collection");
    assert_eq!(collection["id"], format!("{public}/iiif/collection.json"));
    let items = collection["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    for item in items {
        assert_eq!(item["type"], "Manifest");
        let id = item["id"].as_str().unwrap();
        let path = id
            .strip_prefix(&public)
            .unwrap_or_else(|| panic!("{id} is not under {public}"));
        assert!(item["label"].is_object(), "a language map: {item}");

        let m = json(&c, path);
        assert_eq!(
            m["@context"],
            "http://iiif.io/api/presentation/3/context.json"
        );
        assert_eq!(m["id"], id, "the manifest is where the collection says");
        assert_eq!(m["type"], "Manifest");
        assert!(m["label"].is_object());
        let canvas = &m["items"][0];
        assert_eq!(canvas["type"], "Canvas");
        assert!(
            canvas["label"].is_object(),
            "a canvas has a label: {canvas}"
        );
        assert!(canvas["id"].as_str().unwrap().starts_with(&public));
        let page = &canvas["items"][0];
        assert_eq!(page["type"], "AnnotationPage");
        let annotation = &page["items"][0];
        assert_eq!(annotation["type"], "Annotation");
        assert_eq!(annotation["motivation"], "painting");
        assert_eq!(annotation["target"], canvas["id"]);
        let body = &annotation["body"];
        assert_eq!(body["type"], "Image");
        assert_eq!(body["service"][0]["type"], "ImageService3");
        // The painted image and the service's info.json answer through the public address,
        // at the size the canvas says (or within the service's limits).
        let service = body["service"][0]["id"].as_str().unwrap();
        let info = json(
            &c,
            &format!("{}/info.json", service.strip_prefix(&public).unwrap()),
        );
        assert_eq!(info["id"], service);
        assert_eq!(
            (info["width"].clone(), info["height"].clone()),
            (canvas["width"].clone(), canvas["height"].clone())
        );
        let painted = picture(
            &c,
            body["id"].as_str().unwrap().strip_prefix(&public).unwrap(),
        );
        assert!(u64::from(painted.width()) <= info["maxWidth"].as_u64().unwrap());
        let thumb = m["thumbnail"][0]["id"].as_str().unwrap();
        picture(&c, thumb.strip_prefix(&public).unwrap());
        // JSON-LD when asked.
        let ld = "application/ld+json;profile=\"http://iiif.io/api/presentation/3/context.json\"";
        let (_, head, _) = fetch(&c, path, &[("Accept", ld)]);
        assert_eq!(header(&head, "content-type"), Some(ld));
    }
    // Whatever Host a visitor sends, the collection's ids stay ours.
    let (_, _, body) = request(
        &c.plan.canonical,
        "GET",
        "/iiif/collection.json",
        &[("Host", "evil.example")],
    );
    let forged: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(forged["id"], collection["id"]);
}
