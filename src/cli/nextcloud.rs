//! `exapp-janitor nextcloud …`: connect to Nextcloud, test, show what AppAPI
//! knows, and answer the daemon proposals. The app password comes from a
//! file, never from the command line (where every user of the host could
//! read it).

use std::path::PathBuf;

use clap::Subcommand;

use super::{failed, CliError};
use crate::janitor::Janitor;
use crate::nextcloud_link::{self as link, AcceptInput, ConnectInput, LinkError, NextcloudView};

#[derive(Debug, Subcommand)]
pub enum NextcloudCommand {
    /// Connect to Nextcloud with an admin's app password (tested first: a
    /// failed test changes nothing), then read AppAPI's daemons and ExApps.
    Connect {
        /// Nextcloud's address, like https://cloud.example.org
        url: String,
        /// The admin's login name.
        #[arg(long)]
        user: String,
        /// File holding the app password ("Security → Devices & sessions").
        #[arg(long, value_name = "FILE")]
        app_password_file: PathBuf,
    },
    /// Check the stored connection: Nextcloud's and AppAPI's versions, or the error.
    Test,
    /// Read AppAPI's daemons and ExApps now (Nextcloud is only read).
    Refresh,
    /// Show the connection, AppAPI's ExApps and the daemon proposals.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Accept an AppAPI daemon as a janitor daemon.
    Accept {
        /// AppAPI's daemon name.
        daemon: String,
        /// The janitor daemon's name (default: AppAPI's).
        #[arg(long)]
        name: Option<String>,
        /// Docker daemons: the Engine's own endpoint (unix://, tcp://, https://).
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long)]
        tls_ca: Option<String>,
        #[arg(long)]
        tls_cert: Option<String>,
        #[arg(long)]
        tls_key: Option<String>,
        /// HaRP daemons: file holding HaRP's shared key.
        #[arg(long, value_name = "FILE")]
        harp_key_file: Option<PathBuf>,
    },
    /// Refuse an AppAPI daemon: the janitor will not look after it.
    Refuse { daemon: String },
    /// Forget the connection, AppAPI's lists and the answers to proposals.
    Disconnect,
}

impl From<LinkError> for CliError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Invalid(fields) => {
                let lines: Vec<String> = fields.iter().map(|(f, m)| format!("{f}: {m}")).collect();
                CliError::BadInput(lines.join("\n"))
            }
            LinkError::Daemon(d) => d.into(),
            LinkError::NotConnected
            | LinkError::NoSuchDaemon(_)
            | LinkError::NotManaged(_)
            | LinkError::AlreadyDecided(_) => CliError::BadInput(e.to_string()),
            LinkError::Nextcloud(n) => CliError::Failed(n.to_string()),
            LinkError::Store(s) => failed(s),
        }
    }
}

fn read_secret_file(flag: &str, path: &std::path::Path) -> Result<String, CliError> {
    let bad = |m: String| CliError::BadInput(format!("{flag} {}: {m}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if !meta.is_file() || meta.len() > 4096 {
        return Err(bad("not a small regular file holding the secret".into()));
    }
    std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))
}

/// What AppAPI lists changes statuses at a daemon's next scan (a running
/// server rescans after its own refreshes, not after the CLI's).
const FOLLOW: &str =
    "statuses follow at each daemon's next scan; `exapp-janitor scan` shows them now";

pub async fn run(app: &Janitor, command: NextcloudCommand) -> Result<(), CliError> {
    let timeout = link::TIMEOUT;
    match command {
        NextcloudCommand::Connect {
            url,
            user,
            app_password_file,
        } => {
            let input = ConnectInput {
                url,
                user,
                app_password: read_secret_file("--app-password-file", &app_password_file)?,
            };
            let view = link::connect(&app.store, &input, timeout).await?;
            println!(
                "connected to Nextcloud {} (AppAPI {})",
                view.nextcloud_version.as_deref().unwrap_or("?"),
                view.app_api_version.as_deref().unwrap_or("?")
            );
            print_view(&view);
            println!("{FOLLOW}");
            Ok(())
        }
        NextcloudCommand::Test => {
            let v = link::test(&app.store, timeout).await?;
            println!("Nextcloud {} with AppAPI {}", v.nextcloud, v.app_api);
            Ok(())
        }
        NextcloudCommand::Refresh => {
            let view = link::refresh(&app.store, timeout).await?;
            print_view(&view);
            println!("{FOLLOW}");
            Ok(())
        }
        NextcloudCommand::Status { json } => {
            let view = link::status(&app.store).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view).map_err(failed)?);
            } else {
                print_view(&view);
            }
            Ok(())
        }
        NextcloudCommand::Accept {
            daemon,
            name,
            endpoint,
            tls_ca,
            tls_cert,
            tls_key,
            harp_key_file,
        } => {
            let harp_key = match harp_key_file {
                Some(f) => Some(read_secret_file("--harp-key-file", &f)?),
                None => None,
            };
            let input = AcceptInput {
                name,
                endpoint,
                tls_ca,
                tls_cert,
                tls_key,
                harp_key,
            };
            let view = link::accept(&app.store, &daemon, &input).await?;
            let added = view
                .proposals
                .iter()
                .find(|p| p.appapi_daemon == daemon)
                .and_then(|p| p.janitor_daemon.clone())
                .unwrap_or_default();
            println!("accepted {daemon}: added the daemon {added}");
            Ok(())
        }
        NextcloudCommand::Refuse { daemon } => {
            link::refuse(&app.store, &daemon).await?;
            println!("refused {daemon}: the janitor will not look after it");
            Ok(())
        }
        NextcloudCommand::Disconnect => {
            link::disconnect(&app.store).await?;
            println!("disconnected from Nextcloud");
            println!("{FOLLOW}");
            Ok(())
        }
    }
}

fn print_view(view: &NextcloudView) {
    if !view.connected {
        println!("not connected to Nextcloud");
        return;
    }
    println!(
        "Nextcloud {} as {}",
        view.url.as_deref().unwrap_or_default(),
        view.user.as_deref().unwrap_or_default()
    );
    if let (Some(nc), Some(aa)) = (&view.nextcloud_version, &view.app_api_version) {
        println!("versions: Nextcloud {nc}, AppAPI {aa}");
    }
    if let Some(note) = view.stale_note() {
        println!("warning: {note}");
    }
    if view.snapshot_at.is_some() {
        println!("ExApps AppAPI lists: {}", view.exapps.len());
        for e in &view.exapps {
            println!(
                "  {} ({} {}) on {}",
                e.id,
                e.name,
                e.version,
                e.daemon.as_deref().unwrap_or("?")
            );
        }
        println!("daemon proposals:");
        for p in &view.proposals {
            let state = serde_json::to_value(p.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            println!("  {} [{state}]: {}", p.appapi_daemon, p.note);
        }
    }
}
