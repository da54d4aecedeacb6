//! The last classification this process made of each daemon, with what it
//! was made from: a rescan whose Engine lists the same images and
//! containers, over the same history, protected patterns and AppAPI view,
//! takes it again instead of reading the layer cache, classifying 1,000
//! images and serialising them — the same pure function on the same
//! inputs. The listing itself is always asked for: nothing here stands for
//! the Engine's answer, so a new container is seen by the very next scan.
//!
//! The inventory cache (`InventoryCache`) takes the inventory from here
//! when the stored one is the one remembered, so a server holds one copy
//! of each daemon's inventory, and reads none it classified itself.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::DaemonInventory;
use crate::docker::ListedImage;
use crate::domain::ProtectedPattern;
use crate::inventory::{AppApiView, ContainerInfo, History};
use crate::store::CurrentRow;

/// Everything a daemon's classification is a function of, but the moment
/// it ran (which only the images outdated for the first time depend on:
/// a classification that had any is not taken again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    /// `images_digest` of the listed images.
    images: [u8; 32],
    /// sha256 of the containers, in a fixed order.
    containers: [u8; 32],
    history: History,
    protected: Vec<ProtectedPattern>,
    appapi: Option<AppApiView>,
}

impl Inputs {
    /// `images`: the listed images' `images_digest`.
    pub fn of(
        images: [u8; 32],
        containers: &[ContainerInfo],
        history: &History,
        protected: &[ProtectedPattern],
        appapi: Option<&AppApiView>,
    ) -> Self {
        let mut containers: Vec<&ContainerInfo> = containers.iter().collect();
        containers.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Self {
            images,
            containers: digest_of(&containers),
            history: history.clone(),
            protected: protected.to_vec(),
            appapi: appapi.cloned(),
        }
    }
}

/// sha256 of listed images in a fixed order (the Engine orders images of
/// the same second differently per call): the same images in any order
/// have the same digest.
pub fn images_digest(images: &[ListedImage]) -> [u8; 32] {
    let mut images: Vec<&ListedImage> = images.iter().collect();
    images.sort_unstable();
    digest_of(&images)
}

/// `Hash` writes lengths before sequences and ends strings with a marker:
/// two different values never write the same bytes.
fn digest_of<T: Hash>(value: &T) -> [u8; 32] {
    let mut hasher = Sha256Hasher(Sha256::new());
    value.hash(&mut hasher);
    hasher.0.finalize().into()
}

struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        unreachable!("the digest is read whole, not as a u64")
    }
}

/// A classification to take again: the inventory, the digest of its stored
/// text, and the ExApps' current images the scan records as seen.
#[derive(Debug, Clone)]
pub struct Remembered {
    pub inventory: Arc<DaemonInventory>,
    pub digest: [u8; 32],
    pub current: Arc<[CurrentRow]>,
}

/// A daemon's last stored classification, and the inputs to take it again
/// for (None: it stamped images outdated with its own moment, or missed
/// images that vanished, so it is held only for the inventory cache).
#[derive(Debug)]
struct Entry {
    reusable_for: Option<Inputs>,
    remembered: Remembered,
}

/// The `body_digest` of the last image list parsed of a daemon, and the
/// `images_digest` of what it listed: the same entries again list the
/// same images.
#[derive(Debug, Clone, Copy)]
struct ParsedBody {
    body: [u8; 32],
    images: [u8; 32],
}

#[derive(Debug, Default)]
pub struct ScanMemo {
    entries: Mutex<HashMap<i64, Entry>>,
    bodies: Mutex<HashMap<i64, ParsedBody>>,
}

impl ScanMemo {
    /// The `images_digest` of the daemon's image list whose body had this
    /// `body_digest`, if that is the last list parsed of the daemon.
    pub fn images_of_body(&self, daemon_id: i64, body: &[u8; 32]) -> Option<[u8; 32]> {
        lock(&self.bodies)
            .get(&daemon_id)
            .filter(|p| &p.body == body)
            .map(|p| p.images)
    }

    /// Remembers the digest of the images parsed from a body (one that
    /// parsed: a failed list never gets here).
    pub fn parsed_body(&self, daemon_id: i64, body: [u8; 32], images: [u8; 32]) {
        lock(&self.bodies).insert(daemon_id, ParsedBody { body, images });
    }

    /// The classification made from exactly these inputs, if it is the last
    /// one this process made of the daemon.
    pub fn reuse(&self, daemon_id: i64, inputs: &Inputs) -> Option<Remembered> {
        self.lock()
            .get(&daemon_id)
            .filter(|e| e.reusable_for.as_ref() == Some(inputs))
            .map(|e| e.remembered.clone())
    }

    /// Whether a scan of this daemon may take a classification again: one
    /// is held that some inputs reuse. When not, the scan classifies for
    /// certain.
    pub fn may_reuse(&self, daemon_id: i64) -> bool {
        self.lock()
            .get(&daemon_id)
            .is_some_and(|e| e.reusable_for.is_some())
    }

    /// Remembers a stored classification (in place of the daemon's last),
    /// to be taken again for `reusable_for`, or (None) only to spare the
    /// inventory cache reading back what this process just classified.
    pub fn remember(&self, daemon_id: i64, reusable_for: Option<Inputs>, remembered: Remembered) {
        self.lock().insert(
            daemon_id,
            Entry {
                reusable_for,
                remembered,
            },
        );
    }

    /// The remembered inventory whose stored text has this digest.
    pub fn inventory_with(
        &self,
        daemon_id: i64,
        digest: &[u8; 32],
    ) -> Option<Arc<DaemonInventory>> {
        self.lock()
            .get(&daemon_id)
            .filter(|e| &e.remembered.digest == digest)
            .map(|e| e.remembered.inventory.clone())
    }

    /// Forgets daemons that are gone.
    pub fn retain(&self, live: &HashSet<i64>) {
        self.lock().retain(|id, _| live.contains(id));
        lock(&self.bodies).retain(|id, _| live.contains(id));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Entry>> {
        lock(&self.entries)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AppId, ImageId};
    use crate::inventory::ExAppContainer;

    fn id(n: u8) -> ImageId {
        ImageId::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
    }

    fn image(n: u8, tag: &str) -> ListedImage {
        ListedImage {
            id: id(n),
            repo_tags: vec![tag.to_owned()],
            repo_digests: vec![],
            created: 1_700_000_000 + i64::from(n),
            size: 1_000,
        }
    }

    fn container(name: &str, n: u8, state: &str) -> ContainerInfo {
        ContainerInfo {
            name: name.to_owned(),
            image_id: id(n),
            state: state.to_owned(),
            exapp: AppId::from_container_name(name).map(|appid| ExAppContainer {
                appid,
                config_image: "ghcr.io/nextcloud/llm2:1.0".into(),
            }),
        }
    }

    fn inputs(images: &[ListedImage], containers: &[ContainerInfo]) -> Inputs {
        Inputs::of(
            images_digest(images),
            containers,
            &History::default(),
            &[],
            None,
        )
    }

    fn remembered() -> Remembered {
        Remembered {
            inventory: Arc::new(DaemonInventory {
                images: vec![],
                totals: Default::default(),
                notes: vec![],
            }),
            digest: [7; 32],
            current: Arc::from(Vec::new()),
        }
    }

    #[test]
    fn the_same_listing_in_another_order_is_the_same_input() {
        let images = [image(1, "a:1"), image(2, "a:2")];
        let containers = [
            container("nc_app_a", 2, "running"),
            container("x", 1, "exited"),
        ];
        let reversed_images = [image(2, "a:2"), image(1, "a:1")];
        let reversed_containers = [
            container("x", 1, "exited"),
            container("nc_app_a", 2, "running"),
        ];
        assert_eq!(
            inputs(&images, &containers),
            inputs(&reversed_images, &reversed_containers)
        );
    }

    #[test]
    fn any_change_the_classification_depends_on_is_another_input() {
        let images = vec![image(1, "a:1"), image(2, "a:2")];
        let containers = vec![container("nc_app_a", 2, "running")];
        let base = inputs(&images, &containers);
        let mut retagged = images.clone();
        retagged[0].repo_tags.push("a:latest".into());
        let mut stopped = containers.clone();
        stopped[0].state = "exited".into();
        let mut moved = containers.clone();
        moved[0].image_id = id(1);
        let another_container = [containers.clone(), vec![container("x", 1, "created")]].concat();
        let mut history = History::default();
        history.outdated_since.insert(id(1), 5);
        let protected = [ProtectedPattern::parse("a:*").unwrap()];
        let appapi = AppApiView::default();
        let changed = [
            inputs(&images[..1], &containers),
            inputs(&retagged, &containers),
            inputs(&images, &stopped),
            inputs(&images, &moved),
            inputs(&images, &another_container),
            Inputs::of(images_digest(&images), &containers, &history, &[], None),
            Inputs::of(
                images_digest(&images),
                &containers,
                &History::default(),
                &protected,
                None,
            ),
            Inputs::of(
                images_digest(&images),
                &containers,
                &History::default(),
                &[],
                Some(&appapi),
            ),
        ];
        for other in changed {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn a_classification_is_taken_again_only_for_the_inputs_it_was_made_from() {
        let memo = ScanMemo::default();
        let made_from = inputs(&[image(1, "a:1")], &[]);
        memo.remember(3, Some(made_from.clone()), remembered());
        assert!(memo.reuse(3, &made_from).is_some());
        assert!(memo.reuse(3, &inputs(&[image(1, "a:2")], &[])).is_none());
        assert!(memo.reuse(4, &made_from).is_none(), "another daemon");
    }

    #[test]
    fn an_image_list_body_gives_the_digest_of_its_last_parse_and_no_other() {
        let memo = ScanMemo::default();
        let listed = images_digest(&[image(1, "a:1")]);
        memo.parsed_body(3, [1; 32], listed);
        assert_eq!(memo.images_of_body(3, &[1; 32]), Some(listed));
        assert_eq!(memo.images_of_body(3, &[2; 32]), None, "another body");
        assert_eq!(memo.images_of_body(4, &[1; 32]), None, "another daemon");
        memo.parsed_body(3, [2; 32], images_digest(&[]));
        assert_eq!(memo.images_of_body(3, &[1; 32]), None, "only the last");
        memo.retain(&HashSet::from([4]));
        assert_eq!(memo.images_of_body(3, &[2; 32]), None, "a removed daemon");
    }

    #[test]
    fn the_inventory_cache_finds_an_inventory_by_the_digest_of_its_stored_text() {
        let memo = ScanMemo::default();
        let r = remembered();
        memo.remember(3, Some(inputs(&[], &[])), r.clone());
        let found = memo.inventory_with(3, &[7; 32]).unwrap();
        assert!(Arc::ptr_eq(&found, &r.inventory));
        assert!(memo.inventory_with(3, &[8; 32]).is_none());
        memo.retain(&HashSet::from([4]));
        assert!(
            memo.inventory_with(3, &[7; 32]).is_none(),
            "a removed daemon is forgotten"
        );
    }
}
