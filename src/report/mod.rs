//! The image objects of the public contract (DESIGN.md), across daemons,
//! filtered: what `scan --json`, `GET /api/v1/images` and the Images page show.

mod cache;
pub mod disk;
pub mod page;
pub mod summary;

pub use cache::{DaemonFigures, ImageAt, ImageObjects, Page, Report, ReportCache, View};
pub use page::{Cursor, PageInput, PageLimit, PageRequest};

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::clock::rfc3339;
use crate::domain::{DaemonName, FieldErrors};
use crate::inventory::{ClassifiedImage, Status};
use crate::policy::{self, Policy};
use crate::scan::CachedScan;
use crate::store::StoredDaemon;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImageObject {
    pub daemon: String,
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// Unix seconds; RFC 3339 in JSON (held as a number: 100,000 of them
    /// as text were 5 MB of a fleet server's memory).
    #[serde(serialize_with = "as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    pub size_bytes: u64,
    /// What removing it alone frees, shared layers accounted for; null on a
    /// daemon that cannot list (HaRP), where layers shared with images the
    /// janitor cannot see are unknown.
    pub unique_bytes: Option<u64>,
    pub owner: Option<String>,
    /// The owner's display name and version as AppAPI lists them; null when
    /// the janitor is not connected to Nextcloud or AppAPI does not list it.
    pub owner_name: Option<String>,
    pub owner_version: Option<String>,
    pub status: Status,
    pub removable: bool,
    pub reason: String,
    pub containers: Vec<String>,
    /// Unix seconds; RFC 3339 in JSON.
    #[serde(serialize_with = "as_rfc3339_or_null")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub outdated_since: Option<i64>,
    /// For the pages' short reason: when a waiting image becomes removable
    /// (unix seconds), and whether `keep_previous` keeps it. The API says
    /// both in `reason`.
    #[serde(skip)]
    pub waits_until: Option<i64>,
    #[serde(skip)]
    pub kept_previous: bool,
}

fn as_rfc3339<S: serde::Serializer>(secs: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*secs))
}

fn as_rfc3339_or_null<S: serde::Serializer>(secs: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match secs {
        Some(secs) => as_rfc3339(secs, s),
        None => s.serialize_none(),
    }
}

/// ExApp display names and versions by app ID, as AppAPI lists them.
pub type OwnerNames = std::collections::BTreeMap<String, (String, String)>;

/// Fills in `owner_name` and `owner_version` from AppAPI's list (cosmetic:
/// no decision depends on them).
pub fn name_owners(images: &mut [ImageObject], names: &OwnerNames) {
    for image in images {
        let found = image.owner.as_ref().and_then(|o| names.get(o));
        image.owner_name = found.map(|(name, _)| name.clone());
        image.owner_version = found.map(|(_, version)| version.clone());
    }
}

impl ImageObject {
    fn new(
        daemon: &DaemonName,
        sizes_exact: bool,
        image: &ClassifiedImage,
        decision: &policy::Decision,
    ) -> Self {
        let mut reason = format!("{}; {}", image.reason, decision.why);
        if !sizes_exact {
            reason.push_str(
                "; size shown: layers shared with images the janitor cannot see are not subtracted",
            );
        }
        Self {
            daemon: daemon.to_string(),
            id: image.info.id.to_string(),
            repo_tags: image.info.repo_tags.clone(),
            repo_digests: image.info.repo_digests.clone(),
            created_at: image.info.created,
            size_bytes: image.info.size,
            unique_bytes: sizes_exact.then_some(image.unique_bytes),
            owner: image.owner.as_ref().map(ToString::to_string),
            owner_name: None,
            owner_version: None,
            status: image.status,
            removable: decision.removable,
            reason,
            containers: image.containers.clone(),
            outdated_since: image.outdated_since,
            waits_until: decision.waits_until,
            kept_previous: decision.kept_previous,
        }
    }

    /// What removing it frees: exact, or its size where that is unknown
    /// (an upper bound).
    pub fn frees(&self) -> u64 {
        self.unique_bytes.unwrap_or(self.size_bytes)
    }

    /// The 12 hex digits Docker shows.
    pub fn short_id(&self) -> &str {
        crate::domain::short_id(&self.id)
    }

    /// "Local large language model 2.1.0": the owner as AppAPI names it,
    /// for the pages (None when not connected or not listed).
    pub fn owner_label(&self) -> Option<String> {
        owner_label(self.owner_name.as_deref()?, self.owner_version.as_deref())
    }
}

/// An ExApp's display name and version, as the pages show them.
pub fn owner_label(name: &str, version: Option<&str>) -> Option<String> {
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    Some(match version.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => format!("{name} {v}"),
        None => name.to_owned(),
    })
}

/// The `status` filter value for "removable now".
pub const REMOVABLE: &str = "removable";

/// Which images to show. Parsed from query strings and flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFilter {
    pub daemon: Option<DaemonName>,
    pub owner: Option<String>,
    pub status: Option<Status>,
    /// Only images a cleanup would remove now (`status=removable`): the
    /// policy's answer, which no single status gives — an outdated image may
    /// still wait out its minimum age, a dangling one may be removable.
    pub removable: bool,
    /// Case-insensitive substring of a reference, the ID, the owner or a container.
    pub search: Option<String>,
}

/// The raw filter as a query string carries it.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImageFilterInput {
    #[serde(default)]
    pub daemon: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, alias = "q")]
    pub search: Option<String>,
}

impl ImageFilter {
    pub fn parse(input: &ImageFilterInput) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let given = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let daemon = given(&input.daemon).and_then(|d| {
            DaemonName::parse(&d)
                .map_err(|e| errors.add("daemon", e))
                .ok()
        });
        let owner = given(&input.owner);
        if owner.as_ref().is_some_and(|o| o.len() > 64) {
            errors.add("owner", "at most 64 characters");
        }
        let raw_status = given(&input.status);
        let removable = raw_status.as_deref() == Some(REMOVABLE);
        let status = raw_status.filter(|_| !removable).and_then(|s| {
            Status::parse(&s)
                .ok_or_else(|| {
                    errors.add(
                        "status",
                        "one of current, in_use, protected, pending, outdated, dangling, foreign, or removable",
                    )
                })
                .ok()
        });
        let search = given(&input.search);
        if search.as_ref().is_some_and(|s| s.len() > 256) {
            errors.add("search", "at most 256 characters");
        }
        errors.into_result(|| Self {
            daemon,
            owner,
            status,
            removable,
            search: search.map(|s| s.to_lowercase()),
        })
    }

    /// Whether an image object passes the filter (daemon included).
    pub fn matches(&self, image: &ImageObject) -> bool {
        self.daemon
            .as_ref()
            .is_none_or(|d| d.as_str() == image.daemon)
            && self.keeps(image)
    }

    fn keeps_daemon(&self, name: &DaemonName) -> bool {
        self.daemon.as_ref().is_none_or(|d| d == name)
    }

    fn keeps(&self, image: &ImageObject) -> bool {
        self.owner
            .as_ref()
            .is_none_or(|o| image.owner.as_deref() == Some(o.as_str()))
            && self.status.is_none_or(|s| image.status == s)
            && (!self.removable || image.removable)
            && self.search.as_ref().is_none_or(|q| {
                image.id.contains(q.as_str())
                    || image
                        .owner
                        .as_deref()
                        .is_some_and(|o| o.to_lowercase().contains(q.as_str()))
                    || image
                        .repo_tags
                        .iter()
                        .chain(&image.repo_digests)
                        .chain(&image.containers)
                        .any(|r| r.to_lowercase().contains(q.as_str()))
            })
    }
}

/// Image objects of every daemon's last scan, in daemon order.
pub fn image_objects(
    daemons: &[StoredDaemon],
    scans: &HashMap<i64, Arc<CachedScan>>,
    policy: &Policy,
    filter: &ImageFilter,
    now: i64,
) -> Vec<ImageObject> {
    let mut out = Vec::new();
    for daemon in daemons.iter().filter(|d| filter.keeps_daemon(&d.name)) {
        let Some(scan) = scans.get(&daemon.id).and_then(|c| c.inventory.clone()) else {
            continue;
        };
        let decisions = policy::decide(policy, &scan.images, now);
        // Without a listing (HaRP), shared layers are unknown.
        let sizes_exact = daemon.endpoint.harp().is_none();
        out.extend(
            scan.images
                .iter()
                .zip(&decisions)
                .map(|(image, decision)| {
                    ImageObject::new(&daemon.name, sizes_exact, image, decision)
                })
                .filter(|o| filter.keeps(o)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(n: u8, status: Status, removable: bool) -> ImageObject {
        ImageObject {
            daemon: "gpu".into(),
            id: format!("sha256:{}", format!("{n:02x}").repeat(32)),
            repo_tags: vec![],
            repo_digests: vec![],
            created_at: 0,
            size_bytes: 1,
            unique_bytes: Some(1),
            owner: Some("llm2".into()),
            owner_name: None,
            owner_version: None,
            status,
            removable,
            reason: String::new(),
            containers: vec![],
            outdated_since: None,
            waits_until: None,
            kept_previous: false,
        }
    }

    fn parse(status: &str) -> Result<ImageFilter, FieldErrors> {
        ImageFilter::parse(&ImageFilterInput {
            status: Some(status.into()),
            ..ImageFilterInput::default()
        })
    }

    #[test]
    fn the_removable_filter_keeps_only_what_a_cleanup_removes_now() {
        let filter = parse("removable").unwrap();
        let images = [
            object(1, Status::Outdated, true),
            object(2, Status::Outdated, false), // waiting out min_age_hours
            object(3, Status::Dangling, true),
            object(4, Status::Current, false),
        ];
        let kept: Vec<bool> = images.iter().map(|i| filter.matches(i)).collect();
        assert_eq!(kept, [true, false, true, false]);
        assert!(parse("outdated").unwrap().matches(&images[1]));
        let error = parse("everything").unwrap_err().to_string();
        assert!(error.contains("removable"), "{error}");
    }
}
