//! exapp-janitor: keeps the Docker hosts of a Nextcloud AppAPI installation
//! free of outdated ExApp images.
//!
//! Layers, each importing only those below it (no module imports one above):
//!
//! - shell: `cli` → `app` (the composition root: builds and wires, imported
//!   by the CLI only) → `web`, `scheduler`, `watch` → `jobs`;
//! - the running janitor: `janitor` (store, caches, limits shared by one
//!   process) → `read_cache` (what requests read from the store, held
//!   until it changes) → `nextcloud_link` (the Nextcloud connection: test, AppAPI
//!   snapshot, daemon proposals) → `report`, `settings`, `daemons`, `auth`,
//!   `scan` → `backend` (what a scan or job may ask of a daemon: the Engine's API or
//!   HaRP, with their capabilities);
//! - edges: `docker` (the Engine API, directly or through HaRP), `nextcloud`
//!   (AppAPI's lists, read-only), `store` (SQLite), `config`;
//! - pure core: `policy`, `inventory`, `schedule`, `domain` (no I/O);
//! - under everything: `clock` (the time of day: system time, or a test's
//!   manual clock) and `version` (what this build is), which any module may
//!   import; `healthcheck` (the client side of `/api/v1/health`) is the CLI's.

pub mod app;
pub mod auth;
pub mod backend;
pub mod cli;
pub mod clock;
pub mod config;
pub mod config_file;
pub mod daemons;
pub mod docker;
pub mod domain;
pub mod healthcheck;
pub mod inventory;
pub mod janitor;
pub mod jobs;
pub mod nextcloud;
pub mod nextcloud_link;
pub mod policy;
pub mod read_cache;
pub mod recent;
pub mod report;
pub mod scan;
pub mod schedule;
pub mod scheduler;
pub mod settings;
pub mod store;
pub mod version;
pub mod watch;
pub mod web;
