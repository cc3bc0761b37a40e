//! The IIIF Presentation 3.0 collection of every published image, in bounded pieces: at most
//! [`PER_PAGE`] items in any answer, whatever the collection's size. A collection that fits in
//! one page lists its manifests; a larger one lists nested collections
//! (`/iiif/collection/N.json`, N from 1), each listing [`PER_PAGE`] manifests by title. So no
//! request does work or sends bytes in proportion to the whole collection, and every answer can
//! be cached for a while.
//!
//! Pages are cut by title order: an image added moves the ones after it, so a page's content
//! shifts as the collection grows (the top collection and each page say so by their labels).

use serde_json::{json, Value};

/// The most items (manifests or nested collections) in one answer.
pub const PER_PAGE: usize = 1000;

/// How long a viewer or a cache may keep an answer before asking again.
pub const MAX_AGE_SECS: u32 = 300;

const CONTEXT: &str = "http://iiif.io/api/presentation/3/context.json";

/// The top collection over `total` images; `first_page` holds the first [`PER_PAGE`] (id,
/// title) pairs by title, listed directly when they are all there is.
pub fn top(public_url: &str, total: usize, first_page: &[(String, String)]) -> Value {
    let items: Vec<Value> = if total <= PER_PAGE {
        first_page
            .iter()
            .map(|(id, title)| manifest(public_url, id, title))
            .collect()
    } else {
        (1..=pages(total))
            .map(|n| {
                let (from, to) = span(n, total);
                json!({
                    "id": page_id(public_url, n),
                    "type": "Collection",
                    "label": { "en": [format!("Images {from}–{to} of {total}, by title")] },
                })
            })
            .collect()
    };
    json!({
        "@context": CONTEXT,
        "id": format!("{public_url}/iiif/collection.json"),
        "type": "Collection",
        "label": { "en": [format!("Every published image ({total})")] },
        "items": items,
    })
}

/// Page `n` (from 1) of a collection of `total`, listing `items` (id, title).
pub fn page(public_url: &str, n: usize, total: usize, items: &[(String, String)]) -> Value {
    let (from, to) = span(n, total);
    json!({
        "@context": CONTEXT,
        "id": page_id(public_url, n),
        "type": "Collection",
        "label": { "en": [format!("Images {from}–{to} of {total}, by title")] },
        "partOf": [{
            "id": format!("{public_url}/iiif/collection.json"),
            "type": "Collection",
        }],
        "items": items
            .iter()
            .map(|(id, title)| manifest(public_url, id, title))
            .collect::<Vec<_>>(),
    })
}

/// How many pages a collection of `total` has (none when it fits in the top collection).
pub fn pages(total: usize) -> usize {
    if total <= PER_PAGE {
        0
    } else {
        total.div_ceil(PER_PAGE)
    }
}

/// The first image of page `n` (from 1), counted from 0.
pub fn first_of(n: usize) -> usize {
    n.saturating_sub(1).saturating_mul(PER_PAGE)
}

/// The images page `n` holds, counted from 1 as people do.
fn span(n: usize, total: usize) -> (usize, usize) {
    let first = first_of(n);
    (first + 1, (first + PER_PAGE).min(total))
}

fn page_id(public_url: &str, n: usize) -> String {
    format!("{public_url}/iiif/collection/{n}.json")
}

fn manifest(public_url: &str, id: &str, title: &str) -> Value {
    json!({
        "id": format!("{public_url}/iiif/3/{id}/manifest.json"),
        "type": "Manifest",
        "label": { "none": [title] },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(n: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("img-{i}"), format!("Title {i}")))
            .collect()
    }

    #[test]
    fn a_small_collection_lists_its_manifests() {
        let c = top("https://x", 3, &images(3));
        assert_eq!(c["items"].as_array().unwrap().len(), 3);
        assert_eq!(c["items"][0]["type"], "Manifest");
        assert_eq!(c["items"][0]["id"], "https://x/iiif/3/img-0/manifest.json");
        assert_eq!(pages(PER_PAGE), 0);
    }

    #[test]
    fn a_large_collection_is_pages_of_bounded_size() {
        let total = 2 * PER_PAGE + 1;
        let c = top("https://x", total, &images(PER_PAGE));
        let items = c["items"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[2]["type"], "Collection");
        assert_eq!(items[2]["id"], "https://x/iiif/collection/3.json");
        assert_eq!(
            items[2]["label"]["en"][0],
            "Images 2001–2001 of 2001, by title"
        );
        assert_eq!((first_of(1), first_of(3)), (0, 2 * PER_PAGE));
        let p = page("https://x", 3, total, &images(1));
        assert_eq!(p["partOf"][0]["id"], "https://x/iiif/collection.json");
        assert_eq!(p["items"].as_array().unwrap().len(), 1);
        // A million images: the top collection is a thousand links.
        assert_eq!(pages(1_000_000), 1000);
        let big = top("https://x", 1_000_000, &[]).to_string();
        assert!(big.len() < 200_000, "{} bytes", big.len());
    }
}
