//! End to end in a real browser (headless Chromium driven over WebDriver),
//! against a real server and real engines holding a realistic installation
//! (context_chat_backend, llm2, translate2 and visionatrix with their old
//! versions, a database container, images of hundreds of MB): the admin's
//! path on a phone (390×844) and on a desktop (1280×800) — log in, read the
//! headline, clean up one ExApp, follow the run, see the freed total change —
//! plus "Remove selected", filtering and the settings form. Every page is
//! checked for horizontal overflow and for accessibility basics at both
//! widths. The screenshots go under the cargo target directory
//! (`target/tmp/screenshots/`), never into tracked files;
//! `tests/harness/screenshots.sh` copies them into `static/screenshots/`.
//!
//! The installation's names are fixed (they are what the screenshots show),
//! so this binary runs alone on engines of its own (`run-tests.sh`).

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fixtures::Fixtures;
use common::*;
use serde_json::json;
use thirtyfour::prelude::*;

/// A chromedriver on a free port; killed when dropped.
struct Chromedriver {
    child: Child,
    url: String,
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Chromedriver {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver is installed (Debian's chromium-driver; tests/harness/engines.sh install)");
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Chromedriver { child, url }
}

async fn browser(driver: &Chromedriver, profile: &std::path::Path) -> WebDriver {
    let mut caps = DesiredCapabilities::chrome();
    caps.set_binary("/usr/bin/chromium").unwrap();
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
    ] {
        caps.add_arg(arg).unwrap();
    }
    caps.add_arg(&format!("--user-data-dir={}", profile.display()))
        .unwrap();
    WebDriver::new(&driver.url, caps)
        .await
        .expect("a Chromium session")
}

/// Waits for an element matching `css` whose text contains `text`.
async fn wait_for_text(page: &WebDriver, css: &str, text: &str, limit: Duration) -> WebElement {
    let started = Instant::now();
    loop {
        if let Ok(elements) = page.find_all(By::Css(css)).await {
            for e in elements {
                if e.text().await.unwrap_or_default().contains(text) {
                    return e;
                }
            }
        }
        assert!(
            started.elapsed() < limit,
            "no {css} with {text:?} within {limit:?}: {}",
            page.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The text of the first element matching `css`.
async fn text_of(page: &WebDriver, css: &str) -> String {
    page.find(By::Css(css)).await.unwrap().text().await.unwrap()
}

fn screenshot_path(name: &str) -> std::path::PathBuf {
    // Cargo's own scratch space for integration tests: under the target
    // directory, so a test run never changes a tracked file.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{name}.png"))
}

/// The widths every page must fit: a phone, and a desktop window.
const VIEWPORTS: [(u32, u32); 2] = [(390, 844), (1280, 800)];

/// Makes the page's viewport (`window.innerWidth`×`innerHeight`) exactly
/// `width`×`height` CSS pixels: sizes the window, then corrects it by what the
/// browser's own frame takes.
async fn viewport(page: &WebDriver, (width, height): (u32, u32)) {
    let (mut w, mut h) = (i64::from(width), i64::from(height));
    for _ in 0..3 {
        page.set_window_rect(0, 0, w as u32, h as u32)
            .await
            .unwrap();
        let inner: (i64, i64) = page
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await
            .unwrap()
            .convert()
            .unwrap();
        if inner == (i64::from(width), i64::from(height)) {
            return;
        }
        w += i64::from(width) - inner.0;
        h += i64::from(height) - inner.1;
    }
}

/// Opens `path` at each viewport and asserts that the page itself never
/// scrolls sideways (a table may scroll inside its own box).
async fn assert_fits(page: &WebDriver, url: &str) {
    for size in VIEWPORTS {
        viewport(page, size).await;
        page.goto(url).await.unwrap();
        let widths = page
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                vec![],
            )
            .await
            .unwrap();
        let (scroll, inner): (u64, u64) = widths.convert().unwrap();
        assert_eq!(inner, u64::from(size.0), "the viewport took effect");
        if scroll > inner {
            // Name the culprits: elements reaching past the right edge that
            // are not inside a box that scrolls on its own.
            let culprits = page
                .execute(
                    "const w = window.innerWidth; return [...document.querySelectorAll('body *')]
                       .filter(e => e.getBoundingClientRect().right > w + 0.5 && !(e.parentElement && e.parentElement.closest('.table-scroll')))
                       .slice(0, 8)
                       .map(e => `${e.tagName.toLowerCase()}.${e.className}#${e.id} right=${Math.round(e.getBoundingClientRect().right)}`)
                       .join('; ');",
                    vec![],
                )
                .await
                .unwrap();
            panic!(
                "{url} overflows at {}x{}: scrollWidth {scroll} > innerWidth {inner}: {}",
                size.0,
                size.1,
                culprits.json()
            );
        }
    }
}

/// A screenshot of the page as it is now, at the current width.
async fn screenshot_now(page: &WebDriver, name: &str) {
    page.screenshot(&screenshot_path(name)).await.unwrap();
}

/// Screenshots of the page as it is now, at both widths.
async fn screenshots(page: &WebDriver, name: &str) {
    for (size, suffix) in VIEWPORTS.into_iter().zip(["-phone", ""]) {
        viewport(page, size).await;
        page.screenshot(&screenshot_path(&format!("{name}{suffix}")))
            .await
            .unwrap();
    }
}

/// Every control on the page has a name a screen reader says, and the
/// keyboard's focus is visible.
async fn assert_accessible(page: &WebDriver, url: &str) {
    let unlabelled = page
        .execute(
            "const named = e => {
               if (e.getAttribute('aria-label') || e.getAttribute('aria-labelledby') || e.title) return true;
               if (e.id && document.querySelector(`label[for=\"${CSS.escape(e.id)}\"]`)) return true;
               if (e.closest('label')) return true;
               return (e.textContent || e.value || '').trim().length > 0;
             };
             return [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href]')]
               .filter(e => !named(e))
               .map(e => e.outerHTML.slice(0, 120));",
            vec![],
        )
        .await
        .unwrap();
    let unlabelled: Vec<String> = unlabelled.convert().unwrap();
    assert!(
        unlabelled.is_empty(),
        "{url}: controls without a label: {unlabelled:?}"
    );
    // The first Tab lands on a control; its outline shows.
    page.find(By::Css("body"))
        .await
        .unwrap()
        .send_keys(Key::Tab)
        .await
        .unwrap();
    let outline: (String, String) = page
        .execute(
            "const s = getComputedStyle(document.activeElement);
             return [document.activeElement.tagName, s.outlineStyle + ' ' + s.outlineWidth];",
            vec![],
        )
        .await
        .unwrap()
        .convert()
        .unwrap();
    assert!(
        outline.0 != "BODY" && !outline.1.starts_with("none") && !outline.1.ends_with(" 0px"),
        "{url}: the focused element shows no outline: {outline:?}"
    );
}

/// An ExApp of the installation: its versions, oldest first, with the bytes
/// each adds on top of the shared Python base.
struct ExApp {
    appid: &'static str,
    versions: &'static [(&'static str, usize)],
}

const BASE: &str = "docker.io/library/python:3.11-slim";
const INSTALLATION: [ExApp; 4] = [
    ExApp {
        appid: "context_chat_backend",
        versions: &[
            ("4.0.3", 38_000_000),
            ("4.1.0", 45_000_000),
            ("4.2.1", 52_000_000),
        ],
    },
    ExApp {
        appid: "llm2",
        versions: &[("0.9.1", 64_000_000), ("1.0.0", 71_000_000)],
    },
    ExApp {
        appid: "translate2",
        versions: &[("1.2.0", 27_000_000), ("1.3.1", 31_000_000)],
    },
    ExApp {
        appid: "visionatrix",
        versions: &[("1.4.0", 83_000_000)],
    },
];
/// visionatrix's update, made after the others have been outdated for days.
const UPDATE: (&str, usize) = ("1.5.2", 90_000_000);
const DATABASE: &str = "docker.io/library/postgres:16-alpine";

fn reference(appid: &str, tag: &str) -> String {
    format!("ghcr.io/nextcloud/{appid}:{tag}")
}

/// The installation on one engine, removed again when dropped.
struct Installation {
    fx: Fixtures,
    references: Vec<String>,
    containers: Vec<String>,
}

impl Installation {
    /// Each ExApp runs its newest version; the older ones stay behind as
    /// after AppAPI's updates. Built on a shared ~120 MB base, as real
    /// ExApp images share theirs.
    fn build(engine: &str) -> Self {
        let fx = Fixtures::new(engine);
        let mut this = Self {
            fx,
            references: Vec::new(),
            containers: Vec::new(),
        };
        let busybox = "docker.io/library/busybox:1.36";
        this.fx.busybox(busybox);
        this.fx.build(BASE, busybox, 120_000_000);
        this.fx.build(DATABASE, busybox, 9_000_000);
        this.references
            .extend([BASE, DATABASE, busybox].map(str::to_owned));
        for app in &INSTALLATION {
            for (tag, bytes) in app.versions {
                let r = reference(app.appid, tag);
                this.fx.build(&r, BASE, *bytes);
                this.references.push(r);
            }
            let (newest, _) = app.versions.last().unwrap();
            this.run(
                &format!("nc_app_{}", app.appid),
                &reference(app.appid, newest),
            );
        }
        this.run("nextcloud-aio-database", DATABASE);
        this
    }

    fn run(&mut self, name: &str, image: &str) {
        self.fx.run(name, image);
        self.containers.push(name.to_owned());
    }

    /// AppAPI's update of visionatrix: a new image, the container recreated on it.
    fn update_visionatrix(&mut self) {
        let r = reference("visionatrix", UPDATE.0);
        self.fx.build(&r, BASE, UPDATE.1);
        self.references.push(r.clone());
        self.fx.docker(&["rm", "-f", "nc_app_visionatrix"]);
        self.fx.run("nc_app_visionatrix", &r);
    }
}

impl Drop for Installation {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = self.fx.try_docker(&["rm", "-f", c]);
        }
        for r in self.references.iter().rev() {
            let _ = self.fx.try_docker(&["rmi", r]);
        }
    }
}

/// Logs in through the form.
async fn log_in(page: &WebDriver, app: &TestApp) {
    page.goto(&app.url("/")).await.unwrap();
    let password = page
        .find(By::Id("password"))
        .await
        .expect("sent to the login page");
    password.send_keys(TEST_PASSWORD).await.unwrap();
    page.find(By::Css("form.login button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(page, "h1", "Overview", Duration::from_secs(10)).await;
}

/// The overview's headline figure: "X can be freed now …".
async fn headline_now(page: &WebDriver, app: &TestApp) -> String {
    page.goto(&app.url("/")).await.unwrap();
    text_of(page, "#headline .headline-now").await
}

/// From the overview: "Clean up this ExApp" on `appid`'s row, the preview,
/// "Remove", and the run followed to its end. Returns the run's page text.
async fn clean_up_exapp(page: &WebDriver, app: &TestApp, appid: &str, images: usize) -> String {
    page.goto(&app.url("/")).await.unwrap();
    page.find(By::Css(format!("#owner-{appid} a.button")))
        .await
        .unwrap_or_else(|_| panic!("a Clean up action on {appid}'s row"))
        .click()
        .await
        .unwrap();
    wait_for_text(page, "h1", appid, Duration::from_secs(10)).await;
    let preview = text_of(page, "table.preview").await;
    let rows = page
        .find_all(By::Css("table.preview tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), images, "{preview}");
    for row in rows {
        let text = row.text().await.unwrap();
        assert!(
            text.contains(&format!("ghcr.io/nextcloud/{appid}")),
            "{text}"
        );
    }
    let confirm = page.find(By::Id("confirm-cleanup")).await.unwrap();
    assert!(
        confirm
            .text()
            .await
            .unwrap()
            .starts_with(&format!("Remove {images} image")),
        "the button names the count"
    );
    confirm.click().await.unwrap();
    let status = wait_for_text(
        page,
        "#run-live .run-status",
        "finished",
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        status.attr("aria-live").await.unwrap().as_deref(),
        Some("polite"),
        "the run's progress is announced"
    );
    let done: (i64, i64) = page
        .execute(
            "const p = document.getElementById('progress-jobs'); return [p.value, p.max];",
            vec![],
        )
        .await
        .unwrap()
        .convert()
        .unwrap();
    assert_eq!(
        done,
        (images as i64, images as i64),
        "the progress bar is full"
    );
    text_of(page, "#run-live").await
}

#[tokio::test]
async fn an_admin_frees_exapp_images_on_a_phone_and_on_a_desktop() {
    // The installation, seen by the janitor three days ago; then visionatrix
    // was updated, so its old image waits out the minimum age.
    let mut installation = Installation::build(&engine_b_sock());
    let app = spawn_app_on_manual_clock().await;
    app.post_json(
        "/api/v1/daemons",
        &json!({"name": "gpu-host", "endpoint": engine_b_sock()}),
    )
    .await;
    app.post_json(
        "/api/v1/daemons",
        &json!({"name": "local", "endpoint": engine_a_sock()}),
    )
    .await;
    app.post_json("/api/v1/scan", &json!({})).await;
    app.clock().advance(Duration::from_secs(3 * 86_400));
    installation.update_visionatrix();
    app.post_json("/api/v1/scan", &json!({})).await;
    app.start_worker();
    let preview = app.post_json("/api/v1/cleanup/preview", &json!({})).await.1;
    let removable: Vec<&str> = preview["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["owner"].as_str())
        .collect();
    assert_eq!(removable.len(), 4, "2 + 1 + 1 old versions: {preview}");

    let driver = chromedriver();
    let profile = tempfile::tempdir().unwrap();
    let page = browser(&driver, profile.path()).await;
    assert_fits(&page, &app.url("/login")).await;
    log_in(&page, &app).await;

    // The headline answers first: what goes now, what waits, per ExApp.
    let headline = page.find(By::Id("headline")).await.unwrap();
    assert_eq!(
        headline.attr("aria-live").await.unwrap().as_deref(),
        Some("polite")
    );
    let now = headline_now(&page, &app).await;
    assert!(
        now.ends_with("can be freed now from 4 images (3 ExApps)."),
        "{now}"
    );
    let later = text_of(&page, "#headline .headline-later").await;
    assert!(later.contains("after the 24 h minimum age"), "{later}");
    let waiting = text_of(&page, "#owner-visionatrix").await;
    assert!(waiting.contains("1 waits until"), "{waiting}");
    assert!(
        page.find(By::Id("freed-so-far")).await.is_err(),
        "nothing freed yet"
    );
    screenshots(&page, "overview").await;
    page.goto(&app.url("/images?status=outdated&sort=unique"))
        .await
        .unwrap();
    wait_for_text(
        &page,
        "#results .summary",
        "5 images",
        Duration::from_secs(10),
    )
    .await;
    screenshots(&page, "images").await;

    // On a phone: clean up context_chat_backend; the freed total appears.
    viewport(&page, VIEWPORTS[0]).await;
    let run = clean_up_exapp(&page, &app, "context_chat_backend", 2).await;
    assert!(run.contains("2 removed"), "{run}");
    screenshot_now(&page, "run-phone").await;
    let after_phone = headline_now(&page, &app).await;
    assert_ne!(after_phone, now, "the headline changed");
    assert!(
        after_phone.ends_with("from 2 images (2 ExApps)."),
        "{after_phone}"
    );
    let freed_once = text_of(&page, "#freed-so-far").await;
    assert!(freed_once.ends_with("in 1 run."), "{freed_once}");

    // On a desktop: translate2, and the total grows.
    viewport(&page, VIEWPORTS[1]).await;
    clean_up_exapp(&page, &app, "translate2", 1).await;
    screenshot_now(&page, "run").await;
    headline_now(&page, &app).await;
    let freed_twice = text_of(&page, "#freed-so-far").await;
    assert!(freed_twice.ends_with("in 2 runs."), "{freed_twice}");
    assert_ne!(freed_twice, freed_once);

    // "Remove selected": tick llm2's old image; the preview shows exactly it.
    page.goto(&app.url("/images?status=removable"))
        .await
        .unwrap();
    let old_llm2 = reference("llm2", "0.9.1");
    page.find(By::Css(format!(
        "input[type=checkbox][aria-label^='Select {old_llm2} ']"
    )))
    .await
    .expect("a checkbox on the removable llm2 image")
    .click()
    .await
    .unwrap();
    page.find(By::Id("remove-selected"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let selected = wait_for_text(&page, "table.preview", "llm2", Duration::from_secs(10)).await;
    let selected = selected.text().await.unwrap();
    assert!(selected.contains(":0.9.1"), "{selected}");
    let rows = page
        .find_all(By::Css("table.preview tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "exactly the ticked image: {selected}");

    // Images: filter by owner in place; the address keeps the filter.
    page.goto(&app.url("/images")).await.unwrap();
    page.find(By::Css("select[name=owner]"))
        .await
        .unwrap()
        .find(By::Css("option[value=visionatrix]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(
        &page,
        "#results .summary",
        "2 images",
        Duration::from_secs(10),
    )
    .await;
    assert!(page
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains("owner=visionatrix"));
    // The short reason says when the old image becomes removable; the whole
    // reason is one click away.
    let reason = text_of(&page, "tr.status-outdated details.reason summary").await;
    assert!(reason.starts_with("waits until"), "{reason}");

    // Settings: an invalid value is refused, summarised at the top with the
    // focus on it; fixed, it saves.
    page.goto(&app.url("/settings")).await.unwrap();
    let interval = page.find(By::Id("interval_hours")).await.unwrap();
    interval.clear().await.unwrap();
    interval.send_keys("-3").await.unwrap();
    page.find(By::Css("form.settings button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(
        &page,
        "#interval_hours-error",
        "whole number of hours",
        Duration::from_secs(10),
    )
    .await;
    let focused: String = page
        .execute("return document.activeElement.id;", vec![])
        .await
        .unwrap()
        .convert()
        .unwrap();
    assert_eq!(focused, "error-summary", "the focus moves to the errors");
    let interval = page.find(By::Id("interval_hours")).await.unwrap();
    interval.clear().await.unwrap();
    interval.send_keys("24").await.unwrap();
    page.find(By::Css("form.settings button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&page, ".notice", "Settings saved.", Duration::from_secs(10)).await;

    // Times are the browser's local ones (the script rewrote every <time>).
    page.goto(&app.url("/runs")).await.unwrap();
    let unlocalized: i64 = page
        .execute(
            "return document.querySelectorAll('time[datetime]:not([data-local])').length;",
            vec![],
        )
        .await
        .unwrap()
        .convert()
        .unwrap();
    assert_eq!(unlocalized, 0);

    // Every page fits a phone and a desktop and passes the basics.
    let run_url = app.url("/runs/1");
    for path in [
        "/",
        "/images",
        "/images?owner=llm2",
        "/exapps",
        "/runs",
        "/daemons",
        "/daemons/local/remove",
        "/settings",
        "/cleanup",
        "/cleanup?owner=llm2",
    ] {
        let url = app.url(path);
        assert_fits(&page, &url).await;
        assert_accessible(&page, &url).await;
    }
    assert_fits(&page, &run_url).await;
    assert_accessible(&page, &run_url).await;

    page.quit().await.unwrap();
}
