//! `GET /api/v1/images` in pages: `limit` and `cursor`, the `Link` and
//! `X-Next-Cursor` headers, the (daemon name, image ID) order, and a cursor
//! that stays right while a rescan replaces the inventory between two pages.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::fixtures::Fixtures;
use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// One page: its images, the path of the `Link: <…>; rel="next"` header and
/// `X-Next-Cursor`.
struct Page {
    images: Vec<Value>,
    link: Option<String>,
    cursor: Option<String>,
}

async fn page(app: &TestApp, path: &str) -> Page {
    let response = app.get(path).await;
    assert_eq!(response.status(), 200, "GET {path}");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let link = header("link").map(|l| {
        let target = l
            .strip_prefix('<')
            .and_then(|l| l.strip_suffix(">; rel=\"next\""))
            .unwrap_or_else(|| panic!("not a next link: {l}"));
        target.to_owned()
    });
    let cursor = header("x-next-cursor");
    assert_eq!(link.is_some(), cursor.is_some(), "both headers or neither");
    let images = response.json::<Value>().await.unwrap();
    Page {
        images: images.as_array().unwrap().clone(),
        link,
        cursor,
    }
}

/// Every page from `path` on, following the Link headers.
async fn follow(app: &TestApp, path: &str) -> Vec<Page> {
    let mut pages = vec![page(app, path).await];
    while let Some(next) = pages.last().unwrap().link.clone() {
        assert!(pages.len() < 100, "the links go round in circles");
        pages.push(page(app, &next).await);
    }
    pages
}

/// (daemon, ID) of each image, in the answer's order.
fn keys(images: &[Value]) -> Vec<(String, String)> {
    images
        .iter()
        .map(|i| {
            (
                i["daemon"].as_str().unwrap().to_owned(),
                i["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn assert_strictly_ordered(keys: &[(String, String)]) {
    for pair in keys.windows(2) {
        assert!(pair[0] < pair[1], "out of order: {pair:?}");
    }
}

async fn rescan(app: &TestApp) {
    let (status, body) = app.post_json("/api/v1/scan", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    for daemon in body.as_array().unwrap() {
        assert_eq!(daemon["ok"], true, "{body}");
    }
}

/// `n` images tagged `repo:0`…, one small shared layer each with its own
/// config, made by one `docker load`: hundreds of images in a second.
/// Removed again when dropped.
struct ManyImages<'a> {
    fx: &'a Fixtures,
    tags: Vec<String>,
}

impl<'a> ManyImages<'a> {
    fn load(fx: &'a Fixtures, repo: &str, n: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("files");
        std::fs::create_dir(&files).unwrap();
        std::fs::write(files.join("hello"), repo).unwrap();
        let layer = Command::new("tar")
            .arg("-C")
            .arg(&files)
            .args(["-c", "."])
            .output()
            .unwrap();
        assert!(layer.status.success());
        let diff_id = format!("sha256:{:x}", Sha256::digest(&layer.stdout));
        std::fs::write(dir.path().join("layer.tar"), &layer.stdout).unwrap();
        let mut manifest = Vec::new();
        let mut tags = Vec::new();
        for i in 0..n {
            let config = json!({
                "architecture": "amd64",
                "os": "linux",
                "created": "2026-01-01T00:00:00Z",
                "config": {"Labels": {"n": i.to_string()}},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            });
            let name = format!("config{i}.json");
            std::fs::write(dir.path().join(&name), config.to_string()).unwrap();
            let tag = format!("{repo}:{i}");
            manifest.push(json!({"Config": name, "RepoTags": [tag], "Layers": ["layer.tar"]}));
            tags.push(tag);
        }
        std::fs::remove_dir_all(&files).unwrap();
        std::fs::write(
            dir.path().join("manifest.json"),
            Value::from(manifest).to_string(),
        )
        .unwrap();
        let archive = dir.path().join("images.tar");
        let tar = Command::new("tar")
            .arg("-C")
            .arg(dir.path())
            .arg("-cf")
            .arg(&archive)
            .args(["manifest.json", "layer.tar"])
            .args((0..n).map(|i| format!("config{i}.json")))
            .status()
            .unwrap();
        assert!(tar.success());
        fx.docker(&["load", "-q", "-i", archive.to_str().unwrap()]);
        Self { fx, tags }
    }
}

impl Drop for ManyImages<'_> {
    fn drop(&mut self) {
        // Other tests on this engine list every image it holds.
        let mut args = vec!["rmi"];
        args.extend(self.tags.iter().map(String::as_str));
        self.fx.try_docker(&args);
    }
}

#[tokio::test]
async fn the_first_page_is_500_images_in_daemon_then_id_order() {
    let app = spawn_app_with_daemons(&[("b", engine_b_sock())]).await;
    let fx = Fixtures::new(&engine_b_sock());
    let _many = ManyImages::load(&fx, &fx.unique("many"), 501);
    rescan(&app).await;

    let first = page(&app, "/api/v1/images").await;
    assert_eq!(first.images.len(), 500);
    assert_strictly_ordered(&keys(&first.images));
    let link = first.link.expect("more than 500 images: a next page");
    assert!(
        link.starts_with("/api/v1/images?cursor="),
        "no other parameters to keep: {link}"
    );

    let all = page(&app, "/api/v1/images?limit=5000").await;
    assert!(all.images.len() > 500);
    assert!(all.link.is_none(), "every image fits in 5000");
    assert_strictly_ordered(&keys(&all.images));
    assert_eq!(
        keys(&all.images)[..500],
        keys(&first.images)[..],
        "the first page is the start of the same order"
    );
    let rest = page(&app, &link).await;
    assert_eq!(keys(&rest.images)[0], keys(&all.images)[500]);
}

#[tokio::test]
async fn following_the_links_returns_every_matching_image_once() {
    let app = spawn_app_with_daemons(&[("b", engine_a_sock()), ("a", engine_a_sock())]).await;
    let fx = Fixtures::new(&engine_a_sock());
    let mut ids = BTreeSet::new();
    for n in 0..5 {
        ids.insert(fx.import(&fx.unique(&format!("pg:{n}")), &[("f", 100 + n)]));
    }
    fx.import(&fx.unique("other:1"), &[("f", 100)]);
    rescan(&app).await;

    let q = fx.unique("pg");
    let pages = follow(&app, &format!("/api/v1/images?q={q}&limit=2")).await;
    assert_eq!(
        pages.iter().map(|p| p.images.len()).collect::<Vec<_>>(),
        [2, 2, 2, 2, 2]
    );
    for page in &pages[..4] {
        let link = page.link.as_deref().unwrap();
        assert!(
            link.contains(&format!("q={q}")) && link.contains("limit=2"),
            "{link}"
        );
    }
    let seen: Vec<(String, String)> = pages.iter().flat_map(|p| keys(&p.images)).collect();
    let expected: Vec<(String, String)> = ["a", "b"]
        .into_iter()
        .flat_map(|d| ids.iter().map(move |id| (d.to_owned(), id.clone())))
        .collect();
    assert_eq!(seen, expected, "each image once per daemon, in order");
}

#[tokio::test]
async fn the_last_page_has_no_link_and_no_cursor() {
    let app = spawn_app_with_daemons(&[("a", engine_a_sock())]).await;
    let fx = Fixtures::new(&engine_a_sock());
    let id = fx.import(&fx.unique("last:1"), &[("f", 10)]);
    rescan(&app).await;

    let only = page(&app, &format!("/api/v1/images?q={}", fx.unique("last"))).await;
    assert_eq!(keys(&only.images), [("a".to_owned(), id)]);
    assert!(only.link.is_none() && only.cursor.is_none());
    let exact = page(
        &app,
        &format!("/api/v1/images?q={}&limit=1", fx.unique("last")),
    )
    .await;
    assert!(
        exact.link.is_none(),
        "a page exactly full, with nothing after it, is the last"
    );
}

async fn refused(app: &TestApp, query: &str) -> Value {
    let (status, body) = app.get_text(&format!("/api/v1/images?{query}")).await;
    assert_eq!(status, 422, "{query}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn a_limit_outside_1_to_5000_is_a_field_error() {
    let app = spawn_app().await;
    for bad in ["0", "5001", "abc", "", "-1", "1e3"] {
        let body = refused(&app, &format!("limit={bad}")).await;
        assert!(
            body["fields"]["limit"]
                .as_str()
                .unwrap()
                .contains("1 to 5000"),
            "{bad}: {body}"
        );
    }
    let body = refused(&app, "limit=0&status=everything").await;
    assert!(
        body["fields"]["status"].is_string(),
        "with the filter's: {body}"
    );
    for good in ["1", "5000"] {
        assert_eq!(
            app.get(&format!("/api/v1/images?limit={good}"))
                .await
                .status(),
            200
        );
    }
}

#[tokio::test]
async fn a_forged_cursor_is_a_field_error() {
    let app = spawn_app().await;
    // Base64 of "a\0not-an-id", and of an ID without its daemon.
    for forged in [
        "garbage!",
        "YQBub3QtYW4taWQ",
        "c2hhMjU2OjAxMjM0NTY3ODlhYmNkZWY",
        "",
    ] {
        let body = refused(&app, &format!("cursor={forged}")).await;
        assert!(
            body["fields"]["cursor"]
                .as_str()
                .unwrap()
                .contains("not a cursor this server handed out"),
            "{forged}: {body}"
        );
    }
}

#[tokio::test]
async fn a_rescan_between_two_pages_neither_repeats_nor_skips_an_image() {
    let app = spawn_app_with_daemons(&[("a", engine_a_sock())]).await;
    let fx = Fixtures::new(&engine_a_sock());
    let mut before = Vec::new();
    for n in 0..8 {
        let tag = fx.unique(&format!("st:{n}"));
        before.push((fx.import(&tag, &[("f", 200 + n)]), tag));
    }
    rescan(&app).await;
    let query = format!("/api/v1/images?q={}&limit=3", fx.unique("st"));
    let first = page(&app, &query).await;
    let first_ids: Vec<String> = keys(&first.images).into_iter().map(|k| k.1).collect();
    let cursor_id = first_ids.last().unwrap().clone();

    // The rescan removes the cursor's own image and one not listed yet, and
    // finds two new ones.
    let tag_of = |id: &str| before.iter().find(|(i, _)| i == id).unwrap().1.clone();
    let later = before
        .iter()
        .map(|(id, _)| id.clone())
        .filter(|id| *id > cursor_id)
        .max()
        .expect("five images come after the first page");
    for gone in [&cursor_id, &later] {
        fx.docker(&["rmi", &tag_of(gone)]);
    }
    let new: Vec<String> = (0..2)
        .map(|n| fx.import(&fx.unique(&format!("st:new{n}")), &[("g", 300 + n)]))
        .collect();
    rescan(&app).await;

    let rest = follow(&app, &format!("{query}&cursor={}", first.cursor.unwrap())).await;
    let rest_ids: Vec<String> = rest
        .iter()
        .flat_map(|p| keys(&p.images))
        .map(|k| k.1)
        .collect();
    assert!(rest_ids.iter().all(|id| *id > cursor_id), "{rest_ids:?}");
    assert!(
        !rest_ids.contains(&later),
        "a removed image does not come back"
    );
    let throughout: BTreeSet<&String> = before
        .iter()
        .map(|(id, _)| id)
        .filter(|id| **id != cursor_id && **id != later)
        .collect();
    let mut seen: Vec<&String> = first_ids.iter().chain(&rest_ids).collect();
    seen.retain(|id| throughout.contains(id));
    assert_eq!(
        seen.len(),
        throughout.len(),
        "each image present throughout, exactly once"
    );
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), seen.len());
    let new_after: BTreeSet<&String> = new.iter().filter(|id| **id > cursor_id).collect();
    let new_listed: BTreeSet<&String> = rest_ids.iter().filter(|id| new.contains(id)).collect();
    assert_eq!(
        new_listed, new_after,
        "a new image after the cursor is listed"
    );
}

#[tokio::test]
async fn a_parameter_given_twice_is_refused_in_json() {
    let app = spawn_app().await;
    let response = app.get("/api/v1/images?limit=1&limit=2").await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("a JSON error body");
    assert!(body["error"].as_str().unwrap().contains("limit"), "{body}");
}

#[tokio::test]
async fn the_openapi_document_describes_the_paging() {
    let app = spawn_app().await;
    let doc = app.get_json("/api/v1/openapi.json").await;
    let images = &doc["paths"]["/api/v1/images"]["get"];
    let param = |name: &str| {
        images["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no parameter {name}: {images}"))
            .clone()
    };
    let limit = param("limit");
    assert_eq!(
        (&limit["schema"]["minimum"], &limit["schema"]["maximum"]),
        (&json!(1), &json!(5000)),
        "{limit}"
    );
    assert_eq!(param("cursor")["in"], "query");
    let headers = &images["responses"]["200"]["headers"];
    assert!(
        headers["Link"].is_object() && headers["X-Next-Cursor"].is_object(),
        "{headers}"
    );
}
