//! The overview: first the answer to "what can I free, and from which
//! ExApp?" (a headline across all daemons and a row per ExApp), then one
//! card per daemon (reachability and disk use from its last scan) and the
//! Rescan button.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::charts;
use super::errors::{html, PageError};
use super::format::{self, Html, When};
use super::guard::CurrentSession;
use super::layout::Layout;
use super::render_memo::{RenderMemo, Rendered};
use super::shared_body::{spliced, Slot};
use crate::daemons::{self, DaemonSummary};
use crate::janitor::Janitor;
use crate::policy;
use crate::read_cache::{Current, Reads};
use crate::report::summary::Summary;
use crate::report::{DaemonFigures, Report};
use crate::scan::{self, CachedScan};
use crate::store::StoredDaemon;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::Data::new(Memos::default()))
        .route("/", web::get().to(overview))
        .route("/scan", web::post().to(rescan))
        .route("/daemons/{name}/card", web::get().to(daemon_card));
}

/// A daemon's card: who it is, whether it answers, and what its last scan found.
pub struct Card {
    pub d: DaemonSummary,
    /// Render the last known contact and let the card refresh itself once.
    pub refresh: bool,
    pub inv: Option<InventoryView>,
    pub scanned_at: Option<When>,
    /// The last scan failed (the figures, if any, are from an older scan).
    pub scan_error: Option<String>,
}

pub struct InventoryView {
    /// The disk bar and the figures, rendered once per inventory (`FiguresMemo`).
    pub figures: Rendered,
    pub removable_count: usize,
}

/// A daemon's disk bar and figures: the part of its card that changes only
/// with its inventory (not with the clock, nor its contact).
#[derive(Template)]
#[template(path = "fragments/daemon_figures.html")]
struct Figures {
    inv: FiguresText,
}

struct FiguresText {
    bar: charts::Bar,
    images: usize,
    total: String,
    outdated_count: usize,
    outdated_bytes: String,
    removable_count: usize,
    removable_bytes: String,
}

/// Each daemon's `Figures` as last rendered, with the name and figures it
/// was rendered from: at 100 daemons, building and escaping the disk bars
/// was a third of every overview request, for the same HTML until a scan
/// finds something new.
#[derive(Default)]
pub struct FiguresMemo(Mutex<HashMap<i64, (String, DaemonFigures, Rendered)>>);

impl FiguresMemo {
    fn render(&self, daemon: &StoredDaemon, f: &DaemonFigures) -> Rendered {
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((name, figures, html)) = held.get(&daemon.id) {
            if name == daemon.name.as_str() && figures == f {
                return html.clone();
            }
        }
        let figures = Figures {
            inv: FiguresText {
                bar: charts::bar(&f.disk),
                images: f.images,
                total: format::bytes(f.total_bytes),
                outdated_count: f.outdated_images,
                outdated_bytes: format::bytes(f.outdated_bytes),
                removable_count: f.removable_images,
                removable_bytes: format::bytes(f.removable_bytes),
            },
        };
        let html = Rendered::new(figures.render().expect("the figures template renders"));
        held.insert(
            daemon.id,
            (daemon.name.to_string(), f.clone(), html.clone()),
        );
        html
    }
}

/// What the overview keeps rendered: each daemon's figures, and the cards.
#[derive(Default)]
pub struct Memos {
    figures: FiguresMemo,
    cards: RenderMemo<CardsKey>,
}

/// What the cards are rendered from: the daemons and their contact (the
/// reads), their figures (the report), their scans' times and errors, each
/// the very same value (held weakly), at one second. At 100 daemons,
/// building and rendering the cards was most of an overview request's
/// CPU; now the requests of one second that find nothing changed share
/// one render (a rescan changes a daemon's scan some 20 times a second).
pub struct CardsKey {
    reads: Weak<Reads>,
    report: Weak<Report>,
    /// In the daemons' order.
    scans: Vec<Option<Weak<CachedScan>>>,
    refresh: bool,
    now: i64,
}

impl CardsKey {
    fn of(
        reads: &Current,
        report: &Arc<Report>,
        scans: &HashMap<i64, Arc<CachedScan>>,
        refresh: bool,
        now: i64,
    ) -> Self {
        Self {
            reads: reads.weak(),
            report: Arc::downgrade(report),
            scans: reads
                .daemons
                .iter()
                .map(|d| scans.get(&d.id).map(Arc::downgrade))
                .collect(),
            refresh,
            now,
        }
    }
}

impl PartialEq for CardsKey {
    fn eq(&self, other: &Self) -> bool {
        let same = |a: &Option<Weak<CachedScan>>, b: &Option<Weak<CachedScan>>| match (a, b) {
            (Some(a), Some(b)) => Weak::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        Weak::ptr_eq(&self.reads, &other.reads)
            && Weak::ptr_eq(&self.report, &other.report)
            && self.refresh == other.refresh
            && self.now == other.now
            && self.scans.len() == other.scans.len()
            && self.scans.iter().zip(&other.scans).all(|(a, b)| same(a, b))
    }
}

/// Every daemon's card, as one render.
#[derive(Template)]
#[template(path = "fragments/cards.html")]
struct CardsBlock {
    cards: Vec<Card>,
}

/// The headline and the per-ExApp table, ready to print.
pub struct Headline {
    /// "X can be freed now from N images (M ExApps)", or that nothing can.
    pub now: String,
    /// "Y more after the 24 h minimum age, from …", when anything waits.
    pub later: Option<Html>,
    /// Why "Clean now" is off; None when there is something to remove.
    pub blocked: Option<Html>,
    /// "Freed so far: 3.20 GB in 4 runs", once anything was freed.
    pub freed: Option<String>,
    pub rows: Vec<ExAppRow>,
    /// Rendered by a rescan: htmx swaps it in out of band, next to the cards.
    pub oob: bool,
}

pub struct ExAppRow {
    pub owner: String,
    /// AppAPI's name and version, when connected to Nextcloud.
    pub label: Option<String>,
    pub outdated_images: usize,
    pub outdated_bytes: u64,
    pub outdated_text: String,
    pub removable_images: usize,
    pub removable_bytes: u64,
    pub removable_text: String,
    /// What keeps the rest: "waits until …", "1 kept (keep_previous)".
    pub note: Html,
}

use format::count as plural;

/// The headline's words for `s` at `now`. PURE, so the wording is tested directly.
pub fn headline(s: &Summary, policy: &policy::Policy, halted: bool, now: i64) -> Headline {
    let freeable = if s.removable_images == 0 {
        "Nothing can be freed now.".to_owned()
    } else {
        let mut from = vec![plural(s.removable_exapps, "ExApp", "ExApps")];
        if s.removable_unowned > 0 {
            from.push(format!("{} without an owner", s.removable_unowned));
        }
        format!(
            "{} can be freed now from {} ({}).",
            format::bytes(s.removable_bytes),
            plural(s.removable_images, "image", "images"),
            from.join(", ")
        )
    };
    let later = s.waiting_from.map(|at| {
        Html::new()
            .text(&format!(
                "{}{} after the {} h minimum age, from ",
                format::bytes(s.waiting_bytes),
                if s.removable_images == 0 { "" } else { " more" },
                policy.min_age_hours,
            ))
            .when(&When::at(at, now))
            .text(&format!(
                " · {}.",
                plural(s.waiting_images, "image", "images")
            ))
    });
    let says = |text: &str| Some(Html::new().text(text));
    let blocked = if halted {
        says("Nothing is removed while the settings cannot be read.")
    } else if s.removable_images > 0 {
        None
    } else if let Some(at) = s.waiting_from {
        Some(
            Html::new()
                .text("Nothing is removable yet: the first waiting image becomes removable on ")
                .when(&When::at(at, now))
                .text("."),
        )
    } else if s.exapps.iter().any(|x| x.kept_images > 0) {
        says("Nothing is removable: keep_previous keeps every outdated image.")
    } else {
        says("Nothing is removable: no image is outdated.")
    };
    let rows = s
        .exapps
        .iter()
        .map(|x| {
            let mut note = Html::new();
            if let Some(at) = x.waiting_from {
                note = note
                    .text(&format!(
                        "{} {} until ",
                        x.waiting_images,
                        if x.waiting_images == 1 {
                            "waits"
                        } else {
                            "wait"
                        },
                    ))
                    .when(&When::at(at, now));
            }
            if x.kept_images > 0 {
                if x.waiting_from.is_some() {
                    note = note.text(" · ");
                }
                note = note.text(&format!("{} kept (keep_previous)", x.kept_images));
            }
            ExAppRow {
                owner: x.owner.clone(),
                label: None,
                outdated_images: x.outdated_images,
                outdated_bytes: x.outdated_bytes,
                outdated_text: format::bytes(x.outdated_bytes),
                removable_images: x.removable_images,
                removable_bytes: x.removable_bytes,
                removable_text: format::bytes(x.removable_bytes),
                note,
            }
        })
        .collect();
    Headline {
        now: freeable,
        later,
        blocked,
        freed: None,
        rows,
        oob: false,
    }
}

/// A daemon's card: its figures from `report` (built once per inventory,
/// policy and names), its scan's time and error from `scans`, worded at `now`.
fn card(
    daemon: &StoredDaemon,
    scans: &HashMap<i64, Arc<CachedScan>>,
    report: &Report,
    memo: &FiguresMemo,
    refresh: bool,
    now: i64,
) -> Card {
    let cached = scans.get(&daemon.id);
    let inv = report.figures(daemon.id).map(|f| InventoryView {
        figures: memo.render(daemon, f),
        removable_count: f.removable_images,
    });
    Card {
        d: DaemonSummary::from(daemon),
        refresh,
        inv,
        scanned_at: cached
            .and_then(|c| c.scanned_at)
            .map(|at| When::at(at, now)),
        scan_error: cached
            .filter(|c| c.failed_last())
            .and_then(|c| c.error.clone()),
    }
}

/// What the overview shows of the daemons, from the same scans at the
/// same moment.
struct Shown {
    /// Every daemon's card (`CardsBlock`), rendered.
    cards: Rendered,
    no_daemons: bool,
    h: Headline,
    /// Why nothing is removed while the settings cannot be read.
    halted: Option<String>,
    /// Why AppAPI's lists may be old, and how many daemons it proposes.
    nextcloud: (Option<String>, usize),
}

async fn cards(app: &Janitor, memo: &Memos, refresh: bool) -> Result<Shown, PageError> {
    let reads = app.reads().await.map_err(PageError::internal)?;
    let scans = app.scans_of(&reads).await.map_err(PageError::internal)?;
    let report = app.report_of(&reads, &scans).await;
    let daemons = &reads.daemons;
    let (policy, now) = (report.policy(), app.clock().now_unix());
    let key = CardsKey::of(&reads, &report, &scans, refresh, now);
    let cards = memo.cards.get(key, || {
        let cards = daemons
            .iter()
            .map(|d| card(d, &scans, &report, &memo.figures, refresh, now))
            .collect();
        CardsBlock { cards }
            .render()
            .expect("the cards template renders")
    });
    let mut h = headline(report.summary(), &policy, policy.halted, now);
    for row in &mut h.rows {
        row.label = reads
            .names
            .get(&row.owner)
            .and_then(|(name, version)| crate::report::owner_label(name, Some(version)));
    }
    h.freed = freed_so_far(app).await?;
    Ok(Shown {
        cards,
        no_daemons: daemons.is_empty(),
        h,
        // From the same reads as the rest, not one more.
        halted: reads.settings().err().map(|e| e.to_string()),
        nextcloud: (
            reads.nextcloud.stale_note(),
            reads
                .nextcloud
                .proposals
                .iter()
                .filter(|p| p.state == crate::nextcloud_link::ProposalState::Proposed)
                .count(),
        ),
    })
}

/// "Freed so far: 3.20 GB in 4 runs", from the job history; None before
/// anything was freed.
async fn freed_so_far(app: &Janitor) -> Result<Option<String>, PageError> {
    let (bytes, runs) = app
        .store
        .freed_so_far()
        .await
        .map_err(PageError::internal)?;
    Ok((bytes > 0).then(|| {
        format!(
            "Freed so far: {} in {}.",
            format::bytes(bytes),
            plural(usize::try_from(runs).unwrap_or(usize::MAX), "run", "runs")
        )
    }))
}

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    layout: Layout,
    /// Where the cards go (`Shown::cards`, sent uncopied).
    cards: Slot,
    no_daemons: bool,
    h: Headline,
    /// Why nothing is removed right now (the settings cannot be read).
    halted: Option<String>,
    /// Nextcloud failed to answer: the janitor works from AppAPI's last lists.
    nextcloud_stale: Option<String>,
    /// AppAPI daemons waiting for the admin's answer.
    nextcloud_proposed: usize,
}

async fn overview(
    app: web::Data<Janitor>,
    memo: web::Data<Memos>,
    session: CurrentSession,
) -> Result<HttpResponse, PageError> {
    let shown = cards(&app, &memo, true).await?;
    let page = Overview {
        layout: Layout::page("overview", &session),
        cards: Slot(0),
        no_daemons: shown.no_daemons,
        h: shown.h,
        halted: shown.halted,
        nextcloud_stale: shown.nextcloud.0,
        nextcloud_proposed: shown.nextcloud.1,
    };
    Ok(spliced(StatusCode::OK, &page, &[shown.cards]))
}

/// The cards, and the headline swapped in out of band: both change with a scan.
#[derive(Template)]
#[template(path = "fragments/rescanned.html")]
struct Cards {
    cards: Slot,
    h: Headline,
}

/// Rescans every daemon; htmx swaps in the new cards and headline, a plain
/// form returns to the overview.
async fn rescan(
    app: web::Data<Janitor>,
    memo: web::Data<Memos>,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    scan::scan_all(&app.store, &app.scan_options().await)
        .await
        .map_err(PageError::internal)?;
    if req.headers().contains_key("HX-Request") {
        let mut shown = cards(&app, &memo, false).await?;
        shown.h.oob = true;
        let fragment = Cards {
            cards: Slot(0),
            h: shown.h,
        };
        Ok(spliced(StatusCode::OK, &fragment, &[shown.cards]))
    } else {
        Ok(HttpResponse::SeeOther()
            .insert_header(("Location", "/"))
            .finish())
    }
}

#[derive(Template)]
#[template(path = "fragments/daemon_card.html")]
struct CardFragment {
    c: Card,
}

/// One card with a fresh contact to its daemon (the overview's cards ask for
/// this once each, so a slow daemon only delays its own card).
async fn daemon_card(
    app: web::Data<Janitor>,
    memo: web::Data<Memos>,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let daemon = daemons::get(&app.store, &name).await?;
    let checked = daemons::check(&app.store, daemon, app.daemon_timeout).await;
    let reads = app.reads().await.map_err(PageError::internal)?;
    let scans = app.scans_of(&reads).await.map_err(PageError::internal)?;
    let report = app.report_of(&reads, &scans).await;
    let fragment = CardFragment {
        c: card(
            &checked,
            &scans,
            &report,
            &memo.figures,
            false,
            app.clock().now_unix(),
        ),
    };
    Ok(html(StatusCode::OK, &fragment))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;
    use crate::report::summary::ExAppFigures;

    const AT: i64 = 1_800_000_000; // 2027-01-15 08:00 UTC

    fn daemon(id: i64, name: &str) -> StoredDaemon {
        StoredDaemon::for_tests(id, name)
    }

    fn figures(removable_images: usize) -> DaemonFigures {
        DaemonFigures {
            images: 3,
            total_bytes: 3_000,
            outdated_images: 2,
            outdated_bytes: 2_000,
            removable_images,
            removable_bytes: 1_000,
            disk: vec![],
            share: Default::default(),
        }
    }

    #[test]
    fn a_daemons_figures_are_rendered_once_until_they_or_its_name_change() {
        let memo = FiguresMemo::default();
        let (a, renamed) = (daemon(1, "a"), daemon(1, "b"));
        let first = memo.render(&a, &figures(1));
        assert!(first.is(&memo.render(&a, &figures(1))));
        let changed = memo.render(&a, &figures(2));
        assert!(!first.is(&changed));
        assert!(
            changed.as_str().contains("2 images, 1.00 kB"),
            "{}",
            changed.as_str()
        );
        assert!(!changed.is(&memo.render(&renamed, &figures(2))));
    }

    #[test]
    fn the_headline_says_what_goes_now_from_how_many_images_and_exapps() {
        let s = Summary {
            removable_bytes: 1_500_000_000,
            removable_images: 3,
            removable_exapps: 2,
            waiting_bytes: 400_000_000,
            waiting_images: 1,
            waiting_from: Some(AT),
            ..Summary::default()
        };
        let h = headline(&s, &Policy::default(), false, AT - 7_200);
        assert_eq!(h.now, "1.50 GB can be freed now from 3 images (2 ExApps).");
        assert_eq!(
            h.later.map(|l| l.plain()).as_deref(),
            Some("400 MB more after the 24 h minimum age, from 2027-01-15 08:00 UTC (in 2 h) · 1 image.")
        );
        assert_eq!(h.blocked, None);
    }

    #[test]
    fn clean_now_is_off_with_the_reason_when_nothing_is_removable() {
        let waiting = Summary {
            waiting_bytes: 10,
            waiting_images: 2,
            waiting_from: Some(AT),
            ..Summary::default()
        };
        let h = headline(&waiting, &Policy::default(), false, AT - 7_200);
        assert_eq!(h.now, "Nothing can be freed now.");
        assert!(h.later.unwrap().plain().starts_with("10 B after the 24 h"));
        assert_eq!(
            h.blocked.map(|b| b.plain()).as_deref(),
            Some(
                "Nothing is removable yet: the first waiting image becomes removable on 2027-01-15 08:00 UTC (in 2 h)."
            )
        );
        let kept = Summary {
            exapps: vec![ExAppFigures {
                owner: "llm2".into(),
                outdated_images: 1,
                kept_images: 1,
                ..ExAppFigures::default()
            }],
            ..Summary::default()
        };
        let h = headline(&kept, &Policy::default(), false, AT);
        assert_eq!(h.rows[0].note.plain(), "1 kept (keep_previous)");
        let both = Summary {
            exapps: vec![ExAppFigures {
                owner: "llm2".into(),
                outdated_images: 3,
                waiting_images: 2,
                waiting_from: Some(AT),
                kept_images: 1,
                ..ExAppFigures::default()
            }],
            ..Summary::default()
        };
        assert_eq!(
            headline(&both, &Policy::default(), false, AT - 3 * 86_400).rows[0]
                .note
                .plain(),
            "2 wait until 2027-01-15 08:00 UTC (in 3 days) · 1 kept (keep_previous)"
        );
        assert!(h.blocked.unwrap().plain().contains("keep_previous"));
        let none = headline(&Summary::default(), &Policy::default(), false, AT);
        assert_eq!(
            none.blocked.map(|b| b.plain()).as_deref(),
            Some("Nothing is removable: no image is outdated.")
        );
        assert!(headline(&Summary::default(), &Policy::HALTED, true, AT)
            .blocked
            .unwrap()
            .plain()
            .contains("settings cannot be read"));
    }
}
