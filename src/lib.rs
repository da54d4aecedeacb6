//! exapp-janitor: keeps the Docker hosts of a Nextcloud AppAPI installation
//! free of outdated ExApp images.
//!
//! Layers, each importing only those below it:
//! `web`, `cli` → `app` → `daemons`, `auth` → `docker`, `store` → `domain`.

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod config_file;
pub mod daemons;
pub mod docker;
pub mod domain;
pub mod inventory;
pub mod jobs;
pub mod policy;
pub mod report;
pub mod scan;
pub mod schedule;
pub mod settings;
pub mod store;
pub mod watch;
pub mod web;
