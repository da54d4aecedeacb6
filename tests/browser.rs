//! End to end in a real browser (headless Chromium driven over WebDriver),
//! against a real server and real engines: log in, the overview, filtering
//! images, "Clean now" from preview to finished run, and the settings form.
//! Every page is checked for horizontal overflow on a phone (390×844) and a
//! desktop (1280×800). The screenshots go under the cargo target directory
//! (`target/tmp/screenshots/`), never into tracked files; the README's copies
//! in `static/screenshots/` are refreshed by hand from there.

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

/// Screenshots of the page as it is now, at both widths.
async fn screenshots(page: &WebDriver, name: &str) {
    for (size, suffix) in VIEWPORTS.into_iter().zip(["-phone", ""]) {
        viewport(page, size).await;
        page.screenshot(&screenshot_path(&format!("{name}{suffix}")))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn an_admin_cleans_up_in_the_browser() {
    // The server, a daemon with an ExApp that has two old versions.
    let app = spawn_app().await;
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
    app.start_worker();
    let fx = Fixtures::new(&engine_b_sock());
    let base = fx.unique("busybox:1");
    fx.busybox(&base);
    let repo = format!("ghcr.io/{}/context_chat", fx.unique("nc"));
    let (old1, old2, current) = (
        format!("{repo}:4.0.0"),
        format!("{repo}:4.1.0-cuda"),
        format!("{repo}:4.2.0-cuda"),
    );
    fx.build(&old1, &base, 40_000);
    fx.build(&old2, &base, 50_000);
    fx.build(&current, &base, 60_000);
    let appid = fx.unique("context_chat").replace('-', "_");
    fx.run(&format!("nc_app_{appid}"), &current);

    let driver = chromedriver();
    let profile = tempfile::tempdir().unwrap();
    let page = browser(&driver, profile.path()).await;

    // The login page fits a phone too.
    assert_fits(&page, &app.url("/login")).await;

    // Log in.
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
    wait_for_text(&page, "h1", "Overview", Duration::from_secs(10)).await;

    // The overview: a card per daemon, each filled in by its own check; then a rescan.
    wait_for_text(
        &page,
        "#daemon-gpu-host .status",
        "Reachable",
        Duration::from_secs(15),
    )
    .await;
    wait_for_text(
        &page,
        "#daemon-local .status",
        "Reachable",
        Duration::from_secs(15),
    )
    .await;
    page.find(By::Css(".page-head form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(
        &page,
        "#daemon-gpu-host",
        "Outdated",
        Duration::from_secs(30),
    )
    .await;
    // The rescan brought the headline along (swapped in out of band): this
    // ExApp's two old images wait out the 24 h minimum age.
    let row = wait_for_text(
        &page,
        &format!("#headline #owner-{appid}"),
        "2 wait until",
        Duration::from_secs(10),
    )
    .await;
    assert!(row.text().await.unwrap().contains("nothing to clean yet"));
    let clean_now = page.find(By::Id("clean-now")).await.unwrap();
    assert_eq!(
        clean_now.attr("disabled").await.unwrap().as_deref(),
        Some("true")
    );
    screenshots(&page, "overview").await;

    // Images: filter by owner and status, in place.
    page.goto(&app.url("/images")).await.unwrap();
    let owner = page.find(By::Css("select[name=owner]")).await.unwrap();
    owner
        .find(By::Css(format!("option[value={appid}]")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(
        &page,
        "#results .summary",
        "3 images",
        Duration::from_secs(10),
    )
    .await;
    let status = page.find(By::Css("select[name=status]")).await.unwrap();
    status
        .find(By::Css("option[value=outdated]"))
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
    let table = text_of(&page, "#results table").await;
    assert!(
        table.contains(&old1) && table.contains(&old2) && !table.contains(&current),
        "{table}"
    );
    assert!(
        page.current_url()
            .await
            .unwrap()
            .as_str()
            .contains("status=outdated"),
        "the filter is in the address"
    );
    screenshots(&page, "images").await;

    // Clean up this ExApp on this daemon, counting images outdated just now
    // (limited to it: other tests' images on the engine are theirs).
    page.goto(&app.url(&format!(
        "/cleanup?daemon=gpu-host&owner={appid}&min_age_hours=0"
    )))
    .await
    .unwrap();
    let preview = text_of(&page, "table.preview").await;
    assert!(
        preview.contains(&old1) && preview.contains(&old2) && !preview.contains(&current),
        "{preview}"
    );
    // The button names the count: this ExApp's two outdated images.
    let confirm = page.find(By::Id("confirm-cleanup")).await.unwrap();
    let label = confirm.text().await.unwrap();
    let count: usize = label
        .strip_prefix("Remove ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{label}"));
    assert_eq!(count, 2, "{label}");
    confirm.click().await.unwrap();
    wait_for_text(
        &page,
        "#run-live .run-status",
        "finished",
        Duration::from_secs(60),
    )
    .await;
    let jobs = text_of(&page, "#run-live table").await;
    assert_eq!(jobs.matches("succeeded").count(), count, "{jobs}");
    assert!(jobs.contains(&old1) && jobs.contains(&old2), "{jobs}");
    screenshots(&page, "run").await;
    let run_url = page.current_url().await.unwrap().to_string();

    // The images are gone from the table.
    page.goto(&app.url(&format!("/images?owner={appid}")))
        .await
        .unwrap();
    let table = text_of(&page, "#results table").await;
    assert!(
        table.contains(&current) && !table.contains(&old1) && !table.contains(&old2),
        "{table}"
    );
    assert!(!fx
        .docker(&["images", "-q", &old1])
        .contains(char::is_alphanumeric));

    // Settings: an invalid value is refused inline; fixed, it saves.
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
    let error = wait_for_text(
        &page,
        "#interval_hours-error",
        "whole number of hours",
        Duration::from_secs(10),
    )
    .await;
    assert!(error.is_displayed().await.unwrap());
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
    assert_eq!(app.get_json("/api/v1/settings").await["interval_hours"], 24);

    // Every page fits a phone and a desktop without sideways scrolling.
    for path in [
        "/".to_owned(),
        "/images".to_owned(),
        format!("/images?owner={appid}"),
        "/exapps".to_owned(),
        "/runs".to_owned(),
        "/daemons".to_owned(),
        "/daemons/local/remove".to_owned(),
        "/settings".to_owned(),
        "/cleanup".to_owned(),
        format!("/cleanup?owner={appid}&min_age_hours=0"),
    ] {
        assert_fits(&page, &app.url(&path)).await;
    }
    assert_fits(&page, &run_url).await;

    page.quit().await.unwrap();
}
