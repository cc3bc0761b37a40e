//! The upload portal's pages: sign-in, upload (with one progress bar per file), the status of
//! each upload through its stages, and the metadata form. Every value is escaped: a title with
//! markup in it is shown as the text it is.

use crate::{escape, page_with_head};

/// What an upload that received no chunk for too long says, everywhere: its status (`error`,
/// with the stage `failed`), the 410 a resume of it is answered, the page.
pub const EXPIRED: &str = "expired — choose the file again";

/// An upload that expired (see [`EXPIRED`]), from its stage key and error.
pub fn is_expired(stage: &str, error: Option<&str>) -> bool {
    stage == "failed" && error == Some(EXPIRED)
}

/// The stages an upload goes through, as the status page names them.
pub const STAGES: [(&str, &str); 6] = [
    ("received", "received"),
    ("durable", "durable on two nodes"),
    ("tiling", "tiling"),
    ("placing", "placing replicas"),
    ("verifying", "verifying"),
    ("published", "published"),
];

fn portal_page(title: &str, csrf: Option<&str>, body: &str) -> String {
    let head = csrf.map_or_else(String::new, |t| {
        format!(
            "<meta name=\"csrf-token\" content=\"{}\"><script src=\"/portal/portal.js\" defer></script>",
            escape(t)
        )
    });
    page_with_head(title, &head, body)
}

fn signed_in_bar(user: &str, csrf: &str) -> String {
    format!(
        "<nav class=\"portal-bar\"><span>Signed in as <strong>{}</strong></span>\
         <a href=\"/portal/\">Upload</a><a id=\"status-link\" href=\"/portal/uploads\">My uploads</a>\
         <form id=\"signout\" method=\"post\" action=\"/portal/logout\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Sign out</button></form></nav>",
        escape(user),
        escape(csrf)
    )
}

/// The sign-in page, with an error line after a failed attempt.
pub fn signin(error: Option<&str>) -> String {
    signin_to(error, None)
}

/// The sign-in page that leads back to `next` (a path on this site, already checked) once
/// signed in: the operator's dashboard sends its visitors here.
pub fn signin_to(error: Option<&str>, next: Option<&str>) -> String {
    let error = error.map_or_else(String::new, |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))
    });
    let to_ops = next.is_some_and(|n| n.starts_with("/ops/"));
    let (title, intro) = if to_ops {
        (
            "Sign in to the operator's dashboard",
            "For operators of this cluster (<code>td user add --role operator</code>).",
        )
    } else {
        (
            "Sign in to upload",
            "For content providers of this collection. Accounts are made by the operator \
             (<code>td user add</code>).",
        )
    };
    let next = next.map_or_else(String::new, |n| {
        format!(
            "<input type=\"hidden\" name=\"next\" value=\"{}\">",
            escape(n)
        )
    });
    portal_page(
        title,
        None,
        &format!(
            "<h1>{title}</h1><p class=\"muted\">{intro}</p>{error}\
             <form id=\"signin\" class=\"portal-form\" method=\"post\" action=\"/portal/login\">{next}\
             <label>Name <input name=\"name\" autocomplete=\"username\" required maxlength=\"32\"></label>\
             <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
             <button type=\"submit\">Sign in</button></form>"
        ),
    )
}

fn meta_fields(values: &MetaValues) -> String {
    let input = |id: &str, label: &str, value: &str, max: usize, extra: &str| {
        format!(
            "<label>{label} <input id=\"{id}\" name=\"{id}\" value=\"{}\" maxlength=\"{max}\"{extra}></label>",
            escape(value)
        )
    };
    format!(
        "{}{}{}<label>Description <textarea id=\"description\" name=\"description\" maxlength=\"5000\" rows=\"4\">{}</textarea></label>{}{}",
        input("title", "Title", values.title, 200, " required"),
        input("artist", "Artist", values.artist, 200, ""),
        input("date", "Date", values.date, 100, ""),
        escape(values.description),
        input("keywords", "Keywords (comma-separated)", values.keywords, 2000, ""),
        input("rights", "Rights", values.rights, 1000, ""),
    )
}

/// What the metadata fields show.
#[derive(Debug, Default, Clone, Copy)]
pub struct MetaValues<'a> {
    pub title: &'a str,
    pub artist: &'a str,
    pub date: &'a str,
    pub description: &'a str,
    pub keywords: &'a str,
    pub rights: &'a str,
}

/// The upload page: files and their metadata; the script sends them in chunks with a progress
/// bar each.
pub fn upload(user: &str, csrf: &str) -> String {
    portal_page(
        "Upload originals",
        Some(csrf),
        &format!(
            "{}<h1>Upload originals</h1>\
             <noscript><p class=\"error\">Uploading needs JavaScript: large originals are sent in \
             pieces so that an interrupted upload resumes where it stopped.</p></noscript>\
             <form id=\"upload\" class=\"portal-form\">\
             <label>Originals (JPEG, PNG or TIFF; several at once share the details below) \
             <input id=\"file\" type=\"file\" multiple required accept=\"image/jpeg,image/png,image/tiff,.tif,.tiff,.jpg,.jpeg,.png\"></label>\
             {}<button id=\"send\" type=\"submit\">Upload</button></form>\
             <ul id=\"progress\" class=\"uploads\"></ul>\
             <p class=\"muted\">An upload is safe once it says <em>durable on two nodes</em>; you may \
             close this page then. Follow it to publication on <a href=\"/portal/uploads\">My uploads</a>.</p>",
            signed_in_bar(user, csrf),
            meta_fields(&MetaValues::default())
        ),
    )
}

/// One upload as the status page lists it.
#[derive(Debug, Clone)]
pub struct UploadItem<'a> {
    pub id: &'a str,
    pub image: &'a str,
    pub title: &'a str,
    pub filename: &'a str,
    /// The stage's key (`receiving`, `durable`, … `published`, `failed`).
    pub stage: &'a str,
    pub received: u64,
    pub length: u64,
    pub waiting: Option<&'a str>,
    pub error: Option<&'a str>,
}

/// The words for a stage key.
pub fn stage_words(stage: &str) -> &str {
    match stage {
        "receiving" => "receiving",
        "failed" => "failed",
        "withdrawn" => "withdrawn",
        other => STAGES
            .iter()
            .find(|(k, _)| *k == other)
            .map_or(other, |(_, w)| w),
    }
}

/// One `li` of the status list (also what the script rebuilds).
pub fn upload_item(u: &UploadItem) -> String {
    // An expired upload is not a fault: its stage reads "expired", its error what to do.
    let words = if is_expired(u.stage, u.error) {
        "expired"
    } else {
        stage_words(u.stage)
    };
    let mut li = format!(
        "<li class=\"upload\" data-id=\"{}\" data-stage=\"{}\"><strong class=\"title\">{}</strong> \
         <span class=\"muted\">{}</span><br><span class=\"stage\">{}</span>",
        escape(u.id),
        escape(u.stage),
        escape(u.title),
        escape(u.filename),
        escape(words),
    );
    if u.stage == "receiving" && u.length > 0 {
        li.push_str(&format!(
            " <progress value=\"{}\" max=\"{}\"></progress>",
            u.received, u.length
        ));
    }
    if let Some(w) = u.waiting {
        li.push_str(&format!("<br><span class=\"waiting\">{}</span>", escape(w)));
    }
    if let Some(e) = u.error {
        li.push_str(&format!("<br><span class=\"error\">{}</span>", escape(e)));
    }
    if u.stage == "published" {
        let image = escape(u.image);
        li.push_str(&format!(
            "<br><a class=\"view\" href=\"/images/{image}\">View</a> · \
             <a class=\"edit\" href=\"/portal/images/{image}/edit\">Edit details</a>"
        ));
    }
    li.push_str("</li>");
    li
}

/// The status page: every upload of the account and where it is. Refreshes itself: by script
/// every second, or without one by a meta refresh while anything is under way.
/// `usage` is what the account has used of its daily quotas, as a sentence.
pub fn uploads(
    user: &str,
    csrf: &str,
    items: &[UploadItem],
    notice: Option<&str>,
    problems: &[String],
    usage: &str,
) -> String {
    let mut body = signed_in_bar(user, csrf);
    body.push_str("<h1>My uploads</h1>");
    body.push_str(&format!(
        "<p class=\"muted\" id=\"quota\">{}</p>",
        escape(usage)
    ));
    if let Some(n) = notice {
        body.push_str(&format!(
            "<p class=\"notice\" role=\"status\">{}</p>",
            escape(n)
        ));
    }
    for p in problems {
        body.push_str(&format!("<p class=\"waiting\">{}</p>", escape(p)));
    }
    body.push_str("<ol class=\"stages\">");
    for (_, words) in STAGES {
        body.push_str(&format!("<li>{words}</li>"));
    }
    body.push_str("</ol><ul id=\"uploads\" class=\"uploads\">");
    for u in items {
        body.push_str(&upload_item(u));
    }
    if items.is_empty() {
        body.push_str("<li class=\"muted\">No uploads yet.</li>");
    }
    body.push_str("</ul>");
    let busy = items
        .iter()
        .any(|u| u.stage != "published" && u.stage != "failed");
    let head = format!(
        "{}<meta name=\"csrf-token\" content=\"{}\"><script src=\"/portal/portal.js\" defer></script>",
        if busy {
            "<noscript><meta http-equiv=\"refresh\" content=\"3\"></noscript>"
        } else {
            ""
        },
        escape(csrf)
    );
    page_with_head("My uploads", &head, &body)
}

/// The form that changes an image's details (its owner only).
pub fn edit(
    user: &str,
    csrf: &str,
    image: &str,
    values: &MetaValues,
    error: Option<&str>,
) -> String {
    let error = error.map_or_else(String::new, |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))
    });
    portal_page(
        "Edit details",
        Some(csrf),
        &format!(
            "{}<h1>Edit details of {}</h1>{error}\
             <form id=\"edit\" class=\"portal-form\" method=\"post\" action=\"/portal/images/{}/edit\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">{}<button type=\"submit\">Save</button></form>\
             <h2>Withdraw this image</h2>\
             <form id=\"withdraw\" class=\"portal-form\" method=\"post\" action=\"/portal/images/{}/delete\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <p>It disappears from the collection within seconds and both of its copies are removed. \
             This cannot be undone: to show it again, upload the original again.</p>\
             <label><input type=\"checkbox\" name=\"confirm\" value=\"yes\" required> \
             I want {} withdrawn for good</label>\
             <button type=\"submit\" class=\"danger\">Withdraw</button></form>",
            signed_in_bar(user, csrf),
            escape(image),
            escape(image),
            escape(csrf),
            meta_fields(values),
            escape(image),
            escape(csrf),
            escape(image)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item<'a>(stage: &'a str, error: Option<&'a str>) -> UploadItem<'a> {
        UploadItem {
            id: "0123456789abcdef",
            image: "noise-012345",
            title: "Noise",
            filename: "noise.png",
            stage,
            received: 5,
            length: 20,
            waiting: None,
            error,
        }
    }

    #[test]
    fn an_expired_upload_reads_expired_and_says_what_to_do_and_a_failed_one_stays_failed() {
        let li = upload_item(&item("failed", Some(EXPIRED)));
        assert!(li.contains("<span class=\"stage\">expired</span>"), "{li}");
        assert!(
            li.contains("<span class=\"error\">expired — choose the file again</span>"),
            "{li}"
        );
        assert!(
            li.contains("data-stage=\"failed\""),
            "the wire stage stays: {li}"
        );
        let li = upload_item(&item("failed", Some("not a JPEG, PNG or TIFF image")));
        assert!(li.contains("<span class=\"stage\">failed</span>"), "{li}");
        assert!(!is_expired("receiving", Some(EXPIRED)));
    }

    #[test]
    fn the_page_script_knows_the_same_sentence() {
        assert!(
            crate::PORTAL_JS.contains(&format!("const EXPIRED = \"{EXPIRED}\";")),
            "site/assets/portal.js must say what the server says"
        );
    }
}
