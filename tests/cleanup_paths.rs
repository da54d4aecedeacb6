//! Cleanup paths on real engines that the other cleanup tests leave out: an
//! outdated image kept by a container in each state, `keep_previous`,
//! `remove_dangling`, and daemons reached over TCP and over TLS. Tests whose
//! runs are limited to their own ExApp share the engines; the dangling
//! image's run (it has no owner) covers the whole daemon, so that test has
//! the engines alone.

mod common;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::fixtures::Fixtures;
use common::*;
use serde_json::{json, Value};
use tokio::sync::RwLock;

static ENGINES: RwLock<()> = RwLock::const_new(());

const RUN_LIMIT: Duration = Duration::from_secs(60);

/// An ExApp whose `nc_app_*` container runs on its current image.
struct ExApp {
    appid: String,
    base: String,
    current: String,
    /// Earlier versions of the same repository, oldest first.
    outdated: Vec<String>,
}

/// An ExApp on `fx`'s engine with `outdated` earlier versions, built FROM a
/// busybox base (so containers of them really run), oldest first and each
/// in a later second than the one before (so `created` orders them), all
/// before the current version (an owned image newer than the current one
/// is an update in progress, not an outdated image).
fn exapp(fx: &Fixtures, name: &str, outdated: usize) -> ExApp {
    let base = fx.unique("busybox:1");
    fx.busybox(&base);
    let repo = format!("ghcr.io/{}/{name}", fx.unique("nc"));
    let outdated: Vec<String> = (0..outdated)
        .map(|i| {
            if i > 0 {
                next_second();
            }
            let tag = format!("{repo}:0.{i}.0");
            fx.build(&tag, &base, 1000 + i);
            tag
        })
        .collect();
    let current = format!("{repo}:1.0.0");
    fx.build(&current, &base, 2000);
    let appid = fx.unique(name).replace('-', "_");
    fx.run(&format!("nc_app_{appid}"), &current);
    ExApp {
        appid,
        base,
        current,
        outdated,
    }
}

/// Waits until the wall clock's second changes: Docker records `created`
/// in whole seconds.
fn next_second() {
    let second = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let start = second();
    while second() == start {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `docker inspect` until the container is in `state`.
fn wait_for_state(fx: &Fixtures, container: &str, state: &str) {
    let started = Instant::now();
    loop {
        let now = fx.docker(&["inspect", "-f", "{{.State.Status}}", container]);
        if now == state {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{container} is {now}, not {state}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a test leaves on its engine, removed when it ends, passed or not,
/// so that the shared engines do not fill up.
struct Leftovers {
    host: String,
    containers: Vec<String>,
    images: Vec<String>,
}

impl Leftovers {
    /// The ExApp's container and images, and `containers` of its own.
    fn of(host: &str, exapp: &ExApp, containers: &[&str]) -> Self {
        // The base last: Docker keeps an image that others are built from.
        let mut images = exapp.outdated.clone();
        images.extend([exapp.current.clone(), exapp.base.clone()]);
        let mut containers: Vec<String> = containers.iter().map(|c| c.to_string()).collect();
        containers.push(format!("nc_app_{}", exapp.appid));
        Self {
            host: host.to_owned(),
            containers,
            images,
        }
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        // Best effort, errors ignored: a panic here during a failing test
        // would abort, and the runs have removed some images already.
        for (command, names) in [
            (["rm", "-f"], &self.containers),
            (["rmi", "--"], &self.images),
        ] {
            if !names.is_empty() {
                let _ = Command::new("docker")
                    .args(["-H", &self.host])
                    .args(command)
                    .args(names)
                    .output();
            }
        }
    }
}

fn id_of(fx: &Fixtures, reference: &str) -> String {
    fx.docker(&["image", "inspect", "-f", "{{.Id}}", reference])
}

/// Rescans every daemon; each must have answered.
async fn scan(app: &TestApp) -> Value {
    let (status, scanned) = app.post_json("/api/v1/scan", &json!({})).await;
    assert_eq!(status, 200, "{scanned}");
    for d in scanned.as_array().unwrap() {
        assert_eq!(d["ok"], true, "the scan failed: {scanned}");
    }
    scanned
}

/// `GET /api/v1/images` of one daemon, after a rescan.
async fn images(app: &TestApp, daemon: &str) -> Value {
    scan(app).await;
    app.get_json(&format!("/api/v1/images?daemon={daemon}&limit=5000"))
        .await
}

async fn preview_now(app: &TestApp) -> Value {
    let (status, preview) = app
        .post_json("/api/v1/cleanup/preview", &json!({"min_age_hours": 0}))
        .await;
    assert_eq!(status, 200, "{preview}");
    preview
}

/// The image object carrying the reference `tag`, if listed.
fn find_tag<'a>(images: &'a Value, tag: &str) -> Option<&'a Value> {
    images
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["repo_tags"].as_array().unwrap().iter().any(|t| t == tag))
}

fn with_tag<'a>(images: &'a Value, tag: &str) -> &'a Value {
    find_tag(images, tag).unwrap_or_else(|| panic!("no image {tag}: {images}"))
}

/// The image object with this ID, if listed.
fn with_id<'a>(images: &'a Value, id: &str) -> Option<&'a Value> {
    images.as_array().unwrap().iter().find(|i| i["id"] == id)
}

/// A manual run (min_age_hours 0) of `owner`'s images, or of every daemon
/// whole, worked to its end.
async fn run_to_the_end(app: &TestApp, owner: Option<&str>) -> Value {
    let mut body = json!({"min_age_hours": 0});
    if let Some(owner) = owner {
        body["owner"] = json!(owner);
    }
    let (status, run) = app.post_json("/api/v1/cleanup/runs", &body).await;
    assert_eq!(status, 202, "{run}");
    app.start_worker();
    app.wait_for_run(run["id"].as_i64().unwrap(), RUN_LIMIT)
        .await
}

fn job_for_id<'a>(run: &'a Value, id: &str) -> Option<&'a Value> {
    run["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["image_id"] == id)
}

/// An outdated image of an ExApp that a container in `state` uses: shown
/// `in_use`, never previewed, never removed; while an outdated image of
/// the same ExApp that no container uses goes in the same run. On both engines.
async fn a_container_keeps_its_image(state: &str, make: impl Fn(&Fixtures, &str, &str)) {
    let _shared = ENGINES.read().await;
    for engine in [engine_a_sock(), engine_b_sock()] {
        let app = spawn_app_with_daemons(&[("d", engine.clone())]).await;
        let fx = Fixtures::new(&engine);
        let exapp = exapp(&fx, state, 2);
        let (used, unused) = (&exapp.outdated[0], &exapp.outdated[1]);
        let (used_id, unused_id) = (id_of(&fx, used), id_of(&fx, unused));
        let user = fx.unique(&format!("{state}_user"));
        let _leftovers = Leftovers::of(&engine, &exapp, &[&user]);
        make(&fx, &user, used);
        wait_for_state(&fx, &user, state);

        let listed = images(&app, "d").await;
        let image = with_tag(&listed, used);
        assert_eq!(image["status"], "in_use", "{engine}: {image}");
        assert_eq!(image["owner"], exapp.appid.as_str(), "{engine}: {image}");
        assert_eq!(image["containers"], json!([user]), "{engine}: {image}");
        assert_eq!(image["removable"], false, "{engine}: {image}");
        let control = with_tag(&listed, unused);
        assert_eq!(control["status"], "outdated", "{engine}: {control}");

        let preview = preview_now(&app).await;
        assert!(
            with_id(&preview["images"], &used_id).is_none(),
            "{engine}: {preview}"
        );
        assert!(
            with_id(&preview["images"], &unused_id).is_some(),
            "{engine}: the unused one is removable: {preview}"
        );

        let run = run_to_the_end(&app, Some(&exapp.appid)).await;
        assert!(job_for_id(&run, &used_id).is_none(), "{engine}: {run}");
        let job = job_for(&run, unused);
        assert_eq!(job["status"], "succeeded", "{engine}: {job}");
        assert!(fx.has(used), "{engine}: {used} was removed");
        assert!(!fx.has(unused), "{engine}: the run did nothing");
        assert!(fx.has(&exapp.current), "{engine}: the current image went");
        // Still in that state: the run saw no other.
        wait_for_state(&fx, &user, state);
    }
}

#[tokio::test]
async fn a_created_container_keeps_its_outdated_image() {
    a_container_keeps_its_image("created", |fx, name, image| {
        fx.create(name, image);
    })
    .await;
}

#[tokio::test]
async fn a_running_container_keeps_its_outdated_image() {
    a_container_keeps_its_image("running", |fx, name, image| {
        fx.run(name, image);
    })
    .await;
}

#[tokio::test]
async fn an_exited_container_keeps_its_outdated_image() {
    a_container_keeps_its_image("exited", |fx, name, image| {
        fx.docker(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            name,
            image,
            "true",
        ]);
    })
    .await;
}

#[tokio::test]
async fn a_paused_container_keeps_its_outdated_image() {
    a_container_keeps_its_image("paused", |fx, name, image| {
        fx.run(name, image);
        fx.docker(&["pause", name]);
    })
    .await;
}

/// keep_previous=2 with three outdated images: only the oldest goes.
async fn keep_previous_keeps_the_two_most_recently_outdated(engine: String) {
    let app = spawn_app_with_daemons(&[("d", engine.clone())]).await;
    let (status, settings) = app.patch_settings(&json!({"keep_previous": 2})).await;
    assert_eq!(status, 200, "{settings}");
    let fx = Fixtures::new(&engine);
    let exapp = exapp(&fx, "keep", 3);
    let _leftovers = Leftovers::of(&engine, &exapp, &[]);
    let [oldest, middle, newest] = &exapp.outdated[..] else {
        unreachable!()
    };

    let listed = images(&app, "d").await;
    let created: Vec<&str> = exapp
        .outdated
        .iter()
        .map(|t| with_tag(&listed, t)["created_at"].as_str().unwrap())
        .collect();
    assert!(
        created[0] < created[1] && created[1] < created[2],
        "built in distinct seconds, oldest first: {created:?}"
    );
    let first = with_tag(&listed, oldest);
    assert!(
        !first["reason"].as_str().unwrap().contains("keep_previous"),
        "{first}"
    );
    for kept in [middle, newest] {
        let image = with_tag(&listed, kept);
        assert_eq!(image["status"], "outdated", "{image}");
        assert!(
            image["reason"].as_str().unwrap().contains("keep_previous"),
            "{image}"
        );
    }

    let preview = preview_now(&app).await;
    let mine: Vec<&Value> = preview["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["owner"] == exapp.appid.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{preview}");
    assert_eq!(mine[0]["repo_tags"], json!([oldest]), "{preview}");

    let run = run_to_the_end(&app, Some(&exapp.appid)).await;
    assert_eq!(job_for(&run, oldest)["status"], "succeeded", "{run}");
    assert!(!fx.has(oldest), "{oldest} is still there");
    for kept in [middle, newest, &exapp.current] {
        assert!(fx.has(kept), "{kept} was removed");
    }
}

#[tokio::test]
async fn keep_previous_keeps_the_most_recently_outdated_on_engine_20_10() {
    let _shared = ENGINES.read().await;
    keep_previous_keeps_the_two_most_recently_outdated(engine_a_sock()).await;
}

#[tokio::test]
async fn keep_previous_keeps_the_most_recently_outdated_on_engine_26_1() {
    let _shared = ENGINES.read().await;
    keep_previous_keeps_the_two_most_recently_outdated(engine_b_sock()).await;
}

#[tokio::test]
async fn remove_dangling_removes_an_untagged_image_by_its_id_and_only_when_on() {
    let _alone = ENGINES.write().await; // an untagged image has no owner: a whole run
                                        // Engine 20.10 lists untagged images as `<none>:<none>`, 26.1 as `[]`.
    for engine in [engine_a_sock(), engine_b_sock()] {
        let app = spawn_app_with_daemons(&[("d", engine.clone())]).await;
        let fx = Fixtures::new(&engine);
        // The tag moves to a second import: the first is left untagged.
        let tag = format!("{}:1", fx.unique("scratch"));
        let dangling = fx.import(&tag, &[("a", 1500)]);
        let tagged = fx.import(&tag, &[("b", 1600)]);
        let _leftovers = Leftovers {
            host: engine.clone(),
            containers: vec![],
            images: vec![tag.clone()],
        };
        assert_ne!(dangling, tagged);

        let listed = images(&app, "d").await;
        let image = with_id(&listed, &dangling)
            .unwrap_or_else(|| panic!("{engine}: {dangling} not listed: {listed}"));
        assert_eq!(
            (&image["status"], &image["repo_tags"], &image["owner"]),
            (&json!("dangling"), &json!([]), &Value::Null),
            "{engine}: {image}"
        );
        assert_eq!(image["removable"], false, "{engine}: off by default");
        let preview = preview_now(&app).await;
        assert!(
            with_id(&preview["images"], &dangling).is_none(),
            "{engine}: previewed with remove_dangling off: {preview}"
        );

        let (status, settings) = app.patch_settings(&json!({"remove_dangling": true})).await;
        assert_eq!(status, 200, "{settings}");
        let preview = preview_now(&app).await;
        assert!(
            with_id(&preview["images"], &dangling).is_some(),
            "{engine}: {preview}"
        );
        let run = run_to_the_end(&app, None).await;
        let job = job_for_id(&run, &dangling)
            .unwrap_or_else(|| panic!("{engine}: no job for {dangling}: {run}"));
        assert_eq!(job["status"], "succeeded", "{engine}: {job}");
        assert_eq!(job["image_refs"], json!([]), "{engine}: {job}");
        assert!(!fx.has_id(&dangling), "{engine}: {dangling} is still there");
        assert!(
            fx.has_id(&tagged) && fx.has(&tag),
            "{engine}: the tagged (foreign) image was removed"
        );
    }
}

/// A daemon added with `daemon` (the POST body) that reaches `engine`,
/// where the fixtures are built through its socket: scan, images, preview
/// and a run all work through that endpoint.
async fn cleans_up_through(daemon: Value, engine: String) {
    let app = spawn_app().await;
    let (status, added) = app.post_json("/api/v1/daemons", &daemon).await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["reachable"], true, "{added}");
    let fx = Fixtures::new(&engine);
    let exapp = exapp(&fx, "remote", 1);
    let _leftovers = Leftovers::of(&engine, &exapp, &[]);
    let old = &exapp.outdated[0];
    let old_id = id_of(&fx, old);

    let scanned = scan(&app).await;
    assert_eq!(scanned.as_array().unwrap().len(), 1, "{scanned}");
    let listed = app
        .get_json("/api/v1/images?daemon=remote&limit=5000")
        .await;
    let image = with_tag(&listed, old);
    assert_eq!(image["status"], "outdated", "{image}");
    assert_eq!(image["owner"], exapp.appid.as_str(), "{image}");
    let current = with_tag(&listed, &exapp.current);
    assert_eq!(current["status"], "current", "{current}");

    let preview = preview_now(&app).await;
    let previewed = with_id(&preview["images"], &old_id)
        .unwrap_or_else(|| panic!("{old} is not previewed: {preview}"));
    let predicted = previewed["unique_bytes"].as_i64().unwrap();
    assert!(
        find_tag(&preview["images"], &exapp.current).is_none(),
        "{preview}"
    );

    let run = run_to_the_end(&app, Some(&exapp.appid)).await;
    let job = job_for(&run, old);
    assert_eq!(job["status"], "succeeded", "{job}");
    let freed = job["bytes_freed"].as_i64().unwrap();
    assert!(
        freed > 0 && freed == predicted,
        "predicted {predicted}: {job}"
    );
    assert!(!fx.has_id(&old_id), "{old} is still there");
    assert!(fx.has(&exapp.current), "the current image was removed");
}

#[tokio::test]
async fn scan_preview_and_removal_work_over_plain_tcp() {
    let _shared = ENGINES.read().await;
    let daemon = json!({"name": "remote", "endpoint": engine_a_tcp()});
    cleans_up_through(daemon, engine_a_sock()).await;
}

#[tokio::test]
async fn scan_preview_and_removal_work_over_tls_with_client_certificates() {
    let _shared = ENGINES.read().await;
    let tls = engine_b_tls();
    let daemon = json!({"name": "remote", "endpoint": tls.url,
        "tls_ca": tls.ca, "tls_cert": tls.cert, "tls_key": tls.key});
    cleans_up_through(daemon, engine_b_sock()).await;
}
