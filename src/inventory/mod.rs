//! PURE: from a daemon's snapshot and the janitor's memory of it (history),
//! every image's owner, status, reason and sizes. No I/O here: the scan
//! gathers the inputs and records what this module observed. (`scan`'s
//! module docs map the types from a `Snapshot` to what the pages read.)

pub mod layers;
pub mod reference;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::clock::rfc3339;
use crate::domain::{AppId, ImageId, ProtectedPattern};
pub use layers::{share_chain_ids, ChainId, Layer, SharedChainIds};

/// What an image is to the janitor; the first that applies wins.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// An ExApp container (`nc_app_*`, any state) uses it.
    Current,
    /// Any other container, in any state, uses it.
    InUse,
    /// One of its references matches a protected pattern.
    Protected,
    /// Owned through a repository, never the ExApp's current image, and
    /// created after its current one: pulled for an update that has not
    /// switched yet. Never removable.
    Pending,
    /// Owned by an ExApp and none of the above.
    Outdated,
    /// Untagged, unowned and unused.
    Dangling,
    /// Everything else: not an ExApp's.
    Foreign,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Current,
        Status::InUse,
        Status::Protected,
        Status::Pending,
        Status::Outdated,
        Status::Dangling,
        Status::Foreign,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Current => "current",
            Status::InUse => "in_use",
            Status::Protected => "protected",
            Status::Pending => "pending",
            Status::Outdated => "outdated",
            Status::Dangling => "dangling",
            Status::Foreign => "foreign",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Whose a shared layer's bytes are when disk use is split by status:
    /// the most-needed image using it (lower rank = more needed).
    fn keep_rank(self) -> u8 {
        match self {
            Status::Current => 0,
            Status::InUse => 1,
            Status::Protected => 2,
            Status::Pending => 3,
            Status::Foreign => 4,
            Status::Outdated => 5,
            Status::Dangling => 6,
        }
    }
}

/// One image as the daemon lists it, with its layers (from the layer cache).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub id: ImageId,
    /// Without Engine 20.10's `<none>:<none>` placeholders.
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// Unix seconds.
    pub created: i64,
    pub size: u64,
    pub layers: Vec<Layer>,
}

/// One container, in any state.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// Without Docker's leading `/`.
    pub name: String,
    pub image_id: ImageId,
    /// `running`, `exited`, `created`, `paused`, …
    pub state: String,
    /// For `nc_app_*` containers: the ExApp and the reference it was created from.
    pub exapp: Option<ExAppContainer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExAppContainer {
    pub appid: AppId,
    /// `Config.Image`: what AppAPI asked for, e.g. `ghcr.io/nextcloud/llm2:1.2.0-cuda`.
    pub config_image: String,
}

/// Everything a daemon said in one scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub images: Vec<ImageInfo>,
    pub containers: Vec<ContainerInfo>,
}

/// What the janitor remembers of a daemon from earlier scans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Images that were an ExApp's current image (the latest ExApp wins).
    pub image_owners: HashMap<ImageId, AppId>,
    /// Normalised repositories known for each ExApp.
    pub repo_owners: HashMap<String, BTreeSet<AppId>>,
    /// When each owned image was first seen outdated (unix seconds).
    pub outdated_since: HashMap<ImageId, i64>,
    /// Each ExApp's most recent current image (the last one a container of
    /// it was seen to use).
    pub latest_current: HashMap<AppId, ImageId>,
}

/// What AppAPI, through the Nextcloud connection, says about one daemon:
/// from its last complete answer only (issue #20). Without it (no
/// connection, or Nextcloud never answered) ownership rests on containers
/// and history alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppApiView {
    /// The ExApps AppAPI lists as installed on this daemon. An owned image
    /// of any other ExApp is its image after an uninstall; an ExApp listed
    /// here whose container is momentarily gone (an update recreating it)
    /// keeps its current image.
    pub installed: BTreeSet<AppId>,
    /// AppAPI's registry mappings for this daemon: a reference in a mirror
    /// belongs to whoever the original repository belongs to.
    pub mirrors: Vec<RegistryMirror>,
}

/// One of AppAPI's `registries` mappings: images of `from` are pulled from
/// `to`. Both are reference prefixes, compared on whole path components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryMirror {
    pub from: String,
    pub to: String,
}

impl RegistryMirror {
    /// `repository` with the prefix `a` replaced by `b`, if it starts so.
    fn swap(repository: &str, a: &str, b: &str) -> Option<String> {
        let a = a.trim_end_matches('/');
        let b = b.trim_end_matches('/');
        if a.is_empty() || b.is_empty() {
            return None;
        }
        let rest = repository.strip_prefix(a)?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        // A prefix written as `ghcr.io` and a repository normalised as
        // `ghcr.io/…` compare alike; the result is normalised again.
        reference::repository(&format!("{b}{rest}"))
    }

    /// The repositories `repository` stands for through this mapping, both ways.
    fn equivalents(&self, repository: &str) -> impl Iterator<Item = String> {
        [
            Self::swap(repository, &self.to, &self.from),
            Self::swap(repository, &self.from, &self.to),
        ]
        .into_iter()
        .flatten()
    }
}

/// One image with everything the janitor concluded about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassifiedImage {
    pub info: ImageInfo,
    pub owner: Option<AppId>,
    pub status: Status,
    /// Why this status, in words an admin can check.
    pub reason: String,
    /// Names of the containers using it, any state.
    pub containers: Vec<String>,
    pub outdated_since: Option<i64>,
    /// Bytes freed by removing this image alone now.
    pub unique_bytes: u64,
}

/// An ExApp's current image as seen in this snapshot, to remember.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentImage {
    pub appid: AppId,
    pub image_id: ImageId,
    pub repositories: BTreeSet<String>,
}

/// What the scan must record so the next one remembers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observations {
    pub current: Vec<CurrentImage>,
    /// Owned images outdated now with no time on record: record `now`.
    pub newly_outdated: Vec<ImageId>,
    /// Images with a time on record that are not outdated now: forget it.
    pub no_longer_outdated: Vec<ImageId>,
}

/// Disk use of one daemon.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub images: usize,
    /// All distinct layers (the daemon's `LayersSize`).
    pub total_bytes: u64,
    /// Each layer counted once, under the most-needed status among the
    /// images using it (current, in use, protected, foreign, outdated, dangling).
    pub bytes_by_status: BTreeMap<Status, u64>,
    /// What removing every outdated image would free.
    pub outdated_reclaimable: u64,
}

/// What `classify` concluded about one daemon's snapshot: the scan stores
/// the images and totals as the daemon's inventory (`scan::DaemonInventory`)
/// and records the observations in the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    pub images: Vec<ClassifiedImage>,
    pub totals: Totals,
    pub observations: Observations,
}

/// Classifies every image of one daemon. `now` is unix seconds.
pub fn classify(
    snapshot: &Snapshot,
    history: &History,
    protected: &[ProtectedPattern],
    now: i64,
) -> Classification {
    classify_with(snapshot, history, protected, None, now)
}

/// `classify`, with what AppAPI says about the daemon when it is known.
pub fn classify_with(
    snapshot: &Snapshot,
    history: &History,
    protected: &[ProtectedPattern],
    appapi: Option<&AppApiView>,
    now: i64,
) -> Classification {
    let current = current_images(snapshot);
    let lookups = Lookups::of(snapshot, history, &current, protected, appapi);
    let mut observations = Observations {
        current,
        ..Default::default()
    };
    let mut images: Vec<ClassifiedImage> = snapshot
        .images
        .iter()
        .map(|image| classify_image(image, &lookups, history, now, &mut observations))
        .collect();

    // Newest first, as `docker images` lists them, but with ties broken by
    // ID: the daemon orders images created in the same second differently
    // from call to call, and the same images must give the same inventory.
    images.sort_by(|a, b| (b.info.created, &a.info.id).cmp(&(a.info.created, &b.info.id)));
    observations.newly_outdated.sort();
    observations.no_longer_outdated.sort();
    let totals = totals(&images);
    Classification {
        images,
        totals,
        observations,
    }
}

/// What the whole snapshot (and the history) tells about any one image.
struct Lookups<'a> {
    /// The containers using each image, any state.
    users: HashMap<&'a ImageId, Vec<&'a ContainerInfo>>,
    /// Whose current image each image is or was: the history, and this
    /// snapshot on top, so that a first scan already knows.
    image_owners: HashMap<ImageId, AppId>,
    /// The ExApps each normalised repository is known for, likewise.
    repo_owners: HashMap<String, BTreeSet<AppId>>,
    /// ExApps with a container now; an outdated image of any other ExApp
    /// says the ExApp may be uninstalled.
    apps_with_container: BTreeSet<&'a AppId>,
    /// What AppAPI lists, when the janitor is connected to Nextcloud.
    appapi: Option<&'a AppApiView>,
    /// The remembered current image of each ExApp AppAPI lists that has no
    /// container now: still its current image (an update between removing
    /// the old container and creating the new one, or a container an admin
    /// removed, which AppAPI recreates from it).
    listed_without_container: HashMap<&'a ImageId, &'a AppId>,
    /// When each ExApp's newest current image was created.
    newest_current: HashMap<&'a AppId, i64>,
    /// How many images use each layer, for unique bytes.
    layer_users: HashMap<&'a str, usize>,
    protected: &'a [ProtectedPattern],
}

impl<'a> Lookups<'a> {
    fn of(
        snapshot: &'a Snapshot,
        history: &History,
        current: &[CurrentImage],
        protected: &'a [ProtectedPattern],
        appapi: Option<&'a AppApiView>,
    ) -> Self {
        let (image_owners, repo_owners) = merged_ownership(history, current);
        let mut users: HashMap<&ImageId, Vec<&ContainerInfo>> = HashMap::new();
        for c in &snapshot.containers {
            users.entry(&c.image_id).or_default().push(c);
        }
        let apps_with_container: BTreeSet<&AppId> = snapshot
            .containers
            .iter()
            .filter_map(|c| c.exapp.as_ref().map(|e| &e.appid))
            .collect();
        let latest: HashMap<&ImageId, &AppId> = appapi
            .map(|view| {
                view.installed
                    .iter()
                    .filter(|app| !apps_with_container.contains(app))
                    .filter_map(|app| Some((history.latest_current.get(app)?, app)))
                    .collect()
            })
            .unwrap_or_default();
        let mut listed_without_container = HashMap::new();
        let mut newest_current = newest_current_created(snapshot);
        for image in &snapshot.images {
            if let Some(app) = latest.get(&image.id) {
                // Newer images of it are pulled for an update: pending.
                newest_current.insert(*app, image.created);
                listed_without_container.insert(&image.id, *app);
            }
        }
        Self {
            users,
            image_owners,
            repo_owners,
            apps_with_container,
            appapi,
            listed_without_container,
            newest_current,
            layer_users: layers::layer_users(snapshot.images.iter().map(|i| i.layers.as_slice())),
            protected,
        }
    }
}

/// One image as the snapshot shows it: who uses it, who owns it, what
/// protects it. Its status and reason are read from this.
struct Seen<'a> {
    image: &'a ImageInfo,
    /// ExApp containers using it.
    exapp_users: Vec<&'a ContainerInfo>,
    /// Any other containers using it.
    other_users: Vec<&'a ContainerInfo>,
    ownership: Ownership,
    protected_by: Option<&'a ProtectedPattern>,
}

/// Who owns an image, by each way of knowing it; the first that knows wins,
/// and the reason says which.
struct Ownership {
    /// The ExApp whose container uses it (the smallest app ID if several).
    by_container: Option<AppId>,
    /// The ExApp it was the current image of, as remembered.
    by_history: Option<AppId>,
    /// An ExApp one of whose known repositories holds it, and that repository.
    by_repository: Option<(AppId, String)>,
}

impl Ownership {
    fn owner(&self) -> Option<&AppId> {
        self.by_container
            .as_ref()
            .or(self.by_history.as_ref())
            .or(self.by_repository.as_ref().map(|(app, _)| app))
    }
}

/// Classifies one image; notes in `observations` when its time outdated
/// starts or ends.
fn classify_image(
    image: &ImageInfo,
    lookups: &Lookups,
    history: &History,
    now: i64,
    observations: &mut Observations,
) -> ClassifiedImage {
    let seen = see(image, lookups);
    let status = status(&seen, lookups);
    let outdated_since = outdated_since(image, status, history, now, observations);
    let reason = reason(&seen, status, lookups, outdated_since.unwrap_or(now));
    let mut containers: Vec<String> = seen
        .exapp_users
        .iter()
        .chain(&seen.other_users)
        .map(|c| c.name.clone())
        .collect();
    containers.sort();
    ClassifiedImage {
        info: image.clone(),
        owner: seen.ownership.owner().cloned(),
        status,
        reason,
        containers,
        outdated_since,
        unique_bytes: layers::unique_bytes(&image.layers, &lookups.layer_users),
    }
}

fn see<'a>(image: &'a ImageInfo, lookups: &Lookups<'a>) -> Seen<'a> {
    let (exapp_users, other_users): (Vec<&ContainerInfo>, Vec<&ContainerInfo>) = lookups
        .users
        .get(&image.id)
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .partition(|c| c.exapp.is_some());
    let ownership = Ownership {
        by_container: exapp_users
            .iter()
            .filter_map(|c| c.exapp.as_ref())
            .map(|e| &e.appid)
            .min()
            .cloned(),
        by_history: lookups.image_owners.get(&image.id).cloned(),
        by_repository: repository_owner(
            image,
            &lookups.repo_owners,
            lookups.appapi.map_or(&[][..], |v| &v.mirrors[..]),
        ),
    };
    Seen {
        image,
        exapp_users,
        other_users,
        ownership,
        protected_by: protected_match(image, lookups.protected),
    }
}

/// DESIGN.md's statuses, first match wins.
fn status(seen: &Seen, lookups: &Lookups) -> Status {
    let owner = seen.ownership.owner();
    let newest_current = &lookups.newest_current;
    if !seen.exapp_users.is_empty()
        || lookups
            .listed_without_container
            .contains_key(&seen.image.id)
    {
        Status::Current
    } else if !seen.other_users.is_empty() {
        Status::InUse
    } else if seen.protected_by.is_some() {
        Status::Protected
    } else if seen.ownership.by_history.is_none()
        && owner
            .and_then(|app| newest_current.get(app))
            .is_some_and(|current_created| seen.image.created > *current_created)
    {
        Status::Pending
    } else if owner.is_some() {
        Status::Outdated
    } else if seen.image.repo_tags.is_empty() {
        Status::Dangling
    } else {
        Status::Foreign
    }
}

/// Since when an outdated image is outdated: the time on record, or `now`
/// for one seen outdated for the first time (noted, to record). An image
/// that is not outdated has none, and a time on record is noted to forget.
fn outdated_since(
    image: &ImageInfo,
    status: Status,
    history: &History,
    now: i64,
    observations: &mut Observations,
) -> Option<i64> {
    if status == Status::Outdated {
        Some(
            history
                .outdated_since
                .get(&image.id)
                .copied()
                .unwrap_or_else(|| {
                    observations.newly_outdated.push(image.id.clone());
                    now
                }),
        )
    } else {
        if history.outdated_since.contains_key(&image.id) {
            observations.no_longer_outdated.push(image.id.clone());
        }
        None
    }
}

/// Why the image has its status, in words an admin can check.
fn reason(seen: &Seen, status: Status, lookups: &Lookups, outdated_since: i64) -> String {
    let owner = seen.ownership.owner();
    match status {
        Status::Current if seen.exapp_users.is_empty() => {
            let app = lookups
                .listed_without_container
                .get(&seen.image.id)
                .map_or("?", |a| a.as_str());
            format!(
                "current image of {app} as AppAPI lists it; no {}{app} container exists now (being updated or recreated?)",
                crate::domain::EXAPP_CONTAINER_PREFIX
            )
        }
        Status::Current => {
            let who: Vec<String> = seen
                .exapp_users
                .iter()
                .map(|c| format!("{}, {}", c.name, c.state))
                .collect();
            let app = seen
                .ownership
                .by_container
                .as_ref()
                .map(AppId::as_str)
                .unwrap_or("?");
            format!("current image of {app} ({})", who.join("; "))
        }
        Status::InUse => in_use_reason(&seen.other_users),
        Status::Protected => format!(
            "matches protected pattern {}",
            seen.protected_by
                .map(ProtectedPattern::as_str)
                .unwrap_or("?")
        ),
        Status::Pending => {
            let app = owner.map(AppId::as_str).unwrap_or("?");
            format!(
                "pulled for {app}, not used yet: newer than its current image and never its current image (an update in progress?)"
            )
        }
        Status::Outdated => {
            let app = owner.expect("outdated images are owned");
            let how = if seen.ownership.by_history.is_some() {
                format!("previous image of {app}")
            } else {
                let repo = seen
                    .ownership
                    .by_repository
                    .as_ref()
                    .map(|(_, r)| r.as_str())
                    .unwrap_or("?");
                format!("in {repo}, a repository of {app}")
            };
            let gone = if lookups.apps_with_container.contains(app) {
                String::new()
            } else if let Some(view) = lookups.appapi {
                if view.installed.contains(app) {
                    String::new()
                } else {
                    format!("; uninstalled from Nextcloud (AppAPI no longer lists {app})")
                }
            } else {
                format!(
                    "; no {}{app} container exists (uninstalled?)",
                    crate::domain::EXAPP_CONTAINER_PREFIX
                )
            };
            format!("{how}{gone}; outdated since {}", rfc3339(outdated_since))
        }
        Status::Dangling => "untagged, not an ExApp's, and no container uses it".to_owned(),
        Status::Foreign => "not an ExApp's image".to_owned(),
    }
}

/// For each ExApp with a container: when its newest current image was
/// created. An owned image newer than that, never current, is pending.
fn newest_current_created(snapshot: &Snapshot) -> HashMap<&AppId, i64> {
    let created: HashMap<&ImageId, i64> =
        snapshot.images.iter().map(|i| (&i.id, i.created)).collect();
    let mut newest: HashMap<&AppId, i64> = HashMap::new();
    for c in &snapshot.containers {
        let (Some(exapp), Some(at)) = (&c.exapp, created.get(&c.image_id)) else {
            continue;
        };
        let entry = newest.entry(&exapp.appid).or_insert(*at);
        *entry = (*entry).max(*at);
    }
    newest
}

fn current_images(snapshot: &Snapshot) -> Vec<CurrentImage> {
    let tags_of: HashMap<&ImageId, &ImageInfo> =
        snapshot.images.iter().map(|i| (&i.id, i)).collect();
    let mut current: Vec<CurrentImage> = snapshot
        .containers
        .iter()
        .filter_map(|c| {
            let exapp = c.exapp.as_ref()?;
            let mut repositories: BTreeSet<String> = reference::repository(&exapp.config_image)
                .into_iter()
                .collect();
            if let Some(image) = tags_of.get(&c.image_id) {
                repositories.extend(
                    image
                        .repo_tags
                        .iter()
                        .filter_map(|t| reference::repository(t)),
                );
            }
            Some(CurrentImage {
                appid: exapp.appid.clone(),
                image_id: c.image_id.clone(),
                repositories,
            })
        })
        .collect();
    current.sort_by(|a, b| (&a.appid, &a.image_id).cmp(&(&b.appid, &b.image_id)));
    current.dedup();
    current
}

/// History plus what this snapshot shows, so that a first scan already knows
/// the repositories of the ExApps running now.
fn merged_ownership(
    history: &History,
    current: &[CurrentImage],
) -> (HashMap<ImageId, AppId>, HashMap<String, BTreeSet<AppId>>) {
    let mut images = history.image_owners.clone();
    let mut repos = history.repo_owners.clone();
    for c in current {
        images.insert(c.image_id.clone(), c.appid.clone());
        for r in &c.repositories {
            repos.entry(r.clone()).or_default().insert(c.appid.clone());
        }
    }
    (images, repos)
}

/// The ExApp whose known repository holds one of the image's references.
/// Through a registry mirror, the reference's repository is checked as the
/// original's too (and the reason names the repository the image is in).
fn repository_owner(
    image: &ImageInfo,
    repo_owners: &HashMap<String, BTreeSet<AppId>>,
    mirrors: &[RegistryMirror],
) -> Option<(AppId, String)> {
    image
        .repo_tags
        .iter()
        .chain(&image.repo_digests)
        .filter_map(|r| reference::repository(r))
        .filter_map(|repo| {
            let known = |candidate: &String| repo_owners.get(candidate).and_then(|a| a.first());
            known(&repo)
                .or_else(|| {
                    mirrors
                        .iter()
                        .flat_map(|m| m.equivalents(&repo))
                        .find_map(|alias| known(&alias))
                })
                .map(|app| (app.clone(), repo))
        })
        .min()
}

fn protected_match<'a>(
    image: &ImageInfo,
    patterns: &'a [ProtectedPattern],
) -> Option<&'a ProtectedPattern> {
    let references: Vec<String> = image
        .repo_tags
        .iter()
        .chain(&image.repo_digests)
        .flat_map(|r| [Some(r.clone()), reference::normalized(r)])
        .flatten()
        .collect();
    patterns
        .iter()
        .find(|p| references.iter().any(|r| p.matches(r)))
}

fn in_use_reason(users: &[&ContainerInfo]) -> String {
    match users {
        [one] => format!("used by {} container {}", state_word(&one.state), one.name),
        many => {
            let mut parts: Vec<String> = many
                .iter()
                .map(|c| format!("{} ({})", c.name, state_word(&c.state)))
                .collect();
            parts.sort();
            format!("used by containers {}", parts.join(", "))
        }
    }
}

/// Docker's states in the words an admin uses.
fn state_word(state: &str) -> &str {
    match state {
        "exited" | "dead" => "stopped",
        "created" => "never started",
        other => other,
    }
}

fn totals(images: &[ClassifiedImage]) -> Totals {
    let mut owner_of_layer: HashMap<&str, (Status, u64)> = HashMap::new();
    for image in images {
        for layer in &image.info.layers {
            let entry = owner_of_layer
                .entry(layer.chain_id.as_str())
                .or_insert((image.status, layer.size));
            if image.status.keep_rank() < entry.0.keep_rank() {
                entry.0 = image.status;
            }
        }
    }
    let mut bytes_by_status: BTreeMap<Status, u64> = Status::ALL.iter().map(|s| (*s, 0)).collect();
    for (status, size) in owner_of_layer.values() {
        *bytes_by_status.entry(*status).or_default() += size;
    }
    let outdated = images
        .iter()
        .map(|i| (i.info.layers.as_slice(), i.status == Status::Outdated));
    Totals {
        images: images.len(),
        total_bytes: owner_of_layer.values().map(|(_, s)| s).sum(),
        bytes_by_status,
        outdated_reclaimable: layers::reclaimable(outdated),
    }
}

#[cfg(test)]
mod tests;
