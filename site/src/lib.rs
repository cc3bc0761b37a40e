//! The pages and their scripts (viewer, gallery, upload portal, operator dashboard), compiled
//! into the binary so that a node serves them without any file outside its disks.
//!
//! It must never contain behaviour beyond filling a template: the servers own the logic. Every
//! value put into a page goes through [`escape`].

/// The shared style sheet, served at `/site/style.css`.
pub const STYLE_CSS: &str = include_str!("../assets/style.css");
/// The deep-zoom viewer script, served at `/site/viewer.js`.
pub const VIEWER_JS: &str = include_str!("../assets/viewer.js");
/// The portal's script (chunked, resumable uploads; the status that follows itself), served
/// at `/portal/portal.js`.
pub const PORTAL_JS: &str = include_str!("../assets/portal.js");

pub mod dashboard;
pub mod portal;

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page around `body` (already HTML). `title` is plain text.
pub fn page(title: &str, body: &str) -> String {
    page_with_head(title, "", body)
}

/// [`page`] with more in its `<head>` (already HTML).
pub fn page_with_head(title: &str, head: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><link rel=\"stylesheet\" href=\"/site/style.css\">{head}</head>\
         <body><header><a href=\"/\">Tertiary Disk</a></header><main>{body}</main>\
         <footer class=\"muted\">Served by Tertiary Disk</footer></body></html>\n",
        title = escape(title)
    )
}

/// One entry of a gallery page.
#[derive(Debug, Clone)]
pub struct GalleryItem<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub artist: &'a str,
    pub date: &'a str,
}

/// The list of thumbnails of a gallery; each links to `{view}{id}` (the backend's `/view/` or
/// the frontend's `/images/`).
fn gallery_list(items: &[GalleryItem], view: &str) -> String {
    let mut list = String::from("<ul class=\"gallery\">");
    for it in items {
        let id = escape(it.id);
        list.push_str(&format!(
            "<li><a href=\"{view}{id}\"><img src=\"/thumbs/{id}.jpg\" alt=\"{title}\" loading=\"lazy\">\
             <div class=\"caption\"><strong>{title}</strong><br><span class=\"muted\">{artist}, {date}</span></div></a></li>",
            title = escape(it.title),
            artist = escape(it.artist),
            date = escape(it.date),
        ));
    }
    if items.is_empty() {
        list.push_str("<li class=\"muted\">No images yet.</li>");
    }
    list.push_str("</ul>");
    list
}

/// A page of thumbnails linking to the viewer; `next`, the address of the page after it.
pub fn gallery(heading: &str, items: &[GalleryItem], next: Option<&str>) -> String {
    let more = next.map_or(String::new(), |n| {
        format!("<p><a rel=\"next\" href=\"{}\">More</a></p>", escape(n))
    });
    let body = format!(
        "<h1>{}</h1>{}{more}",
        escape(heading),
        gallery_list(items, "/view/")
    );
    page(heading, &body)
}

/// The public gallery and its search: a form, one page of results, and links to the pages
/// before and after (already-built query strings, or None).
pub struct SearchPage<'a> {
    pub heading: &'a str,
    /// The form's values as the visitor typed them.
    pub q: &'a str,
    pub artist: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub items: Vec<GalleryItem<'a>>,
    /// How many images match in all, and which page of how many this is (from 1).
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    pub prev: Option<String>,
    pub next: Option<String>,
    /// The results' order and a link to the same search in the other, when words were asked.
    pub order: Option<SearchOrder>,
}

/// How a search's results are ordered, and the link to the other order.
pub struct SearchOrder {
    /// Titles holding every word first (else by title only).
    pub best_first: bool,
    pub other: String,
}

/// The gallery of the canonical address: works without JavaScript, every link a plain link.
pub fn search(p: &SearchPage) -> String {
    let field = |name: &str, label: &str, value: &str, kind: &str| {
        format!(
            "<label>{label} <input type=\"{kind}\" name=\"{name}\" value=\"{}\"></label>",
            escape(value)
        )
    };
    let mut body = format!(
        "<h1>{}</h1><form class=\"search\" action=\"/search\" method=\"get\" role=\"search\">{}{}{}{}\
         <button type=\"submit\">Search</button></form>",
        escape(p.heading),
        field("q", "Words", p.q, "search"),
        field("artist", "Artist", p.artist, "text"),
        field("from", "From year", p.from, "number"),
        field("to", "To year", p.to, "number"),
    );
    body.push_str(&format!(
        "<p class=\"muted result-count\">{} {} · page {} of {}</p>",
        p.total,
        if p.total == 1 { "image" } else { "images" },
        p.page,
        p.pages.max(1)
    ));
    if let Some(order) = &p.order {
        let (now, other) = if order.best_first {
            (
                "Best matches first (every word in the title)",
                "Sort by title",
            )
        } else {
            ("Sorted by title", "Best matches first")
        };
        body.push_str(&format!(
            "<p class=\"muted sort-order\">{now} · <a href=\"{}\">{other}</a></p>",
            escape(&order.other)
        ));
    }
    body.push_str(&gallery_list(&p.items, "/images/"));
    body.push_str("<nav class=\"pager\">");
    for (label, link) in [("← Previous", &p.prev), ("Next →", &p.next)] {
        match link {
            Some(href) => body.push_str(&format!("<a href=\"{}\">{label}</a>", escape(href))),
            None => body.push_str(&format!("<span>{label}</span>")),
        }
    }
    body.push_str("</nav>");
    page(p.heading, &body)
}

/// A short page that explains itself: an unknown image, or none of its copies reachable now.
pub fn message(title: &str, text: &str) -> String {
    page(
        title,
        &format!(
            "<h1>{}</h1><p>{}</p><p><a href=\"/\">Back to the collection</a></p>",
            escape(title),
            escape(text)
        ),
    )
}

/// What the plain-HTML viewer shows: a window of tiles of one level.
pub struct ViewerWindow<'a> {
    pub id: &'a str,
    pub title: &'a str,
    /// (label, value) rows shown under the image.
    pub metadata: Vec<(&'a str, &'a str)>,
    pub level: usize,
    pub levels: usize,
    /// Full image size and tile side, for the script.
    pub width: u32,
    pub height: u32,
    pub tile_size: u32,
    /// Origins that serve this image's tiles, this one first ("" = same origin).
    pub replicas: &'a [String],
    /// Tile rows of the window, each a list of (col, row, width, height).
    pub tiles: Vec<Vec<(u32, u32, u32, u32)>>,
    /// Links for zoom and pan: (label, query or None when impossible).
    pub controls: Vec<(&'a str, Option<String>)>,
    /// Where those links go, before the id: the canonical address's `/images/` (so a click
    /// goes through a frontend, to whichever replica is healthy) or this server's `/view/`.
    pub nav: &'a str,
}

/// The viewer page that works without JavaScript: the current window as a grid of `<img>`
/// tiles, with zoom and pan links that reload the page.
pub fn viewer(w: &ViewerWindow) -> String {
    let id = escape(w.id);
    let mut body = format!(
        "<h1>{}</h1><p class=\"muted level-note\">Level {} of {} (0 is full size)</p><nav class=\"controls\">",
        escape(w.title),
        w.level,
        w.levels - 1
    );
    for (label, link) in &w.controls {
        match link {
            Some(q) => body.push_str(&format!(
                "<a href=\"{}{id}?{}\">{}</a>",
                escape(w.nav),
                escape(q),
                escape(label)
            )),
            None => body.push_str(&format!("<span>{}</span>", escape(label))),
        }
    }
    let replicas = format!(
        "[{}]",
        w.replicas
            .iter()
            .map(|r| format!("\"{}\"", r.replace(['\\', '"'], "")))
            .collect::<Vec<_>>()
            .join(",")
    );
    body.push_str(&format!(
        "</nav><div class=\"viewer\" id=\"viewer\" data-id=\"{id}\" data-width=\"{}\" \
         data-height=\"{}\" data-tile=\"{}\" data-levels=\"{}\" data-replicas=\"{}\">\
         <div class=\"grid\">",
        w.width,
        w.height,
        w.tile_size,
        w.levels,
        escape(&replicas)
    ));
    for row in &w.tiles {
        body.push_str("<div style=\"display:flex\">");
        for &(c, r, tw, th) in row {
            body.push_str(&format!(
                "<img src=\"/tiles/{id}/{}/{c}/{r}.jpg\" width=\"{tw}\" height=\"{th}\" alt=\"\">",
                w.level
            ));
        }
        body.push_str("</div>");
    }
    body.push_str("</div></div><dl class=\"meta\">");
    for (k, v) in &w.metadata {
        body.push_str(&format!("<dt>{}</dt><dd>{}</dd>", escape(k), escape(v)));
    }
    body.push_str("</dl><script src=\"/site/viewer.js\" defer></script>");
    page(w.title, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_in_titles() {
        let html = gallery(
            "x",
            &[GalleryItem {
                id: "a",
                title: "<script>alert(1)</script>",
                artist: "A & B",
                date: "1900",
            }],
            Some("/?after=\"><script>"),
        );
        assert!(!html.contains("<script>alert") && !html.contains("\"><script>"));
        assert!(html.contains("&lt;script&gt;") && html.contains("A &amp; B"));
    }
}
