//! The removal protocol of one job, against the live daemon. It removes the
//! intersection of what was approved (the image and the references the
//! preview showed) and what is still true right before the call:
//!
//! 1. decide again: the image may be gone, used by a container (any state),
//!    protected, tagged with a reference the preview did not show, or the
//!    parent of another image (Docker would refuse it after its tags went;
//!    the jobs of a batch share one listing of every image for this, taken
//!    again when older than `FAMILY_MAX_AGE` and whenever it names children,
//!    so a child built since is as rare a race as a container created since
//!    the look, and ends the same way: Docker's 409, the tags put back);
//! 2. make sure this worker still holds the job's lease, and record that a
//!    removal call goes out;
//! 3. untag each reference it has now (tags first, digests last), then remove
//!    the ID if it is still there. Never with `force`. Docker's 409 means "in
//!    use now": the job is skipped in Docker's own words, and the tags this
//!    job took off are put back, so the image stays as it was.
//!
//! Bytes freed are counted from the layers Docker reports deleting.
//!
//! A daemon that cannot list (HaRP) allows fewer checks: nobody may ask it
//! which containers use an image or which images are built on it, and it
//! cannot tag. There the last checks are those an inspect allows (gone,
//! gained a reference, protected), each reference is removed through HaRP's
//! `image_remove`, and Docker's own refusal of an image in use (never
//! forced, by HaRP either) is the guard; see `remove_unlisted`.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::docker::{Children, DockerError, HarpRemoval, Removed};
use crate::domain::{ImageId, ProtectedPattern};
use crate::inventory::reference;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded {
        bytes_freed: u64,
        note: Option<String>,
    },
    /// The image was not there any more when the job looked.
    AlreadyRemoved,
    Skipped {
        reason: String,
        bytes_freed: u64,
    },
    /// Worth another attempt later (daemon unreachable, timeout, 5xx).
    Retry(String),
    Failed(String),
    /// The lease went to another worker before any removal call: nothing was
    /// sent, and the job is the new holder's.
    LeaseLost,
}

/// What the job was approved to remove.
pub struct Approved<'a> {
    pub image: &'a ImageId,
    /// The references the preview showed for it.
    pub references: &'a [String],
}

/// What the protocol needs from the worker around the Docker calls.
pub trait Guard {
    /// Right before the first removal call: true when this worker still holds
    /// the lease (and has recorded that a call goes out).
    async fn may_send(&self) -> bool;
    /// Before every later call: the lease is still held.
    fn still_held(&self) -> bool;
}

/// How long a batch's listing of which images are built on which stands for
/// the daemon. Listing every image costs a scan's image list (100–200 ms at
/// 1,300 images), more than the rest of a job; once per job made a run of
/// 300 removals four times slower than `docker rmi` in a loop.
pub const FAMILY_MAX_AGE: Duration = Duration::from_secs(5);

/// Which images are built on which, as the daemon listed them lately: what a
/// batch of removals on one daemon shares.
#[derive(Debug, Default)]
pub struct Family {
    listed: Option<(Instant, Children)>,
}

impl Family {
    /// The images built on `image`, from a listing younger than
    /// `FAMILY_MAX_AGE`, or `list`ed again. A listing that names children is
    /// always confirmed by a fresh one: this batch may have removed them.
    pub async fn children_of<F, Fut>(
        &mut self,
        image: &ImageId,
        now: Instant,
        mut list: F,
    ) -> Result<Vec<String>, DockerError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Children, DockerError>>,
    {
        let fresh = self
            .listed
            .as_ref()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) < FAMILY_MAX_AGE);
        if !fresh || !self.of(image).is_empty() {
            self.listed = Some((now, list().await?));
        }
        Ok(self.of(image))
    }

    fn of(&self, image: &ImageId) -> Vec<String> {
        self.listed
            .as_ref()
            .and_then(|(_, children)| children.get(image.as_str()).cloned())
            .unwrap_or_default()
    }
}

/// Runs the protocol. `layer_sizes` maps the image's chain IDs to sizes;
/// `family` is the batch's knowledge of which images are built on which.
#[allow(clippy::too_many_arguments)]
pub async fn remove(
    client: &Backend,
    approved: Approved<'_>,
    protected: &[ProtectedPattern],
    layer_sizes: &HashMap<String, u64>,
    removal_timeout: Duration,
    family: &mut Family,
    guard: &impl Guard,
) -> Outcome {
    if !client.capabilities().listing {
        return remove_unlisted(client, approved, protected, removal_timeout, guard).await;
    }
    let image = approved.image;
    let live = match client.live_image(image).await {
        Ok(Some(live)) => live,
        Ok(None) => return Outcome::AlreadyRemoved,
        Err(e) => return error_outcome(&e),
    };
    match client.containers_using(image).await {
        Ok(users) if !users.is_empty() => {
            let who: Vec<String> = users
                .iter()
                .map(|(name, state)| format!("{name} ({state})"))
                .collect();
            return skipped(format!("in use now by container {}", who.join(", ")));
        }
        Ok(_) => {}
        Err(e) => return error_outcome(&e),
    }
    if let Some(refused) =
        references_refused(&approved, &live.repo_tags, &live.repo_digests, protected)
    {
        return refused;
    }
    let references: Vec<&String> = live.repo_tags.iter().chain(&live.repo_digests).collect();
    match family
        .children_of(image, Instant::now(), || client.children_by_parent())
        .await
    {
        Ok(children) if !children.is_empty() => {
            return skipped(format!(
            "image {} is built on it, so Docker would refuse to delete it; nothing was untagged",
            children.join(", ")
        ))
        }
        Ok(_) => {}
        Err(e) => return error_outcome(&e),
    }

    if !guard.may_send().await {
        return Outcome::LeaseLost;
    }
    let mut freed = Freed::new(layer_sizes);
    // Only the references this image has now: one that moved to another
    // image since the preview is that image's business. Tags first: a
    // digest reference cannot be put back if Docker refuses later.
    for r in &references {
        if !guard.still_held() {
            return freed
                .put_back(client, image, "the job's lease was lost")
                .await;
        }
        match client.remove_reference(r, removal_timeout).await {
            Ok(removed) => freed.add(r, &removed),
            Err(e) if e.is_not_found() => {}
            Err(e) => return freed.stop(client, image, &e).await,
        }
    }
    if freed.deleted(image) {
        return freed.done();
    }
    match client.live_image(image).await {
        Ok(None) => {}
        Ok(Some(_)) => {
            if !guard.still_held() {
                return freed
                    .put_back(client, image, "the job's lease was lost")
                    .await;
            }
            match client
                .remove_reference(image.as_str(), removal_timeout)
                .await
            {
                Ok(removed) => freed.add(image.as_str(), &removed),
                Err(e) if e.is_not_found() => {}
                Err(e) => return freed.stop(client, image, &e).await,
            }
        }
        Err(e) => return freed.stop(client, image, &e).await,
    }
    freed.done()
}

/// The checks on the image's references now: none gained since the preview,
/// none protected now. Some(outcome) when the job must stop here.
fn references_refused(
    approved: &Approved<'_>,
    tags: &[String],
    digests: &[String],
    protected: &[ProtectedPattern],
) -> Option<Outcome> {
    let previewed: BTreeSet<&str> = approved.references.iter().map(String::as_str).collect();
    let gained: Vec<&str> = tags
        .iter()
        .chain(digests)
        .map(String::as_str)
        .filter(|r| !previewed.contains(r))
        .collect();
    if !gained.is_empty() {
        return Some(skipped(format!(
            "tagged {} since the preview; nothing was untagged",
            gained.join(", ")
        )));
    }
    let pattern = protected.iter().find(|p| {
        tags.iter()
            .chain(digests)
            .any(|r| p.matches(r) || reference::normalized(r).is_some_and(|n| p.matches(&n)))
    })?;
    Some(skipped(format!("protected now by pattern {pattern}")))
}

/// The protocol on a daemon that cannot list or tag (HaRP): the checks an
/// inspect allows, then each reference through `image_remove`, then a look
/// at whether the image is gone (HaRP reports the image's size as freed
/// even when Docker only untagged it: what counts is what really happened).
async fn remove_unlisted(
    client: &Backend,
    approved: Approved<'_>,
    protected: &[ProtectedPattern],
    removal_timeout: Duration,
    guard: &impl Guard,
) -> Outcome {
    if !client.capabilities().removal {
        return Outcome::Failed(
            "this HaRP is older than 0.4.1 and cannot remove images: update HaRP".into(),
        );
    }
    let image = approved.image;
    let live = match client.image(image).await {
        Ok(Some((live, _))) => live,
        Ok(None) => return Outcome::AlreadyRemoved,
        Err(e) => return error_outcome(&e),
    };
    if let Some(refused) =
        references_refused(&approved, &live.repo_tags, &live.repo_digests, protected)
    {
        return refused;
    }
    if !guard.may_send().await {
        return Outcome::LeaseLost;
    }
    // Tags first, digests last; the ID alone when nothing names it.
    let mut references: Vec<&str> = live
        .repo_tags
        .iter()
        .chain(&live.repo_digests)
        .map(String::as_str)
        .collect();
    if references.is_empty() {
        references.push(image.as_str());
    }
    let mut untagged: Vec<&str> = Vec::new();
    let cannot_put_back = |untagged: &[&str]| {
        if untagged.is_empty() {
            String::new()
        } else {
            format!(
                "; removed {} first, which cannot be put back through HaRP (it returns with the next pull)",
                untagged.join(", ")
            )
        }
    };
    for r in references {
        if !guard.still_held() {
            return skipped(format!(
                "the job's lease was lost{}",
                cannot_put_back(&untagged)
            ));
        }
        match client.remove_through_harp(r, removal_timeout).await {
            Ok(HarpRemoval::Removed) => untagged.push(r),
            Ok(HarpRemoval::NotFound) => {}
            Ok(HarpRemoval::InUse) => {
                return skipped(format!(
                    "in use: Docker refused to remove {r} (HaRP: deleted false, reason in_use){}",
                    cannot_put_back(&untagged)
                ))
            }
            Err(e) if untagged.is_empty() => return error_outcome(&e),
            Err(e) => {
                return Outcome::Failed(format!("{e}{}", cannot_put_back(&untagged)));
            }
        }
    }
    match client.image(image).await {
        // Gone, but not by this job's calls: someone else removed it.
        Ok(None) if untagged.is_empty() => Outcome::AlreadyRemoved,
        Ok(None) => Outcome::Succeeded {
            bytes_freed: live.size,
            note: Some("size of the image: layers it shared are not subtracted".into()),
        },
        Ok(Some(_)) => skipped(format!(
            "still on the daemon after its references were removed (another reference, or an image built on it){}",
            cannot_put_back(&untagged)
        )),
        Err(e) => Outcome::Retry(format!(
            "the references were removed; whether the image is gone is not known yet: {e}"
        )),
    }
}

fn skipped(reason: String) -> Outcome {
    Outcome::Skipped {
        reason,
        bytes_freed: 0,
    }
}

/// What this job took off the image so far, and the bytes of the layers
/// Docker reported deleting.
struct Freed<'a> {
    sizes: &'a HashMap<String, u64>,
    bytes: u64,
    deleted: Vec<String>,
    /// References this job untagged, in order.
    untagged: Vec<String>,
}

impl<'a> Freed<'a> {
    fn new(sizes: &'a HashMap<String, u64>) -> Self {
        Self {
            sizes,
            bytes: 0,
            deleted: Vec::new(),
            untagged: Vec::new(),
        }
    }

    fn add(&mut self, reference: &str, removed: &[Removed]) {
        for r in removed {
            match r {
                Removed::Deleted(id) => {
                    self.bytes += self.sizes.get(id).copied().unwrap_or(0);
                    self.deleted.push(id.clone());
                }
                Removed::Untagged(_) => {}
            }
        }
        if !reference.starts_with("sha256:") {
            self.untagged.push(reference.to_owned());
        }
    }

    /// Docker said it deleted this image (no need to look again).
    fn deleted(&self, image: &ImageId) -> bool {
        self.deleted.iter().any(|d| d == image.as_str())
    }

    fn done(self) -> Outcome {
        Outcome::Succeeded {
            bytes_freed: self.bytes,
            note: None,
        }
    }

    /// An error part-way. A 409 is Docker refusing (in use now): skipped, and
    /// the image is put back as it was.
    async fn stop(self, client: &Backend, image: &ImageId, e: &DockerError) -> Outcome {
        if e.is_conflict() {
            let words = e.daemon_message().unwrap_or("conflict").to_owned();
            self.put_back(client, image, &words).await
        } else {
            error_outcome(e)
        }
    }

    /// Ends the job skipped with `why`, after putting back the tags it took off.
    async fn put_back(self, client: &Backend, image: &ImageId, why: &str) -> Outcome {
        if self.untagged.is_empty() {
            return Outcome::Skipped {
                reason: why.to_owned(),
                bytes_freed: self.bytes,
            };
        }
        let mut restored = Vec::new();
        let mut lost = Vec::new();
        for r in &self.untagged {
            if r.contains('@') {
                lost.push(format!(
                    "{r} (a digest reference; it returns with the next pull)"
                ));
                continue;
            }
            match client.tag(image, r).await {
                Ok(()) => restored.push(r.as_str()),
                Err(e) => lost.push(format!("{r} ({e})")),
            }
        }
        let mut reason = format!("{why}; untagged {} first", self.untagged.join(", "));
        if !restored.is_empty() {
            reason.push_str(&format!(", then put back {}", restored.join(", ")));
        }
        if !lost.is_empty() {
            reason.push_str(&format!("; could not put back {}", lost.join(", ")));
        }
        Outcome::Skipped {
            reason,
            bytes_freed: self.bytes,
        }
    }
}

fn error_outcome(e: &DockerError) -> Outcome {
    if e.is_transient() {
        Outcome::Retry(e.to_string())
    } else if e.is_conflict() {
        skipped(e.daemon_message().unwrap_or("conflict").to_owned())
    } else {
        Outcome::Failed(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn id(n: u8) -> ImageId {
        ImageId::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
    }

    /// A listing in which `parent` has `child` as its one child (or none).
    fn listing(parent: Option<(&ImageId, &str)>) -> Children {
        parent
            .map(|(p, c)| (p.as_str().to_owned(), vec![c.to_owned()]))
            .into_iter()
            .collect()
    }

    /// Runs `children_of` at `at`; the listing it would get, and counts calls.
    async fn ask(
        family: &mut Family,
        image: &ImageId,
        at: Instant,
        answer: &Children,
        calls: &Cell<u32>,
    ) -> Vec<String> {
        family
            .children_of(image, at, || {
                calls.set(calls.get() + 1);
                let answer = answer.clone();
                async move { Ok(answer) }
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_jobs_of_a_batch_share_one_listing_while_it_is_young() {
        let (mut family, calls, t0) = (Family::default(), Cell::new(0), Instant::now());
        let none = listing(None);
        for n in 0..50 {
            let at = t0 + Duration::from_millis(u64::from(n) * 90);
            assert!(ask(&mut family, &id(n), at, &none, &calls).await.is_empty());
        }
        assert_eq!(calls.get(), 1, "50 jobs within 4.5 s list once");
    }

    #[tokio::test]
    async fn a_listing_older_than_its_age_limit_is_taken_again() {
        let (mut family, calls, t0) = (Family::default(), Cell::new(0), Instant::now());
        let none = listing(None);
        ask(&mut family, &id(1), t0, &none, &calls).await;
        let (parent, later) = (id(2), t0 + FAMILY_MAX_AGE);
        let built_since = listing(Some((&parent, "ghcr.io/x/child:1")));
        let children = ask(&mut family, &parent, later, &built_since, &calls).await;
        assert_eq!(
            children,
            ["ghcr.io/x/child:1"],
            "a child built since is seen"
        );
        assert_eq!(calls.get(), 2);
    }

    #[tokio::test]
    async fn children_named_by_a_young_listing_are_confirmed_by_a_fresh_one() {
        let (mut family, calls, t0) = (Family::default(), Cell::new(0), Instant::now());
        let parent = id(1);
        let with_child = listing(Some((&parent, "ghcr.io/x/child:1")));
        ask(&mut family, &id(9), t0, &with_child, &calls).await;
        // The batch removed the child meanwhile: the parent may go.
        let soon = t0 + Duration::from_millis(100);
        let children = ask(&mut family, &parent, soon, &listing(None), &calls).await;
        assert!(children.is_empty(), "{children:?}");
        assert_eq!(calls.get(), 2);
    }

    #[tokio::test]
    async fn a_failed_listing_is_an_error_and_not_an_empty_family() {
        let mut family = Family::default();
        let answer = family
            .children_of(&id(1), Instant::now(), || async {
                Err(DockerError::invalid("the daemon answered nonsense"))
            })
            .await;
        assert!(answer.is_err());
    }
}
