//! A run frees exactly what its preview predicted, and that is what the
//! daemon's own `LayersSize` drops by. A test binary of its own, so nothing
//! else changes the engines' disk use meanwhile.

mod common;

use std::time::Duration;

use common::fixtures::Fixtures;
use common::*;
use serde_json::json;

#[tokio::test]
async fn bytes_freed_equal_the_preview_and_the_daemons_layers_size_drop() {
    for engine in [engine_a_sock(), engine_b_sock()] {
        let app = spawn_app().await;
        app.post_json("/api/v1/daemons", &json!({"name": "d", "endpoint": engine}))
            .await;
        app.start_worker();
        let fx = Fixtures::new(&engine);
        let base = fx.unique("busybox:1");
        fx.busybox(&base);
        let repo = format!("ghcr.io/{}/bytes", fx.unique("nc"));
        // Two outdated versions sharing a layer that nothing else uses…
        let shared = fx.unique("shared:1");
        fx.build(&shared, &base, 30_000);
        let (v1, v2) = (format!("{repo}:1"), format!("{repo}:2"));
        fx.build(&v1, &shared, 7_000);
        fx.build(&v2, &shared, 9_000);
        fx.docker(&["rmi", &shared]);
        // …and one sharing the base layer with the current version.
        let v3 = format!("{repo}:3");
        fx.build(&v3, &base, 11_000);
        let current = format!("{repo}:4");
        fx.build(&current, &base, 13_000);
        fx.run(
            &format!("nc_app_{}", fx.unique("bytes").replace('-', "_")),
            &current,
        );

        let (_, preview) = app
            .post_json(
                "/api/v1/cleanup/preview",
                &json!({"min_age_hours": 0, "daemon": "d", "owner": appid(&fx, "bytes")}),
            )
            .await;
        let predicted = preview["bytes_reclaimable"].as_i64().unwrap();
        let mine: i64 = preview["images"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| {
                [&v1, &v2, &v3]
                    .iter()
                    .any(|t| i["repo_tags"][0] == t.as_str())
            })
            .count() as i64;
        assert_eq!(mine, 3, "{preview}");

        let before = fx.layers_size();
        let (_, run) = app
            .post_json(
                "/api/v1/cleanup/runs",
                &json!({"min_age_hours": 0, "daemon": "d", "owner": appid(&fx, "bytes")}),
            )
            .await;
        let run = app
            .wait_for_run(run["id"].as_i64().unwrap(), Duration::from_secs(120))
            .await;
        let drop = before - fx.layers_size();
        assert_eq!(run["bytes_predicted"].as_i64(), Some(predicted), "{engine}");
        assert_eq!(
            run["bytes_freed"].as_i64(),
            Some(predicted),
            "{engine}: freed vs predicted: {run}"
        );
        assert_eq!(
            drop, predicted,
            "{engine}: the daemon's LayersSize dropped by another amount"
        );
        assert!(
            predicted >= 30_000 + 7_000 + 9_000 + 11_000,
            "{engine}: {predicted}"
        );
    }
}
