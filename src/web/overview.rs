//! The overview: one card per daemon (reachability and disk use from its
//! last scan) and the Rescan button.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use askama_web::WebTemplate;

use super::charts;
use super::errors::{html, PageError};
use super::format;
use super::guard::CurrentSession;
use super::layout::Layout;
use crate::app::App;
use crate::daemons::{self, DaemonSummary};
use crate::inventory::{layers, Status};
use crate::policy;
use crate::scan::{self, CachedScan};
use crate::store::StoredDaemon;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(overview))
        .route("/scan", web::post().to(rescan))
        .route("/daemons/{name}/card", web::get().to(daemon_card));
}

/// A daemon's card: who it is, whether it answers, and what its last scan found.
pub struct Card {
    pub d: DaemonSummary,
    /// Render the last known contact and let the card refresh itself once.
    pub refresh: bool,
    pub inv: Option<InventoryView>,
    pub scanned_at: Option<String>,
    /// The last scan failed (the figures, if any, are from an older scan).
    pub scan_error: Option<String>,
}

pub struct InventoryView {
    pub bar: charts::Bar,
    pub images: usize,
    pub total: String,
    pub outdated_count: usize,
    pub outdated_bytes: String,
    pub removable_count: usize,
    pub removable_bytes: String,
}

fn card(
    daemon: &StoredDaemon,
    scans: &HashMap<i64, Arc<CachedScan>>,
    policy: &policy::Policy,
    refresh: bool,
    now: i64,
) -> Card {
    let cached = scans.get(&daemon.id);
    let inv = cached.and_then(|c| c.scan.as_ref()).map(|scan| {
        let decisions = policy::decide(policy, &scan.images, now);
        let users = layers::layer_users(scan.images.iter().map(|i| i.info.layers.as_slice()));
        let removable: Vec<&[layers::Layer]> = scan
            .images
            .iter()
            .zip(&decisions)
            .filter(|(_, d)| d.removable)
            .map(|(i, _)| i.info.layers.as_slice())
            .collect();
        InventoryView {
            bar: charts::bar(&charts::disk_parts(&scan.images, &decisions)),
            images: scan.totals.images,
            total: format::bytes(scan.totals.total_bytes),
            outdated_count: scan
                .images
                .iter()
                .filter(|i| i.status == Status::Outdated)
                .count(),
            outdated_bytes: format::bytes(scan.totals.outdated_reclaimable),
            removable_count: removable.len(),
            removable_bytes: format::bytes(layers::reclaimable(removable.iter().copied(), &users)),
        }
    });
    Card {
        d: DaemonSummary::from(daemon),
        refresh,
        inv,
        scanned_at: cached.and_then(|c| c.scanned_at).map(format::datetime),
        scan_error: cached
            .filter(|c| c.failed_last())
            .and_then(|c| c.error.clone()),
    }
}

async fn cards(app: &App, refresh: bool) -> Result<Vec<Card>, PageError> {
    let daemons = daemons::list(&app.store).await?;
    let scans = app
        .inventory
        .current(&app.store)
        .await
        .map_err(PageError::internal)?;
    let (policy, now) = (app.policy().await, now_unix());
    Ok(daemons
        .iter()
        .map(|d| card(d, &scans, &policy, refresh, now))
        .collect())
}

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    layout: Layout,
    cards: Vec<Card>,
    /// Why nothing is removed right now (the settings cannot be read).
    halted: Option<String>,
}

async fn overview(app: web::Data<App>, session: CurrentSession) -> Result<HttpResponse, PageError> {
    let page = Overview {
        layout: Layout::page("overview", &session),
        cards: cards(&app, true).await?,
        halted: app.current_settings().await.err().map(|e| e.to_string()),
    };
    Ok(html(StatusCode::OK, &page))
}

#[derive(Template, WebTemplate)]
#[template(path = "fragments/cards.html")]
struct Cards {
    cards: Vec<Card>,
}

/// Rescans every daemon; htmx swaps in the new cards, a plain form returns
/// to the overview.
async fn rescan(app: web::Data<App>, req: HttpRequest) -> Result<HttpResponse, PageError> {
    scan::scan_all(&app.store, &app.scan_options().await)
        .await
        .map_err(PageError::internal)?;
    if req.headers().contains_key("HX-Request") {
        Ok(html(
            StatusCode::OK,
            &Cards {
                cards: cards(&app, false).await?,
            },
        ))
    } else {
        Ok(HttpResponse::SeeOther()
            .insert_header(("Location", "/"))
            .finish())
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "fragments/daemon_card.html")]
struct CardFragment {
    c: Card,
}

/// One card with a fresh contact to its daemon (the overview's cards ask for
/// this once each, so a slow daemon only delays its own card).
async fn daemon_card(
    app: web::Data<App>,
    name: web::Path<String>,
) -> Result<CardFragment, PageError> {
    let daemon = daemons::get(&app.store, &name).await?;
    let checked = daemons::check(&app.store, daemon, app.daemon_timeout).await;
    let scans = app
        .inventory
        .current(&app.store)
        .await
        .map_err(PageError::internal)?;
    Ok(CardFragment {
        c: card(&checked, &scans, &app.policy().await, false, now_unix()),
    })
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
