//! Changing an image's details: the form, and the change sent to both replica nodes (the
//! nodes check that the signed-in account owns the image).

use serde::Deserialize;

use super::*;

#[derive(Deserialize)]
pub(super) struct EditForm {
    csrf: Option<String>,
    title: String,
    #[serde(default)]
    artist: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    keywords: String,
    #[serde(default)]
    rights: String,
}

pub(super) fn edit_page(p: &Portal, s: &Session, id: &str, error: Option<&str>) -> Response<Body> {
    let Some(row) = p.table.row(id) else {
        return html(
            StatusCode::NOT_FOUND,
            site::message("Not found", "There is no image with this name."),
        );
    };
    if !p.owns(&row.meta.owner, s) {
        return html(
            StatusCode::FORBIDDEN,
            site::message(
                "Not yours",
                "Only the account that uploaded an image may change its details.",
            ),
        );
    }
    let keywords = row.meta.keywords.join(", ");
    let values = site::portal::MetaValues {
        title: &row.meta.title,
        artist: &row.meta.artist,
        date: &row.meta.date,
        description: &row.meta.description,
        keywords: &keywords,
        rights: &row.meta.rights,
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    html(
        status,
        site::portal::edit(&s.user, &p.csrf(s), id, &values, error),
    )
}

pub(super) async fn edit(
    id: String,
    h: HeaderMap,
    c: Option<String>,
    f: EditForm,
    p: Arc<Portal>,
) -> Response<Body> {
    let s = match form_session(&p, c.as_deref(), &h, f.csrf.as_deref()) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let meta = cluster::ImageMeta {
        title: f.title,
        artist: f.artist,
        date: f.date,
        description: f.description,
        keywords: f
            .keywords
            .split(',')
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .collect(),
        rights: f.rights,
        owner: String::new(),
    };
    let body = Bytes::from(serde_json::to_vec(&meta).expect("plain data"));
    let path = format!("/internal/replicas/{id}/meta");
    let nodes: Vec<String> = p
        .table
        .replicas(&id)
        .into_iter()
        .map(|(n, _, _)| n)
        .collect();
    if nodes.is_empty() {
        return edit_page(&p, &s, &id, None);
    }
    let headers = [("content-type", "application/json".to_string())];
    let mut problems = Vec::new();
    for (node, answer) in to_replicas(&p, &nodes, &path, &s.user, &headers, body).await {
        match answer {
            Ok(a) if a.status.is_success() => {}
            Ok(a) if a.status == StatusCode::FORBIDDEN || a.status == StatusCode::BAD_REQUEST => {
                return edit_page(&p, &s, &id, Some(String::from_utf8_lossy(&a.body).trim()));
            }
            Ok(a) => problems.push(format!(
                "{node}: {}",
                String::from_utf8_lossy(&a.body).trim()
            )),
            Err(e) => problems.push(e),
        }
    }
    if problems.is_empty() {
        see_other(&format!("/portal/uploads?changed={id}"), None)
    } else {
        edit_page(
            &p,
            &s,
            &id,
            Some(&format!(
                "Saved where possible; not yet on every copy ({}). Save again later.",
                problems.join("; ")
            )),
        )
    }
}

#[derive(Deserialize)]
pub(super) struct WithdrawForm {
    csrf: Option<String>,
    /// The confirmation box: "yes" when ticked.
    confirm: Option<String>,
}

/// `POST /portal/images/ID/delete`: the owner withdraws an image, once the confirmation box
/// is ticked. Every node holding a replica removes it and keeps a tombstone; a node that does
/// not answer now removes its copy when it does (the others' tombstones tell it).
pub(super) async fn withdraw(
    id: String,
    h: HeaderMap,
    c: Option<String>,
    f: WithdrawForm,
    p: Arc<Portal>,
) -> Response<Body> {
    let s = match form_session(&p, c.as_deref(), &h, f.csrf.as_deref()) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    if f.confirm.as_deref() != Some("yes") {
        return edit_page(
            &p,
            &s,
            &id,
            Some("Tick the box to confirm that the image is to be withdrawn for good."),
        );
    }
    match p.table.row(&id) {
        Some(row) if p.owns(&row.meta.owner, &s) => {}
        // The same pages as the form shows: not found, or not yours.
        _ => return edit_page(&p, &s, &id, None),
    }
    let path = format!("/internal/images/{id}/delete");
    let nodes: Vec<String> = p
        .table
        .replicas(&id)
        .into_iter()
        .map(|(n, _, _)| n)
        .collect();
    let mut done = 0;
    let mut problems = Vec::new();
    for (node, answer) in to_replicas(&p, &nodes, &path, &s.user, &[], Bytes::new()).await {
        match answer {
            Ok(a) if a.status.is_success() => done += 1,
            Ok(a) => problems.push(format!(
                "{node}: {}",
                String::from_utf8_lossy(&a.body).trim()
            )),
            Err(e) => problems.push(e),
        }
    }
    if done > 0 {
        see_other(&format!("/portal/uploads?withdrawn={id}"), None)
    } else {
        edit_page(
            &p,
            &s,
            &id,
            Some(&format!(
                "Not withdrawn: no copy could be reached ({}). Try again later.",
                problems.join("; ")
            )),
        )
    }
}

/// The session of a form that changes something: signed in, sent from this site, with the
/// session's CSRF token. Otherwise the answer to give.
fn form_session(
    p: &Portal,
    cookie: Option<&str>,
    h: &HeaderMap,
    csrf: Option<&str>,
) -> Result<Session, Box<Response<Body>>> {
    let Some(s) = p.session(cookie) else {
        return Err(Box::new(see_other("/portal/", None)));
    };
    if !same_origin(h) || !p.csrf_ok(&s, csrf) {
        return Err(Box::new(plain(
            StatusCode::FORBIDDEN,
            "the form is stale; reload the page and try again",
        )));
    }
    Ok(s)
}

/// The same signed POST to every node in `nodes` (an image's replica nodes), for `user`; each
/// node's answer, in order.
async fn to_replicas(
    p: &Portal,
    nodes: &[String],
    path: &str,
    user: &str,
    headers: &[(&str, String)],
    body: Bytes,
) -> Vec<(String, Result<Answer, String>)> {
    let mut answers = Vec::new();
    for node in nodes {
        let answer = p
            .call(
                node,
                Method::POST,
                path,
                user,
                headers,
                Gathered::of(body.clone()),
                Duration::from_secs(10),
            )
            .await;
        answers.push((node.clone(), answer));
    }
    answers
}
