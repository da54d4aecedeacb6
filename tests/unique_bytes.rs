//! `unique_bytes` is what the daemon really frees: checked against the drop
//! of `/system/df`'s `LayersSize` when the image is removed. A test binary of
//! its own, so no other test changes the engines' disk use meanwhile.

mod common;

use common::fixtures::Fixtures;
use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn unique_bytes_equal_the_layers_size_drop_on_removal() {
    for engine in [engine_a_sock(), engine_b_sock()] {
        let app = spawn_app().await;
        app.post_json("/api/v1/daemons", &json!({"name": "d", "endpoint": engine}))
            .await;
        let fx = Fixtures::new(&engine);
        let base = fx.unique("base:1");
        fx.import(&base, &[("base.bin", 50_000)]);
        // Two outdated versions that share a layer only with each other, and a current one.
        let mid = fx.unique("mid:1");
        fx.build(&mid, &base, 20_000);
        let r = format!("ghcr.io/{}/app", fx.unique("nc"));
        let (v1, v2, v3) = (format!("{r}:1"), format!("{r}:2"), format!("{r}:3"));
        fx.build(&v1, &mid, 7_000);
        fx.build(&v2, &mid, 9_000);
        fx.build(&v3, &base, 11_000);
        let busybox = fx.unique("busybox:1");
        fx.busybox(&busybox);
        fx.create(
            &format!("nc_app_{}", fx.unique("app").replace('-', "_")),
            &v3,
        );
        fx.docker(&["rmi", &mid]);

        app.post_json("/api/v1/scan", &json!({})).await;
        let images = app.get_json("/api/v1/images?limit=5000").await;
        let unique = |tag: &str| -> i64 {
            images
                .as_array()
                .unwrap()
                .iter()
                .find(|i: &&Value| i["repo_tags"].as_array().unwrap().iter().any(|t| t == tag))
                .unwrap()["unique_bytes"]
                .as_i64()
                .unwrap()
        };
        let (u1, u2) = (unique(&v1), unique(&v2));
        assert!(u1 >= 7_000 && u2 >= 9_000, "{engine}: {u1} {u2}");

        let before = fx.layers_size();
        fx.docker(&["rmi", &v1]);
        let after = fx.layers_size();
        assert_eq!(before - after, u1, "{engine}: v1 alone frees its own layer");

        // With v1 gone, v2 alone now holds the shared middle layer too.
        app.post_json("/api/v1/scan", &json!({})).await;
        let images = app.get_json("/api/v1/images?limit=5000").await;
        let u2_now = images
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["repo_tags"].as_array().unwrap().iter().any(|t| t == &v2))
            .unwrap()["unique_bytes"]
            .as_i64()
            .unwrap();
        assert!(u2_now > u2, "the shared layer is v2's alone now");
        let before = fx.layers_size();
        fx.docker(&["rmi", &v2]);
        assert_eq!(
            before - fx.layers_size(),
            u2_now,
            "{engine}: v2 frees its layer and the shared one"
        );
    }
}
