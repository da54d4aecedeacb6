//! The Images page (one table across daemons: filter, search, sort, more
//! rows on demand, updated in place with htmx) and the ExApps page.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Weak};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::errors::{html, PageError};
use super::format;
use super::guard::CurrentSession;
use super::layout::Layout;
use super::render_memo::RenderMemo;
use super::shared_body::{shared_html, spliced, Slot};
use crate::domain::FieldErrors;
use crate::inventory::Status;
use crate::janitor::Janitor;
use crate::report::{self, ImageFilter, ImageFilterInput, ImageObject, Report};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::Data::new(RowsMemo::default()))
        .route("/images", web::get().to(images_page))
        .route("/exapps", web::get().to(exapps_page));
}

/// Rows sent at once; "Show more" fetches the next ones.
const PAGE_SIZE: usize = 250;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SortKey {
    Daemon,
    Image,
    Owner,
    Status,
    Created,
    Size,
    Unique,
}

impl SortKey {
    const ALL: [(SortKey, &'static str); 7] = [
        (SortKey::Image, "image"),
        (SortKey::Daemon, "daemon"),
        (SortKey::Owner, "owner"),
        (SortKey::Status, "status"),
        (SortKey::Created, "created"),
        (SortKey::Size, "size"),
        (SortKey::Unique, "unique"),
    ];

    fn parse(raw: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, n)| *n == raw).map(|(k, _)| *k)
    }

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(k, _)| *k == self)
            .map(|(_, n)| *n)
            .unwrap_or("unique")
    }
}

#[derive(Debug, Default, Deserialize)]
struct ImagesQuery {
    #[serde(flatten)]
    filter: ImageFilterInput,
    sort: Option<String>,
    dir: Option<String>,
    offset: Option<String>,
}

struct ParsedQuery {
    filter: ImageFilter,
    raw: ImageFilterInput,
    sort: SortKey,
    descending: bool,
    offset: usize,
}

fn parse_query(q: &ImagesQuery) -> Result<ParsedQuery, FieldErrors> {
    let mut errors = FieldErrors::new();
    let filter = ImageFilter::parse(&q.filter).map_err(|e| {
        for (f, m) in e.iter() {
            errors.add(f, m);
        }
    });
    let sort = match q.sort.as_deref().filter(|s| !s.is_empty()) {
        None => SortKey::Unique,
        Some(s) => SortKey::parse(s).unwrap_or_else(|| {
            errors.add("sort", "unknown column");
            SortKey::Unique
        }),
    };
    let descending = match q.dir.as_deref() {
        None | Some("") => matches!(sort, SortKey::Created | SortKey::Size | SortKey::Unique),
        Some("desc") => true,
        Some("asc") => false,
        Some(_) => {
            errors.add("dir", "asc or desc");
            false
        }
    };
    let offset = match q.offset.as_deref() {
        None | Some("") => 0,
        Some(o) => o
            .parse::<usize>()
            .ok()
            .filter(|o| *o <= 10_000_000)
            .unwrap_or_else(|| {
                errors.add("offset", "a row number");
                0
            }),
    };
    match filter {
        Ok(filter) if errors.is_empty() => Ok(ParsedQuery {
            filter,
            raw: q.filter.clone(),
            sort,
            descending,
            offset,
        }),
        _ => Err(errors),
    }
}

/// One table row, ready to print: borrowed from its image object, so that
/// a page of 250 rows copies no text it only prints.
pub struct Row<'a> {
    pub daemon: &'a str,
    pub reference: format::Reference,
    pub more_refs: Vec<&'a str>,
    pub short_id: &'a str,
    pub id: &'a str,
    pub owner: &'a str,
    /// AppAPI's name and version of the owner, when connected to Nextcloud.
    pub owner_label: Option<String>,
    pub status: &'static str,
    pub status_label: &'static str,
    pub removable: bool,
    /// One line: what it is and what happens to it ("outdated 3 days ago · removable").
    pub short_reason: format::Html,
    /// The whole reason, behind the short one.
    pub reason: &'a str,
    pub created: Option<format::When>,
    pub size: String,
    pub unique: String,
    pub containers: String,
}

fn status_label(s: Status) -> &'static str {
    match s {
        Status::Current => "current",
        Status::InUse => "in use",
        Status::Protected => "protected",
        Status::Pending => "pending",
        Status::Outdated => "outdated",
        Status::Dangling => "dangling",
        Status::Foreign => "foreign",
    }
}

/// The one line a row shows of its reason. PURE: the wording is tested.
pub fn short_reason(i: &ImageObject, now: i64, min_age_hours: u32) -> format::Html {
    let h = format::Html::new();
    let since = i.outdated_since;
    // "Removable" is the row's badge already.
    let fate = if i.removable {
        ""
    } else if i.kept_previous {
        "kept (keep_previous)"
    } else {
        ""
    };
    match (i.status, i.waits_until) {
        (Status::Outdated, Some(at)) => h
            .text("waits until ")
            .when(&format::When::at(at, now))
            .text(&format!(" · min age {min_age_hours} h")),
        (Status::Outdated, None) => {
            let h = match since {
                Some(at) => h.text("outdated ").when(&format::When::ago(at, now)),
                None => h.text("outdated"),
            };
            if fate.is_empty() {
                h
            } else {
                h.text(" · ").text(fate)
            }
        }
        (Status::Dangling, _) => h.text(if i.removable {
            "dangling"
        } else {
            "dangling · kept (remove_dangling is off)"
        }),
        (Status::Pending, _) => h.text(&format!(
            "pulled for {}, not used yet",
            i.owner.as_deref().unwrap_or("?")
        )),
        (Status::Current, _) => h.text(&format!(
            "current image of {}",
            i.owner.as_deref().unwrap_or("?")
        )),
        (Status::Foreign, _) => h.text("not an ExApp's"),
        // In use, protected: the first clause of the reason says it.
        _ => h.text(first_clause(&i.reason)),
    }
}

/// A reason up to its first "; " (the rest is behind "more").
fn first_clause(reason: &str) -> &str {
    reason.split("; ").next().unwrap_or(reason)
}

impl<'a> Row<'a> {
    pub fn new(i: &'a ImageObject, now: i64, min_age_hours: u32) -> Self {
        let mut refs = i
            .repo_tags
            .iter()
            .chain(&i.repo_digests)
            .map(String::as_str);
        Self {
            daemon: &i.daemon,
            reference: format::Reference::new(refs.next().unwrap_or("<none>")),
            more_refs: refs.collect(),
            short_id: i.short_id(),
            id: &i.id,
            owner: i.owner.as_deref().unwrap_or_default(),
            owner_label: i.owner_label(),
            status: i.status.as_str(),
            status_label: status_label(i.status),
            removable: i.removable,
            short_reason: short_reason(i, now, min_age_hours),
            reason: &i.reason,
            // A table reads "3 days ago"; the moment shows on hover.
            created: Some(format::When::ago(i.created_at, now)),
            size: format::bytes(i.size_bytes),
            unique: format::bytes(i.frees()),
            containers: i.containers.join(", "),
        }
    }
}

fn first_ref(i: &ImageObject) -> &str {
    i.repo_tags
        .first()
        .or(i.repo_digests.first())
        .map_or("", String::as_str)
}

fn sort(images: &mut [&ImageObject], key: SortKey, descending: bool) {
    images.sort_by(|a, b| order(a, b, key, descending));
}

fn order(a: &ImageObject, b: &ImageObject, key: SortKey, descending: bool) -> std::cmp::Ordering {
    let order = match key {
        SortKey::Daemon => a.daemon.cmp(&b.daemon),
        SortKey::Image => first_ref(a).cmp(first_ref(b)),
        SortKey::Owner => a.owner.cmp(&b.owner),
        SortKey::Status => a.status.cmp(&b.status),
        SortKey::Created => a.created_at.cmp(&b.created_at),
        SortKey::Size => a.size_bytes.cmp(&b.size_bytes),
        SortKey::Unique => a.frees().cmp(&b.frees()),
    };
    let order = if descending { order.reverse() } else { order };
    order
        .then_with(|| a.id.cmp(&b.id))
        .then_with(|| a.daemon.cmp(&b.daemon))
}

/// A column header: its link sorts by it, toggling the direction.
pub struct Column {
    pub label: &'static str,
    pub href: String,
    /// `ascending`, `descending` or `none`, for aria-sort.
    pub aria_sort: &'static str,
    /// Hidden on a phone until asked for: image, owner, status and "frees
    /// alone" are what an admin decides on.
    pub optional: bool,
    /// Right-aligned, as its figures are.
    pub numeric: bool,
}

#[derive(Clone)]
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

fn query_string(q: &ImageFilterInput, sort: SortKey, descending: bool, offset: usize) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    for (k, v) in [
        ("daemon", &q.daemon),
        ("owner", &q.owner),
        ("status", &q.status),
        ("q", &q.search),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            pairs.push((k, v.to_owned()));
        }
    }
    pairs.push(("sort", sort.name().to_owned()));
    pairs.push(("dir", if descending { "desc" } else { "asc" }.to_owned()));
    if offset > 0 {
        pairs.push(("offset", offset.to_string()));
    }
    serde_urlencoded::to_string(&pairs).unwrap_or_default()
}

#[derive(Template)]
#[template(path = "images.html")]
struct ImagesPage {
    layout: Layout,
    r: Results,
    daemons: Vec<Choice>,
    owners: Vec<Choice>,
    statuses: Vec<Choice>,
    search: String,
    errors: FieldErrors,
}

/// The part htmx swaps when a filter changes: summary, table, more link.
#[derive(Template)]
#[template(path = "fragments/image_results_alone.html")]
struct Results {
    total: usize,
    columns: Vec<Column>,
    /// Where `Rows`, rendered once (`RowsMemo`), is sent.
    rows: Slot,
}

#[derive(Clone, PartialEq, Eq)]
pub struct More {
    pub href: String,
    pub remaining: usize,
}

#[derive(Template)]
#[template(path = "fragments/image_rows.html")]
struct Rows<'a> {
    rows: Vec<Row<'a>>,
    more: Option<More>,
}

async fn images_page(
    app: web::Data<Janitor>,
    memo: web::Data<RowsMemo>,
    session: CurrentSession,
    req: HttpRequest,
    query: web::Query<ImagesQuery>,
) -> Result<HttpResponse, PageError> {
    // A query with errors shows them next to the form, and the default
    // table under it.
    let (parsed, errors) = match parse_query(&query) {
        Ok(p) => (p, FieldErrors::new()),
        Err(errors) => (
            parse_query(&ImagesQuery::default()).expect("the default query is valid"),
            errors,
        ),
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let report = app.report().await.map_err(PageError::internal)?;
    // The whole table in its order, kept with the report: the next request
    // for it, its "Show more" included, reads only the rows it shows.
    let (filter, key, descending) = (&parsed.filter, parsed.sort, parsed.descending);
    let view_key = format!("{filter:?} {} {descending}", key.name());
    let view = report.view(view_key.clone(), |report| {
        let mut found: Vec<_> = report.matching_at(filter).collect();
        found.sort_unstable_by(|(_, a), (_, b)| order(a, b, key, descending));
        found.into_iter().map(|(at, _)| at).collect()
    });
    let now = app.clock().now_unix();
    let (shown, more) = page_of(view.len(), &parsed);
    let rows_key = RowsKey {
        report: Arc::downgrade(&report),
        view: view_key,
        shown: shown.clone(),
        now,
        more: more.clone(),
    };
    let rows = memo.get(rows_key, || {
        let min_age_hours = report.policy().min_age_hours;
        let rows = view
            .get(shown)
            .unwrap_or(&[])
            .iter()
            .map(|at| Row::new(report.at(*at), now, min_age_hours))
            .collect();
        Rows { rows, more }
            .render()
            .expect("the rows template renders")
    });

    // htmx asks for only the part it swaps: the next rows ("Show more"),
    // or the table when a filter or a sort changed.
    let part = htmx_target(&req);
    if part == Some("more") {
        return Ok(shared_html(status, &rows));
    }
    let results = Results {
        total: view.len(),
        columns: columns(&parsed),
        rows: Slot(0),
    };
    if part == Some("results") {
        return Ok(spliced(status, &results, &[rows]));
    }
    let page = ImagesPage {
        layout: Layout::page("images", &session),
        r: results,
        daemons: daemon_choices(&report, &parsed.raw),
        owners: owner_choices(&report, &parsed.raw),
        statuses: status_choices(&parsed.raw),
        search: parsed.raw.search.clone().unwrap_or_default(),
        errors,
    };
    Ok(spliced(status, &page, &[rows]))
}

/// The rendered rows of one page of one table (`render_memo`): 32 clients
/// asking for the same table within a second share one render.
pub type RowsMemo = RenderMemo<RowsKey>;

/// What a page of rows is rendered from: the rows of `shown` in one view of
/// one report (its policy included), at `now`, and the "Show more" link.
pub struct RowsKey {
    /// Held weakly: a report no request reads any more is let go, and its
    /// place is not taken by another while this key exists.
    report: Weak<Report>,
    view: String,
    shown: Range<usize>,
    now: i64,
    more: Option<More>,
}

impl PartialEq for RowsKey {
    fn eq(&self, other: &Self) -> bool {
        Weak::ptr_eq(&self.report, &other.report)
            && self.view == other.view
            && self.shown == other.shown
            && self.now == other.now
            && self.more == other.more
    }
}

/// The element an htmx request will swap (`HX-Target`); None for a plain
/// request, which gets the whole page.
fn htmx_target(req: &HttpRequest) -> Option<&str> {
    if !req.headers().contains_key("HX-Request") {
        return None;
    }
    Some(
        req.headers()
            .get("HX-Target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    )
}

/// The places in a view of `total` rows that `parsed.offset` shows, one
/// page of them, and the link to the next page if there is more.
fn page_of(total: usize, parsed: &ParsedQuery) -> (Range<usize>, Option<More>) {
    let page_end = (parsed.offset + PAGE_SIZE).min(total);
    let more = (page_end < total).then(|| More {
        href: format!(
            "/images?{}",
            query_string(&parsed.raw, parsed.sort, parsed.descending, page_end)
        ),
        remaining: total - page_end,
    });
    (parsed.offset..page_end.max(parsed.offset), more)
}

/// The table's headers: each links to the table sorted by it (the sorted
/// column the other way round; a new column by size and time largest
/// first, by text A to Z).
fn columns(parsed: &ParsedQuery) -> Vec<Column> {
    SortKey::ALL
        .iter()
        .map(|(key, _)| {
            let active = *key == parsed.sort;
            let descending = if active {
                !parsed.descending
            } else {
                matches!(key, SortKey::Created | SortKey::Size | SortKey::Unique)
            };
            Column {
                label: match key {
                    SortKey::Image => "Image",
                    SortKey::Daemon => "Daemon",
                    SortKey::Owner => "Owner",
                    SortKey::Status => "Status",
                    SortKey::Created => "Created",
                    SortKey::Size => "Size",
                    SortKey::Unique => "Frees alone",
                },
                href: format!("/images?{}", query_string(&parsed.raw, *key, descending, 0)),
                aria_sort: match (active, parsed.descending) {
                    (false, _) => "none",
                    (true, true) => "descending",
                    (true, false) => "ascending",
                },
                optional: matches!(key, SortKey::Daemon | SortKey::Created | SortKey::Size),
                numeric: matches!(key, SortKey::Size | SortKey::Unique),
            }
        })
        .collect()
}

// The filter form's choices come from everything known, not just the
// filtered rows: a filter that matches nothing can still be changed.

fn daemon_choices(report: &Report, raw: &ImageFilterInput) -> Vec<Choice> {
    report
        .daemon_names()
        .map(|d| Choice {
            value: d.to_owned(),
            label: d.to_owned(),
            selected: raw.daemon.as_deref() == Some(d),
        })
        .collect()
}

fn owner_choices(report: &Report, raw: &ImageFilterInput) -> Vec<Choice> {
    report
        .owners
        .iter()
        .map(|o| Choice {
            selected: raw.owner.as_deref() == Some(o.as_str()),
            label: o.clone(),
            value: o.clone(),
        })
        .collect()
}

fn status_choices(raw: &ImageFilterInput) -> Vec<Choice> {
    let selected = |x: &str| raw.status.as_deref() == Some(x);
    // "removable now" first: it is the question the admin comes with.
    std::iter::once(Choice {
        value: report::REMOVABLE.to_owned(),
        label: "removable now".to_owned(),
        selected: selected(report::REMOVABLE),
    })
    .chain(Status::ALL.iter().map(|s| Choice {
        value: s.as_str().to_owned(),
        label: status_label(*s).to_owned(),
        selected: selected(s.as_str()),
    }))
    .collect()
}

/// An ExApp's images on one daemon: current ones, then earlier ones.
type CurrentAndEarlier<'a> = (Vec<&'a ImageObject>, Vec<&'a ImageObject>);

/// One ExApp on one daemon: its current image and the earlier ones.
pub struct ExAppView<'a> {
    pub appid: String,
    /// AppAPI's name and version, when connected to Nextcloud.
    pub label: Option<String>,
    pub daemon: String,
    pub current: Vec<Row<'a>>,
    pub earlier: Vec<Row<'a>>,
    pub earlier_bytes: String,
}

#[derive(Template)]
#[template(path = "exapps.html")]
struct ExAppsPage<'a> {
    layout: Layout,
    exapps: Vec<ExAppView<'a>>,
}

async fn exapps_page(
    app: web::Data<Janitor>,
    session: CurrentSession,
) -> Result<HttpResponse, PageError> {
    let report = app.report().await.map_err(PageError::internal)?;
    let (now, min_age_hours) = (app.clock().now_unix(), report.policy().min_age_hours);
    let mut images: Vec<&ImageObject> = report.images.iter().collect();
    sort(&mut images, SortKey::Created, true);
    let mut groups: BTreeMap<(String, String), CurrentAndEarlier> = BTreeMap::new();
    for &image in &images {
        if let Some(owner) = &image.owner {
            let group = groups
                .entry((owner.clone(), image.daemon.clone()))
                .or_default();
            if image.status == Status::Current {
                group.0.push(image);
            } else {
                group.1.push(image);
            }
        }
    }
    let exapps = groups
        .into_iter()
        .map(|((appid, daemon), (current, earlier))| ExAppView {
            label: current.iter().chain(&earlier).find_map(|i| i.owner_label()),
            appid,
            daemon,
            earlier_bytes: format::bytes(earlier.iter().map(|i| i.frees()).sum()),
            current: current
                .into_iter()
                .map(|i| Row::new(i, now, min_age_hours))
                .collect(),
            earlier: earlier
                .into_iter()
                .map(|i| Row::new(i, now, min_age_hours))
                .collect(),
        })
        .collect();
    let page = ExAppsPage {
        layout: Layout::page("exapps", &session),
        exapps,
    };
    Ok(html(StatusCode::OK, &page))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn image(status: Status, removable: bool) -> ImageObject {
        ImageObject {
            daemon: "gpu".into(),
            id: format!("sha256:{}", "ab".repeat(32)),
            repo_tags: vec!["ghcr.io/nextcloud/llm2:1.0.0".into()],
            repo_digests: vec![],
            created_at: NOW - 86_400,
            size_bytes: 1,
            unique_bytes: Some(1),
            owner: Some("llm2".into()),
            owner_name: None,
            owner_version: None,
            status,
            removable,
            reason: "in use by backup; and more".into(),
            containers: vec![],
            outdated_since: Some(NOW - 3 * 86_400),
            waits_until: None,
            kept_previous: false,
        }
    }

    fn short(i: &ImageObject) -> String {
        short_reason(i, NOW, 24).plain()
    }

    #[test]
    fn a_removable_image_says_how_long_it_has_been_outdated() {
        assert_eq!(short(&image(Status::Outdated, true)), "outdated 3 days ago");
    }

    #[test]
    fn a_waiting_image_says_until_when_and_why() {
        let mut waiting = image(Status::Outdated, false);
        waiting.waits_until = Some(NOW + 7_200);
        assert_eq!(
            short(&waiting),
            "waits until 2027-01-15 10:00 UTC (in 2 h) · min age 24 h"
        );
    }

    #[test]
    fn a_kept_image_names_keep_previous() {
        let mut kept = image(Status::Outdated, false);
        kept.kept_previous = true;
        assert_eq!(short(&kept), "outdated 3 days ago · kept (keep_previous)");
    }

    #[test]
    fn other_statuses_say_the_first_clause_of_their_reason() {
        assert_eq!(short(&image(Status::InUse, false)), "in use by backup");
        assert_eq!(
            short(&image(Status::Current, false)),
            "current image of llm2"
        );
        assert_eq!(
            short(&image(Status::Pending, false)),
            "pulled for llm2, not used yet"
        );
        assert_eq!(short(&image(Status::Foreign, false)), "not an ExApp's");
    }
}
