//! Ownership and classification on constructed snapshots.

use super::*;

const NOW: i64 = 1_800_000_000;

fn id(n: u8) -> ImageId {
    ImageId::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
}

fn app(name: &str) -> AppId {
    AppId::parse(name).unwrap()
}

/// An image with one base layer shared by all and one layer of its own.
fn image(n: u8, tags: &[&str]) -> ImageInfo {
    ImageInfo {
        id: id(n),
        repo_tags: tags.iter().map(|t| t.to_string()).collect(),
        repo_digests: vec![],
        created: NOW - 1000,
        size: 1100,
        layers: vec![
            Layer {
                chain_id: "base".into(),
                size: 1000,
            },
            Layer {
                chain_id: format!("own{n}").into(),
                size: 100,
            },
        ],
    }
}

fn exapp(appid: &str, n: u8, config_image: &str, state: &str) -> ContainerInfo {
    ContainerInfo {
        name: format!("nc_app_{appid}"),
        image_id: id(n),
        state: state.into(),
        exapp: Some(ExAppContainer {
            appid: app(appid),
            config_image: config_image.into(),
        }),
    }
}

fn other(name: &str, n: u8, state: &str) -> ContainerInfo {
    ContainerInfo {
        name: name.into(),
        image_id: id(n),
        state: state.into(),
        exapp: None,
    }
}

fn run(snapshot: &Snapshot, history: &History) -> Classification {
    classify(snapshot, history, &[], NOW)
}

fn status_of(inv: &Classification, n: u8) -> &ClassifiedImage {
    inv.images.iter().find(|i| i.info.id == id(n)).unwrap()
}

#[test]
fn an_exapp_container_in_any_state_makes_its_image_current() {
    for state in ["running", "exited", "created", "paused"] {
        let snap = Snapshot {
            images: vec![image(1, &["ghcr.io/nextcloud/llm2:1.0"])],
            containers: vec![exapp("llm2", 1, "ghcr.io/nextcloud/llm2:1.0", state)],
        };
        let img = run(&snap, &History::default()).images.remove(0);
        assert_eq!(
            (img.status, img.owner),
            (Status::Current, Some(app("llm2"))),
            "{state}"
        );
        assert!(
            img.reason.contains("current image of llm2") && img.reason.contains(state),
            "{}",
            img.reason
        );
    }
}

#[test]
fn an_older_tag_of_the_exapp_repository_is_outdated_even_with_a_device_suffix() {
    let snap = Snapshot {
        images: vec![
            image(1, &["ghcr.io/nextcloud/llm2:1.1.0-cuda"]),
            image(2, &["ghcr.io/nextcloud/llm2:1.2.0-cuda"]),
            image(
                3,
                &[
                    "ghcr.io/nextcloud/llm2:1.0.0-cpu",
                    "ghcr.io/nextcloud/llm2:1.0.0-rocm",
                ],
            ),
        ],
        containers: vec![exapp(
            "llm2",
            2,
            "ghcr.io/nextcloud/llm2:1.2.0-cuda",
            "running",
        )],
    };
    let inv = run(&snap, &History::default());
    for n in [1, 3] {
        let img = status_of(&inv, n);
        assert_eq!(
            (img.status, img.owner.clone()),
            (Status::Outdated, Some(app("llm2")))
        );
        assert!(
            img.reason
                .starts_with("in ghcr.io/nextcloud/llm2, a repository of llm2"),
            "{}",
            img.reason
        );
    }
}

#[test]
fn docker_hub_names_match_however_they_are_written() {
    let snap = Snapshot {
        images: vec![
            image(1, &["docker.io/acme/exapp:1"]),
            image(2, &["acme/exapp:2"]),
        ],
        containers: vec![exapp("acme", 2, "acme/exapp:2", "running")],
    };
    assert_eq!(
        status_of(&run(&snap, &History::default()), 1).status,
        Status::Outdated
    );
}

#[test]
fn an_outdated_exapp_image_that_a_stopped_container_uses_is_in_use() {
    let snap = Snapshot {
        images: vec![
            image(1, &["ghcr.io/nextcloud/app:1"]),
            image(2, &["ghcr.io/nextcloud/app:2"]),
        ],
        containers: vec![
            exapp("app", 2, "ghcr.io/nextcloud/app:2", "running"),
            other("backup_tool", 1, "exited"),
        ],
    };
    let img = run(&snap, &History::default()).images.remove(0);
    assert_eq!((img.status, img.owner), (Status::InUse, Some(app("app"))));
    assert_eq!(img.reason, "used by stopped container backup_tool");
    assert_eq!(img.containers, ["backup_tool"]);
}

#[test]
fn history_keeps_ownership_after_the_exapp_moved_to_another_repository() {
    let mut history = History::default();
    history.image_owners.insert(id(1), app("app"));
    history
        .repo_owners
        .entry("ghcr.io/old/app".into())
        .or_default()
        .insert(app("app"));
    let snap = Snapshot {
        images: vec![
            image(1, &["ghcr.io/old/app:1"]),
            image(2, &["mirror.local:5000/new/app:2"]),
        ],
        containers: vec![exapp("app", 2, "mirror.local:5000/new/app:2", "running")],
    };
    let inv = run(&snap, &history);
    let old = status_of(&inv, 1);
    assert_eq!(
        (old.status, old.owner.clone()),
        (Status::Outdated, Some(app("app")))
    );
    assert!(
        old.reason
            .starts_with("previous image of app; outdated since"),
        "{}",
        old.reason
    );
    let current = &inv.observations.current[0];
    assert!(
        current.repositories.contains("mirror.local:5000/new/app"),
        "the new repository is remembered"
    );
}

#[test]
fn an_untagged_previous_image_is_outdated_not_dangling() {
    let mut history = History::default();
    history.image_owners.insert(id(1), app("app"));
    let snap = Snapshot {
        images: vec![image(1, &[]), image(2, &["ghcr.io/nextcloud/app:latest"])],
        containers: vec![exapp("app", 2, "ghcr.io/nextcloud/app:latest", "running")],
    };
    assert_eq!(status_of(&run(&snap, &history), 1).status, Status::Outdated);
}

#[test]
fn the_images_of_an_uninstalled_exapp_are_outdated_and_say_so() {
    let mut history = History::default();
    history.image_owners.insert(id(1), app("gone"));
    let snap = Snapshot {
        images: vec![image(1, &["ghcr.io/x/gone:1"])],
        containers: vec![],
    };
    let img = run(&snap, &history).images.remove(0);
    assert_eq!(img.status, Status::Outdated);
    assert!(
        img.reason
            .contains("no nc_app_gone container exists (uninstalled?)"),
        "{}",
        img.reason
    );
}

#[test]
fn a_protected_pattern_wins_over_outdated() {
    let snap = Snapshot {
        images: vec![
            image(1, &["ghcr.io/nextcloud/llm2:1"]),
            image(2, &["ghcr.io/nextcloud/llm2:2"]),
        ],
        containers: vec![exapp("llm2", 2, "ghcr.io/nextcloud/llm2:2", "running")],
    };
    let protected = [ProtectedPattern::parse("ghcr.io/nextcloud/llm2:1*").unwrap()];
    let img = classify(&snap, &History::default(), &protected, NOW)
        .images
        .remove(0);
    assert_eq!(img.status, Status::Protected);
    assert_eq!(
        img.reason,
        "matches protected pattern ghcr.io/nextcloud/llm2:1*"
    );
}

#[test]
fn untagged_unowned_unused_images_are_dangling_and_others_foreign() {
    let snap = Snapshot {
        images: vec![image(1, &[]), image(2, &["postgres:16"])],
        containers: vec![],
    };
    let inv = run(&snap, &History::default());
    assert_eq!(
        (status_of(&inv, 1).status, status_of(&inv, 2).status),
        (Status::Dangling, Status::Foreign)
    );
    assert_eq!(status_of(&inv, 2).owner, None);
}

#[test]
fn an_image_with_only_a_digest_is_matched_by_its_repository() {
    let mut digest_only = image(1, &[]);
    digest_only.repo_digests = vec!["ghcr.io/nextcloud/app@sha256:abc".into()];
    let snap = Snapshot {
        images: vec![digest_only, image(2, &["ghcr.io/nextcloud/app:2"])],
        containers: vec![exapp("app", 2, "ghcr.io/nextcloud/app:2", "running")],
    };
    assert_eq!(
        status_of(&run(&snap, &History::default()), 1).status,
        Status::Outdated
    );
}

#[test]
fn outdated_since_is_kept_from_history_or_starts_now() {
    let mut history = History::default();
    history.image_owners.insert(id(1), app("app"));
    history.image_owners.insert(id(3), app("app"));
    history.outdated_since.insert(id(1), NOW - 7200);
    let snap = Snapshot {
        images: vec![image(1, &[]), image(2, &["ghcr.io/a/app:2"]), image(3, &[])],
        containers: vec![exapp("app", 2, "ghcr.io/a/app:2", "running")],
    };
    let inv = run(&snap, &history);
    assert_eq!(status_of(&inv, 1).outdated_since, Some(NOW - 7200));
    assert_eq!(status_of(&inv, 3).outdated_since, Some(NOW));
    assert_eq!(inv.observations.newly_outdated, [id(3)]);
}

#[test]
fn an_image_that_is_current_again_forgets_when_it_was_outdated() {
    let mut history = History::default();
    history.outdated_since.insert(id(1), NOW - 7200);
    let snap = Snapshot {
        images: vec![image(1, &["ghcr.io/a/app:1"])],
        containers: vec![exapp("app", 1, "ghcr.io/a/app:1", "running")],
    };
    assert_eq!(
        run(&snap, &history).observations.no_longer_outdated,
        [id(1)]
    );
}

#[test]
fn unique_bytes_and_totals_split_shared_layers_once() {
    let snap = Snapshot {
        images: vec![
            image(1, &["ghcr.io/a/app:1"]),
            image(2, &["ghcr.io/a/app:2"]),
            image(3, &["postgres:16"]),
        ],
        containers: vec![exapp("app", 2, "ghcr.io/a/app:2", "running")],
    };
    let inv = run(&snap, &History::default());
    assert_eq!(status_of(&inv, 1).unique_bytes, 100);
    let t = &inv.totals;
    assert_eq!(t.total_bytes, 1300);
    assert_eq!(
        t.bytes_by_status[&Status::Current],
        1100,
        "the shared base counts under current"
    );
    assert_eq!(t.bytes_by_status[&Status::Outdated], 100);
    assert_eq!(t.bytes_by_status[&Status::Foreign], 100);
    assert_eq!(t.bytes_by_status.values().sum::<u64>(), t.total_bytes);
    assert_eq!(t.outdated_reclaimable, 100);
}

#[test]
fn the_same_images_in_any_order_give_the_same_inventory_newest_first() {
    let mut older = image(3, &["ghcr.io/nextcloud/llm2:0.9"]);
    older.created -= 500;
    let images = vec![
        image(2, &["ghcr.io/nextcloud/llm2:1.0"]),
        older,
        image(1, &["ghcr.io/nextcloud/llm2:1.1"]),
    ];
    let containers = vec![exapp("llm2", 1, "ghcr.io/nextcloud/llm2:1.1", "running")];
    let forward = Snapshot {
        images: images.clone(),
        containers: containers.clone(),
    };
    let backward = Snapshot {
        images: images.into_iter().rev().collect(),
        containers,
    };
    let (a, b) = (
        run(&forward, &History::default()),
        run(&backward, &History::default()),
    );
    assert_eq!(a, b);
    let order: Vec<ImageId> = a.images.iter().map(|i| i.info.id.clone()).collect();
    assert_eq!(
        order,
        [id(1), id(2), id(3)],
        "same second by ID, then older"
    );
}

fn created_at(mut info: ImageInfo, created: i64) -> ImageInfo {
    info.created = created;
    info
}

/// `pend:2` runs; `pend:3` was pulled after it (an update in progress).
fn update_in_progress() -> Snapshot {
    Snapshot {
        images: vec![
            created_at(image(2, &["ghcr.io/nextcloud/pend:2"]), NOW - 500),
            created_at(image(3, &["ghcr.io/nextcloud/pend:3"]), NOW - 10),
            created_at(image(1, &["ghcr.io/nextcloud/pend:1"]), NOW - 900),
        ],
        containers: vec![exapp("pend", 2, "ghcr.io/nextcloud/pend:2", "running")],
    }
}

#[test]
fn a_newer_image_pulled_for_an_exapp_and_never_used_is_pending_not_outdated() {
    let inv = run(&update_in_progress(), &History::default());
    let pulled = status_of(&inv, 3);
    assert_eq!(
        (pulled.status, pulled.owner.clone()),
        (Status::Pending, Some(app("pend")))
    );
    assert!(
        pulled.reason.starts_with("pulled for pend, not used yet"),
        "{}",
        pulled.reason
    );
    assert_eq!(pulled.outdated_since, None);
    assert!(!inv.observations.newly_outdated.contains(&id(3)));
    // An older tag of the same repository is still outdated.
    assert_eq!(status_of(&inv, 1).status, Status::Outdated);
}

#[test]
fn a_pending_image_becomes_current_when_the_container_switches_to_it() {
    let mut snap = update_in_progress();
    snap.containers = vec![exapp("pend", 3, "ghcr.io/nextcloud/pend:3", "running")];
    let inv = run(&snap, &History::default());
    assert_eq!(status_of(&inv, 3).status, Status::Current);
    assert_eq!(status_of(&inv, 2).status, Status::Outdated);
}

#[test]
fn a_pending_image_is_outdated_once_a_newer_image_is_current() {
    let mut snap = update_in_progress();
    snap.images
        .push(created_at(image(4, &["ghcr.io/nextcloud/pend:4"]), NOW));
    snap.containers = vec![exapp("pend", 4, "ghcr.io/nextcloud/pend:4", "running")];
    let inv = run(&snap, &History::default());
    assert_eq!(status_of(&inv, 3).status, Status::Outdated);
}

#[test]
fn an_image_that_was_current_before_is_outdated_after_a_rollback_not_pending() {
    // The ExApp went back from :3 to :2: :3 is newer but was current once.
    let mut history = History::default();
    history.image_owners.insert(id(3), app("pend"));
    let inv = run(&update_in_progress(), &history);
    assert_eq!(status_of(&inv, 3).status, Status::Outdated);
}

#[test]
fn the_images_of_an_exapp_without_a_container_are_never_pending() {
    let mut snap = update_in_progress();
    snap.containers.clear();
    let mut history = History::default();
    history.image_owners.insert(id(2), app("pend"));
    history
        .repo_owners
        .entry("ghcr.io/nextcloud/pend".into())
        .or_default()
        .insert(app("pend"));
    let inv = run(&snap, &history);
    assert_eq!(status_of(&inv, 3).status, Status::Outdated);
}

// What AppAPI lists (the Nextcloud connection, issue #20).

fn listing(apps: &[&str]) -> AppApiView {
    AppApiView {
        installed: apps.iter().map(|a| app(a)).collect(),
        mirrors: vec![],
    }
}

fn run_listed(snapshot: &Snapshot, history: &History, view: &AppApiView) -> Classification {
    classify_with(snapshot, history, &[], Some(view), NOW)
}

/// `pend` ran `:2` (and `:1` before it); its container is gone now, and
/// `:3` was pulled: AppAPI between removing the old container and creating
/// the new one.
fn container_gone_mid_update() -> (Snapshot, History) {
    let mut snap = update_in_progress();
    snap.containers.clear();
    let mut history = History::default();
    for n in [1, 2] {
        history.image_owners.insert(id(n), app("pend"));
    }
    history.latest_current.insert(app("pend"), id(2));
    history
        .repo_owners
        .entry("ghcr.io/nextcloud/pend".into())
        .or_default()
        .insert(app("pend"));
    (snap, history)
}

#[test]
fn an_exapp_appapi_lists_keeps_its_current_image_while_its_container_is_gone() {
    let (snap, history) = container_gone_mid_update();
    let inv = run_listed(&snap, &history, &listing(&["pend"]));
    let current = status_of(&inv, 2);
    assert_eq!(current.status, Status::Current);
    assert!(
        current.reason.contains("as AppAPI lists it")
            && current.reason.contains("no nc_app_pend container"),
        "{}",
        current.reason
    );
    assert!(!inv.observations.newly_outdated.contains(&id(2)));
}

#[test]
fn an_image_pulled_while_the_listed_exapps_container_is_gone_is_pending() {
    let (snap, history) = container_gone_mid_update();
    let inv = run_listed(&snap, &history, &listing(&["pend"]));
    assert_eq!(status_of(&inv, 3).status, Status::Pending);
}

#[test]
fn the_older_images_of_a_listed_exapp_without_container_stay_outdated() {
    let (snap, history) = container_gone_mid_update();
    let inv = run_listed(&snap, &history, &listing(&["pend"]));
    let older = status_of(&inv, 1);
    assert_eq!(older.status, Status::Outdated);
    assert!(
        !older.reason.contains("uninstalled"),
        "a listed ExApp is not uninstalled: {}",
        older.reason
    );
}

#[test]
fn every_image_of_an_exapp_appapi_no_longer_lists_is_outdated_as_uninstalled() {
    let (snap, history) = container_gone_mid_update();
    let inv = run_listed(&snap, &history, &listing(&["other"]));
    for n in [1, 2, 3] {
        let img = status_of(&inv, n);
        assert_eq!(img.status, Status::Outdated, "image {n}");
        assert!(
            img.reason
                .contains("uninstalled from Nextcloud (AppAPI no longer lists pend)"),
            "{}",
            img.reason
        );
    }
    // Outdated from that moment: the time starts now for the last current one.
    assert!(inv.observations.newly_outdated.contains(&id(2)));
}

#[test]
fn a_container_still_makes_its_image_current_whatever_appapi_lists() {
    let inv = run_listed(&update_in_progress(), &History::default(), &listing(&[]));
    assert_eq!(status_of(&inv, 2).status, Status::Current);
}

#[test]
fn without_appapi_a_containerless_exapps_last_image_is_only_maybe_uninstalled() {
    let (snap, history) = container_gone_mid_update();
    let img = run(&snap, &history).images.remove(1);
    assert_eq!(img.info.id, id(2));
    assert_eq!(img.status, Status::Outdated);
    assert!(img.reason.contains("(uninstalled?)"), "{}", img.reason);
}

fn mirrored(from: &str, to: &str) -> AppApiView {
    AppApiView {
        installed: [app("llm2")].into(),
        mirrors: vec![RegistryMirror {
            from: from.into(),
            to: to.into(),
        }],
    }
}

/// `llm2` runs `:2` from the mirror; `:1` came from the original registry.
fn running_from_a_mirror() -> Snapshot {
    Snapshot {
        images: vec![
            image(2, &["mirror.local:5000/nextcloud/llm2:2"]),
            image(1, &["ghcr.io/nextcloud/llm2:1"]),
        ],
        containers: vec![exapp(
            "llm2",
            2,
            "mirror.local:5000/nextcloud/llm2:2",
            "running",
        )],
    }
}

#[test]
fn appapis_registry_mapping_makes_the_original_repository_the_exapps_too() {
    let view = mirrored("ghcr.io", "mirror.local:5000");
    let inv = run_listed(&running_from_a_mirror(), &History::default(), &view);
    let old = status_of(&inv, 1);
    assert_eq!(
        (old.status, old.owner.clone()),
        (Status::Outdated, Some(app("llm2")))
    );
    assert!(
        old.reason.contains("in ghcr.io/nextcloud/llm2"),
        "{}",
        old.reason
    );
    // Without the mapping, the original repository is nobody's.
    let inv = run_listed(
        &running_from_a_mirror(),
        &History::default(),
        &listing(&["llm2"]),
    );
    assert_eq!(status_of(&inv, 1).status, Status::Foreign);
}

#[test]
fn a_registry_mapping_matches_whole_path_components_only() {
    let view = mirrored("ghcr.io/next", "mirror.local:5000/next");
    let inv = run_listed(&running_from_a_mirror(), &History::default(), &view);
    assert_eq!(status_of(&inv, 1).status, Status::Foreign);
    let view = mirrored("ghcr.io/nextcloud", "mirror.local:5000/nextcloud");
    let inv = run_listed(&running_from_a_mirror(), &History::default(), &view);
    assert_eq!(status_of(&inv, 1).status, Status::Outdated);
}
