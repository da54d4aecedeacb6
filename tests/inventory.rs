//! The inventory on real engines (Engine 20.10 / API 1.41 and 26.1 / API
//! 1.45): every status, every way of ownership, and the reasons given.

mod common;

use common::fixtures::Fixtures;
use common::*;
use serde_json::{json, Value};

/// A server with one daemon on the given engine.
async fn app_on(engine: &str) -> TestApp {
    let app = spawn_app().await;
    let (status, body) = app
        .post_json("/api/v1/daemons", &json!({"name": "d", "endpoint": engine}))
        .await;
    assert_eq!(status, 201, "{body}");
    app
}

async fn scan(app: &TestApp) -> Vec<Value> {
    let (status, body) = app.post_json("/api/v1/scan", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["ok"], true, "{body}");
    app.get_json("/api/v1/images?limit=5000")
        .await
        .as_array()
        .unwrap()
        .clone()
}

fn by_tag<'a>(images: &'a [Value], tag: &str) -> &'a Value {
    images
        .iter()
        .find(|i| i["repo_tags"].as_array().unwrap().iter().any(|t| t == tag))
        .unwrap_or_else(|| panic!("no image tagged {tag}"))
}

fn by_id<'a>(images: &'a [Value], id: &str) -> &'a Value {
    images
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("no image {id}"))
}

fn status(image: &Value) -> (&str, Option<&str>) {
    (image["status"].as_str().unwrap(), image["owner"].as_str())
}

fn engines() -> [String; 2] {
    [engine_a_sock(), engine_b_sock()]
}

/// An ExApp repository under the test's prefix, on a made-up registry.
fn repo(fx: &Fixtures, registry: &str, name: &str) -> String {
    format!("{registry}/{}/{name}", fx.unique("nc"))
}

#[tokio::test]
async fn every_status_and_its_reason_on_both_engines() {
    for engine in engines() {
        let app = app_on(&engine).await;
        let fx = Fixtures::new(&engine);
        let base = fx.unique("busybox:1");
        fx.busybox(&base);
        let r = repo(&fx, "ghcr.io", "llm2");
        let appid = fx.unique("llm2").replace('-', "_");
        let (v0, v1, v2) = (
            format!("{r}:0.9.0"),
            format!("{r}:1.1.0-cuda"),
            format!("{r}:1.2.0-cuda"),
        );
        for (tag, size) in [(&v0, 3000), (&v1, 4000), (&v2, 5000)] {
            fx.build(tag, &base, size);
        }
        fx.run(&format!("nc_app_{appid}"), &v2);
        fx.create(&fx.unique("backup_tool"), &v0);
        let other = fx.unique("postgres:16");
        fx.import(&other, &[("data", 2000)]);
        let dangling_tag = fx.unique("scratch:1");
        let dangling_id = fx.import(&dangling_tag, &[("a", 1000)]);
        fx.import(&dangling_tag, &[("b", 1000)]);

        let images = scan(&app).await;
        let current = by_tag(&images, &v2);
        assert_eq!(
            status(current),
            ("current", Some(appid.as_str())),
            "{engine}"
        );
        assert!(
            current["reason"]
                .as_str()
                .unwrap()
                .contains(&format!("nc_app_{appid}, running")),
            "{current}"
        );
        assert_eq!(current["containers"], json!([format!("nc_app_{appid}")]));

        let outdated = by_tag(&images, &v1);
        assert_eq!(
            status(outdated),
            ("outdated", Some(appid.as_str())),
            "{engine}"
        );
        assert!(
            outdated["reason"]
                .as_str()
                .unwrap()
                .contains("a repository of"),
            "{outdated}"
        );
        assert!(outdated["outdated_since"].is_string());

        let in_use = by_tag(&images, &v0);
        assert_eq!(status(in_use), ("in_use", Some(appid.as_str())), "{engine}");
        assert!(
            in_use["reason"].as_str().unwrap().starts_with(&format!(
                "used by never started container {}",
                fx.unique("backup_tool")
            )),
            "{in_use}"
        );

        assert_eq!(status(by_tag(&images, &other)), ("foreign", None));
        let dangling = by_id(&images, &dangling_id);
        assert_eq!(status(dangling), ("dangling", None), "{engine}");
        assert_eq!(
            dangling["repo_tags"],
            json!([]),
            "20.10's <none>:<none> is not shown"
        );
        assert_eq!(dangling["repo_digests"], json!([]));
        assert!(dangling["created_at"].as_str().unwrap().ends_with('Z'));
        for image in [current, outdated, in_use] {
            assert_eq!(
                image["removable"], false,
                "min_age_hours (24) has not passed: {image}"
            );
        }
    }
}

#[tokio::test]
async fn a_stopped_exapp_container_still_makes_its_image_current() {
    for engine in engines() {
        let app = app_on(&engine).await;
        let fx = Fixtures::new(&engine);
        let base = fx.unique("busybox:1");
        fx.busybox(&base);
        let image = format!("{}:1", repo(&fx, "ghcr.io", "stopped"));
        fx.build(&image, &base, 100);
        let name = format!("nc_app_{}", fx.unique("stopped").replace('-', "_"));
        fx.create(&name, &image);
        let images = scan(&app).await;
        assert_eq!(by_tag(&images, &image)["status"], "current", "{engine}");
    }
}

/// AppAPI's update: remove the container, then run the new image.
fn update(fx: &Fixtures, container: &str, image: &str) {
    fx.docker(&["rm", "-f", container]);
    fx.run(container, image);
}

#[tokio::test]
async fn history_keeps_the_previous_image_after_a_move_to_another_repository() {
    for engine in engines() {
        let app = app_on(&engine).await;
        let fx = Fixtures::new(&engine);
        let base = fx.unique("busybox:1");
        fx.busybox(&base);
        let old = format!("{}:1", repo(&fx, "ghcr.io", "moved"));
        let new = format!("{}:2", repo(&fx, "quay.io", "moved-elsewhere"));
        let old_id = fx.build(&old, &base, 700);
        fx.build(&new, &base, 800);
        let container = format!("nc_app_{}", fx.unique("moved").replace('-', "_"));
        fx.run(&container, &old);
        scan(&app).await;
        update(&fx, &container, &new);
        // The old image keeps no reference that names the new repository.
        let images = scan(&app).await;
        let previous = by_id(&images, &old_id);
        assert_eq!(previous["status"], "outdated", "{engine}: {previous}");
        assert!(
            previous["reason"]
                .as_str()
                .unwrap()
                .starts_with(&format!("previous image of {}", &container[7..])),
            "{previous}"
        );
        assert_eq!(by_tag(&images, &new)["status"], "current");
    }
}

#[tokio::test]
async fn history_keeps_the_previous_image_after_a_registry_mirror_and_a_moved_tag() {
    for engine in engines() {
        let app = app_on(&engine).await;
        let fx = Fixtures::new(&engine);
        let base = fx.unique("busybox:1");
        fx.busybox(&base);
        let upstream = format!("{}:latest", repo(&fx, "ghcr.io", "mirrored"));
        let old_id = fx.build(&upstream, &base, 900);
        let container = format!("nc_app_{}", fx.unique("mirrored").replace('-', "_"));
        fx.run(&container, &upstream);
        scan(&app).await;
        // The mirror serves the new version, and `latest` moved away from the old image.
        let mirror = format!("{}:latest", repo(&fx, "mirror.local:5000", "mirrored"));
        fx.build(&mirror, &base, 950);
        fx.build(&upstream, &base, 951);
        update(&fx, &container, &mirror);
        let images = scan(&app).await;
        let previous = by_id(&images, &old_id);
        assert_eq!(
            previous["repo_tags"],
            json!([]),
            "untagged now: only history knows it"
        );
        assert_eq!(
            status(previous),
            ("outdated", Some(&container[7..])),
            "{engine}: {previous}"
        );
        assert!(
            previous["reason"]
                .as_str()
                .unwrap()
                .starts_with("previous image of"),
            "{previous}"
        );
    }
}

#[tokio::test]
async fn the_images_of_an_uninstalled_exapp_become_outdated() {
    for engine in engines() {
        let app = app_on(&engine).await;
        let fx = Fixtures::new(&engine);
        let base = fx.unique("busybox:1");
        fx.busybox(&base);
        let image = format!("{}:3", repo(&fx, "ghcr.io", "gone"));
        fx.build(&image, &base, 100);
        let container = format!("nc_app_{}", fx.unique("gone").replace('-', "_"));
        fx.run(&container, &image);
        assert_eq!(by_tag(&scan(&app).await, &image)["status"], "current");
        fx.docker(&["rm", "-f", &container]);
        let gone = by_tag(&scan(&app).await, &image).clone();
        assert_eq!(gone["status"], "outdated", "{engine}");
        assert!(
            gone["reason"].as_str().unwrap().contains("(uninstalled?)"),
            "{gone}"
        );
    }
}

#[tokio::test]
async fn an_image_with_two_tags_is_one_image_with_both() {
    for engine in engines() {
        let app = app_on(&engine).await;
        let fx = Fixtures::new(&engine);
        let base = fx.unique("busybox:1");
        fx.busybox(&base);
        let r = repo(&fx, "ghcr.io", "twotags");
        let (cpu, rocm) = (format!("{r}:1.0.0-cpu"), format!("{r}:1.0.0-rocm"));
        fx.build(&cpu, &base, 100);
        fx.docker(&["tag", &cpu, &rocm]);
        let current = format!("{r}:2.0.0-cpu");
        fx.build(&current, &base, 200);
        fx.run(
            &format!("nc_app_{}", fx.unique("twotags").replace('-', "_")),
            &current,
        );
        let images = scan(&app).await;
        let old = by_tag(&images, &cpu);
        let mut tags: Vec<&str> = old["repo_tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        tags.sort();
        assert_eq!(tags, [cpu.as_str(), rocm.as_str()]);
        assert_eq!(old["status"], "outdated", "{engine}");
    }
}

#[tokio::test]
async fn images_can_be_filtered_by_daemon_owner_and_status() {
    let app = spawn_app().await;
    for (name, engine) in [("a", engine_a_sock()), ("b", engine_b_sock())] {
        app.post_json(
            "/api/v1/daemons",
            &json!({"name": name, "endpoint": engine}),
        )
        .await;
    }
    let fx = Fixtures::new(&engine_b_sock());
    let base = fx.unique("busybox:1");
    fx.busybox(&base);
    let image = format!("{}:1", repo(&fx, "ghcr.io", "filtered"));
    fx.build(&image, &base, 100);
    let appid = fx.unique("filtered").replace('-', "_");
    fx.run(&format!("nc_app_{appid}"), &image);
    scan(&app).await;

    let only = app
        .get_json(&format!(
            "/api/v1/images?daemon=b&owner={appid}&status=current"
        ))
        .await;
    let only = only.as_array().unwrap();
    assert_eq!(only.len(), 1, "{only:?}");
    assert_eq!(
        (only[0]["daemon"].as_str(), only[0]["repo_tags"][0].as_str()),
        (Some("b"), Some(image.as_str()))
    );
    assert!(app
        .get_json(&format!("/api/v1/images?daemon=a&owner={appid}"))
        .await
        .as_array()
        .unwrap()
        .is_empty());

    let (status, body) = app.get_text("/api/v1/images?status=everything").await;
    assert_eq!(status, 422);
    assert!(body.contains("status"), "{body}");
}

#[tokio::test]
async fn a_rescan_reads_the_layers_of_images_it_saw_before_from_the_cache() {
    let app = app_on(&engine_a_sock()).await;
    // At least one image of its own, whatever else ran on the engine before.
    let fx = Fixtures::new(&engine_a_sock());
    fx.import(&fx.unique("cached:1"), &[("f", 64)]);
    let first: Vec<String> = scan(&app)
        .await
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    let cached: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM image_layers")
        .fetch_one(app.app.store.pool())
        .await
        .unwrap();
    assert!(cached > 0);
    // Poison the cache: if a rescan asked the daemon again, it would overwrite this.
    sqlx::query("UPDATE image_layers SET layers = '[{\"chain_id\":\"poisoned\",\"size\":1}]'")
        .execute(app.app.store.pool())
        .await
        .unwrap();
    // Something new, so the rescan classifies again (an unchanged listing
    // takes the last classification as it is, reading no layers at all).
    fx.import(&fx.unique("cached:2"), &[("g", 64)]);
    let images = scan(&app).await;
    // Every image shares the one poisoned layer now, so none frees anything alone.
    // (Images other tests made since have real layers.)
    for image in images
        .iter()
        .filter(|i| first.iter().any(|id| i["id"] == id.as_str()))
    {
        assert_eq!(
            image["unique_bytes"], 0,
            "layers came from the daemon, not the cache: {image}"
        );
    }
}

#[tokio::test]
async fn a_failed_scan_keeps_the_last_inventory_and_reports_the_error() {
    let app = spawn_app().await;
    let fx = Fixtures::new(&engine_a_sock());
    fx.import(&fx.unique("kept:1"), &[("f", 64)]);
    app.post_json(
        "/api/v1/daemons",
        &json!({"name": "good", "endpoint": engine_a_sock()}),
    )
    .await;
    app.post_json(
        "/api/v1/daemons",
        &json!({"name": "gone", "endpoint": "unix:///nonexistent/docker.sock"}),
    )
    .await;
    let (status, body) = app.post_json("/api/v1/scan", &json!({})).await;
    assert_eq!(status, 200);
    let by_name = |n: &str| {
        body.as_array()
            .unwrap()
            .iter()
            .find(|d| d["daemon"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("good")["ok"], true);
    assert_eq!(by_name("gone")["ok"], false);
    assert!(by_name("gone")["error"]
        .as_str()
        .unwrap()
        .contains("no socket"));
    assert!(!app
        .get_json("/api/v1/images?daemon=good")
        .await
        .as_array()
        .unwrap()
        .is_empty());
}
