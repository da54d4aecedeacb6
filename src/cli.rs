//! The `exapp-janitor` command line. Exit codes: 0 success, 1 failure while
//! working (a daemon or the database), 2 bad input (nothing changed).

use std::io::Write;
use std::process::ExitCode;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod nextcloud;

use crate::app;
use crate::auth::{self, AuthError, Password};
use crate::config::{GlobalConfig, HealthConfig, ServeConfig};
use crate::config_file;
use crate::daemons::DaemonSummary;
use crate::daemons::{self, DaemonError};
use crate::domain::{NewDaemonInput, MAX_HOURS};
use crate::janitor::Janitor;
use crate::jobs;
use crate::report::{self, ImageFilter, ImageObject};
use crate::scan;
use crate::settings::{self, SettingsError};
use crate::store::StoredDaemon;

#[derive(Debug, Parser)]
#[command(
    name = "exapp-janitor",
    version = crate::version::VERSION,
    about = "Removes outdated Nextcloud ExApp images from Docker hosts"
)]
pub struct Cli {
    /// A TOML file with settings: each key is a setting's environment
    /// variable without EXAPP_JANITOR_, in lower case (listen, data_dir, …).
    /// Flags and the environment override it.
    #[arg(long, global = true, env = "EXAPP_JANITOR_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub global: GlobalConfig,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the dashboard and the JSON API.
    Serve(ServeConfig),
    /// Manage the Docker daemons the janitor looks after.
    Daemon {
        #[command(subcommand)]
        command: DaemonCommand,
    },
    /// Rescan every daemon and print its images (owner, status, sizes).
    Scan {
        /// Print the JSON array of image objects instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove outdated ExApp images: preview with --dry-run, or run and wait.
    Clean {
        /// Only this daemon.
        #[arg(long)]
        daemon: Option<String>,
        /// Show what would be removed and what that frees; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Use this min_age_hours for this run only.
        #[arg(long, value_parser = clap::value_parser!(i64).range(0..=i64::from(MAX_HOURS)))]
        min_age_hours: Option<i64>,
        /// Only this ExApp's images (its app ID, e.g. llm2).
        #[arg(long)]
        owner: Option<String>,
        /// Print the preview or the finished run as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show or change the settings (interval, cleanup on update, retention).
    Settings {
        #[command(subcommand)]
        command: SettingsCommand,
    },
    /// Manage the admin account.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Connect to Nextcloud and keep in step with AppAPI's daemons and ExApps (read-only).
    Nextcloud {
        #[command(subcommand)]
        command: nextcloud::NextcloudCommand,
    },
    /// Ask the running server whether it and its database answer: exit 0
    /// if so, 1 if not (a container's HEALTHCHECK, needing no shell or curl).
    Health(HealthConfig),
}

#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// Print the settings and the schedule.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Change settings: KEY=VALUE ...; a list is a JSON array, e.g.
    /// protected_patterns='["ghcr.io/nextcloud/llm2:*"]'. All or nothing.
    Set {
        #[arg(required = true, value_name = "KEY=VALUE")]
        assignments: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Set a new admin password (generated and printed, or read from stdin)
    /// and log every browser out.
    ResetPassword {
        /// Read the new password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// Add a daemon: unix:///path.sock, tcp://host:port, https://host:port (with --tls-*),
    /// or a HaRP: harp+http://host:port (with --harp-key-file and --exapp).
    Add {
        name: String,
        endpoint: String,
        /// CA certificate that signed the daemon's certificate (https:// only).
        #[arg(long)]
        tls_ca: Option<String>,
        /// Client certificate (https:// only).
        #[arg(long)]
        tls_cert: Option<String>,
        /// Client key (https:// only).
        #[arg(long)]
        tls_key: Option<String>,
        /// File holding the HaRP shared key (harp+http:// only; never on the command line).
        #[arg(long, value_name = "FILE")]
        harp_key_file: Option<std::path::PathBuf>,
        /// HaRP's docker-engine-port for this Docker host (AppAPI's daemon setting; default 24000).
        #[arg(long, value_name = "PORT")]
        harp_docker_port: Option<i64>,
        /// An ExApp to look for on this HaRP daemon (repeat the flag): HaRP lists nothing.
        #[arg(long = "exapp", value_name = "APPID")]
        exapps: Vec<String>,
    },
    /// Change which ExApps the janitor looks for on a HaRP daemon.
    Exapps {
        name: String,
        /// Look for this ExApp too (repeat the flag).
        #[arg(long, value_name = "APPID")]
        add: Vec<String>,
        /// Stop looking for this ExApp (repeat the flag).
        #[arg(long, value_name = "APPID")]
        remove: Vec<String>,
    },
    /// List the daemons and whether they answer now.
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a daemon (its images are not touched).
    Remove { name: String },
}

/// What went wrong, and so which exit code.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Failed(String),
}

impl From<DaemonError> for CliError {
    fn from(e: DaemonError) -> Self {
        match e {
            DaemonError::Invalid(fields) => {
                let lines: Vec<String> = fields.iter().map(|(f, m)| format!("{f}: {m}")).collect();
                CliError::BadInput(lines.join("\n"))
            }
            DaemonError::NotFound(_) | DaemonError::Busy { .. } => {
                CliError::BadInput(e.to_string())
            }
            DaemonError::Store(e) => CliError::Failed(e.to_string()),
        }
    }
}

pub fn main() -> ExitCode {
    let cli = match parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(e) => return fail(&e),
    };
    init_tracing(matches!(cli.command, Command::Serve(_)));
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            return fail(&CliError::Failed(format!(
                "cannot start the async runtime: {e}"
            )))
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// The command line, with the config file's settings where neither a flag
/// nor the environment gave one. Help, version and bad flags exit here, as
/// clap does.
fn parse(argv: Vec<OsString>) -> Result<Cli, CliError> {
    let cmd = Cli::command();
    let matches = cmd.clone().get_matches_from(&argv);
    let matches = match matches.get_one::<PathBuf>(config_file::CONFIG_KEY) {
        None => matches,
        Some(path) => {
            let bad = |e: config_file::ConfigFileError| CliError::BadInput(e.to_string());
            let table = config_file::read(path).map_err(bad)?;
            let argv = config_file::apply(&cmd, &argv, &matches, &table, path).map_err(bad)?;
            cmd.get_matches_from(argv)
        }
    };
    Cli::from_arg_matches(&matches).map_err(|e| e.exit())
}

fn fail(error: &CliError) -> ExitCode {
    eprintln!("exapp-janitor: {error}");
    match error {
        CliError::BadInput(_) => ExitCode::from(2),
        CliError::Failed(_) => ExitCode::from(1),
    }
}

fn init_tracing(serving: bool) {
    let default = if serving { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("EXAPP_JANITOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, not in journald or a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Logs the whole chain (for the log), returns the top sentence (for the user).
fn failed(error: impl std::error::Error) -> CliError {
    tracing::debug!(error = %crate::domain::error_chain(&error), "command failed");
    CliError::Failed(error.to_string())
}

async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve(config) => app::serve(&cli.global, &config).await.map_err(|e| match e {
            app::ServeError::Auth(AuthError::WeakPassword) | app::ServeError::ApiToken(_) => {
                CliError::BadInput(e.to_string())
            }
            other => failed(other),
        }),
        Command::Scan { json } => {
            with_janitor(&cli.global, async |app| scan_command(app, json).await).await
        }
        Command::Clean {
            daemon,
            dry_run,
            min_age_hours,
            owner,
            json,
        } => {
            let input = jobs::CleanupRequestInput {
                daemon,
                min_age_hours,
                images: None,
                owner,
            };
            with_janitor(&cli.global, async |app| {
                clean_command(app, &input, dry_run, json).await
            })
            .await
        }
        Command::Settings { command } => {
            with_janitor(&cli.global, async |app| {
                settings_command(app, command).await
            })
            .await
        }
        Command::Admin { command } => {
            with_janitor(&cli.global, async |app| admin_command(app, command).await).await
        }
        Command::Daemon { command } => {
            with_janitor(&cli.global, async |app| daemon_command(app, command).await).await
        }
        Command::Nextcloud { command } => {
            with_janitor(&cli.global, async |app| nextcloud::run(app, command).await).await
        }
        Command::Health(config) => health_command(&config).await,
    }
}

/// Asks the server, without opening the data dir: the check must not
/// disturb what it checks.
async fn health_command(config: &HealthConfig) -> Result<(), CliError> {
    let healthy = crate::healthcheck::check(config.listen)
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let version = match &healthy.commit {
        Some(commit) => format!("{} (git {commit})", healthy.version),
        None => healthy.version,
    };
    println!(
        "{}: exapp-janitor {version} at http://{}",
        healthy.status,
        crate::healthcheck::target(config.listen)
    );
    Ok(())
}

/// Opens the janitor on the data dir, runs one command with it, and closes
/// the store whatever the command's outcome, so its connections end before
/// the process does.
async fn with_janitor(
    global: &GlobalConfig,
    command: impl AsyncFnOnce(&Janitor) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let app = Janitor::open(global).await.map_err(failed)?;
    let result = command(&app).await;
    app.store.close().await;
    result
}

async fn scan_command(app: &Janitor, json: bool) -> Result<(), CliError> {
    let results = scan::scan_all(&app.store, &app.scan_options().await)
        .await
        .map_err(failed)?;
    // A line per daemon on stderr, so `scan --json` stays parseable.
    for (daemon, result) in &results {
        match result {
            Ok(scan) => {
                eprintln!("scanned {}: {} images", daemon.name, scan.images);
                for note in &scan.notes {
                    eprintln!("  {}: {note}", daemon.name);
                }
            }
            Err(e) => eprintln!("could not scan {}: {e}", daemon.name),
        }
    }
    let daemons: Vec<StoredDaemon> = results.iter().map(|(d, _)| d.clone()).collect();
    let scans = app.last_scans().await.map_err(failed)?;
    let now = app.clock().now_unix();
    let mut images = report::image_objects(
        &daemons,
        &scans,
        &app.policy().await,
        &ImageFilter::default(),
        now,
    );
    report::name_owners(
        &mut images,
        &crate::nextcloud_link::owner_names(&app.store).await,
    );
    if json {
        // Straight to stdout: 100,000 image objects are some 100 MB of text.
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        serde_json::to_writer_pretty(&mut out, &images).map_err(failed)?;
        writeln!(out).and_then(|()| out.flush()).map_err(failed)?;
    } else {
        print_image_table(&images).map_err(failed)?;
    }
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(d, r)| r.as_ref().err().map(|e| format!("{}: {e}", d.name)))
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "could not scan {}",
            failures.join("; ")
        )))
    }
}

fn print_image_table(images: &[ImageObject]) -> std::io::Result<()> {
    use humansize::{format_size, DECIMAL};
    let mut out = std::io::stdout().lock();
    if images.is_empty() {
        return writeln!(out, "no images");
    }
    let rows: Vec<[String; 7]> = images
        .iter()
        .map(|i| {
            [
                i.daemon.clone(),
                i.repo_tags
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "<none>".into()),
                i.short_id().to_owned(),
                i.owner.clone().unwrap_or_else(|| "-".into()),
                format!(
                    "{}{}",
                    i.status.as_str(),
                    if i.removable { " *" } else { "" }
                ),
                format_size(i.size_bytes, DECIMAL),
                format_size(i.frees(), DECIMAL),
            ]
        })
        .collect();
    let header = ["DAEMON", "IMAGE", "ID", "OWNER", "STATUS", "SIZE", "UNIQUE"];
    let widths: Vec<usize> = (0..7)
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: [&str; 7]| -> String {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    writeln!(out, "{}", line(header))?;
    for r in &rows {
        writeln!(
            out,
            "{}",
            line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6]])
        )?;
    }
    writeln!(out, "(* removable now)")?;
    Ok(())
}

async fn clean_command(
    app: &Janitor,
    input: &jobs::CleanupRequestInput,
    dry_run: bool,
    json: bool,
) -> Result<(), CliError> {
    use humansize::{format_size, DECIMAL};
    let request =
        jobs::CleanupRequest::parse(input).map_err(|e| CliError::BadInput(e.to_string()))?;
    let cleanup_error = |e: jobs::CleanupError| match e {
        jobs::CleanupError::UnknownDaemon(_) => CliError::BadInput(e.to_string()),
        other => failed(other),
    };
    if dry_run {
        let preview = jobs::preview(app, &request, app.policy().await)
            .await
            .map_err(cleanup_error)?;
        for f in &preview.daemon_errors {
            eprintln!("daemon {} could not be scanned: {}", f.daemon, f.error);
        }
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&preview).map_err(failed)?
            );
        } else {
            print_image_table(&preview.images).map_err(failed)?;
            println!(
                "would remove {} image(s), freeing {}",
                preview.images.len(),
                format_size(preview.bytes_reclaimable, DECIMAL)
            );
        }
        return daemons_failed(&preview.daemon_errors);
    }
    let run = jobs::start_run(
        app,
        jobs::Trigger::Manual,
        "cli",
        &request,
        app.policy().await,
    )
    .await
    .map_err(cleanup_error)?;
    // The CLI works its own run only; a server on the same data dir may
    // claim its jobs too (claims are atomic), and keeps the others.
    let worker = jobs::Worker::for_run(app.clone(), run.id).spawn();
    let finished = follow_run(app, run.id, !json).await;
    // In order: the worker's tasks end before the caller closes the store.
    worker.stop().await;
    let run = finished?;
    if json {
        println!("{}", serde_json::to_string_pretty(&run).map_err(failed)?);
    } else {
        println!(
            "run {}: {} removed, {} skipped, {} failed, {} cancelled; freed {} (predicted {})",
            run.id,
            run.counts.succeeded,
            run.counts.skipped,
            run.counts.failed,
            run.counts.cancelled,
            format_size(u64::try_from(run.bytes_freed).unwrap_or(0), DECIMAL),
            format_size(u64::try_from(run.bytes_predicted).unwrap_or(0), DECIMAL),
        );
    }
    let down: Vec<&jobs::LeftOut> = run
        .left_out
        .iter()
        .filter(|l| l.image_id.is_none())
        .collect();
    for l in &down {
        eprintln!("daemon {} {}", l.daemon.as_deref().unwrap_or("?"), l.reason);
    }
    if run.counts.failed > 0 {
        Err(CliError::Failed(format!(
            "{} job(s) of run {} failed",
            run.counts.failed, run.id
        )))
    } else if !down.is_empty() {
        Err(CliError::Failed(format!(
            "{} daemon(s) could not be scanned, so nothing of theirs was removed",
            down.len()
        )))
    } else {
        Ok(())
    }
}

/// Exit 1 when a daemon could not be scanned (after printing what could be).
fn daemons_failed(failures: &[jobs::DaemonFailure]) -> Result<(), CliError> {
    if failures.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "{} daemon(s) could not be scanned",
            failures.len()
        )))
    }
}

/// Waits for a run to finish: a progress bar on a terminal, a line per
/// finished job otherwise (`show` false: silent).
async fn follow_run(app: &Janitor, run_id: i64, show: bool) -> Result<jobs::RunView, CliError> {
    use std::io::IsTerminal;
    let terminal = show && std::io::stderr().is_terminal();
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut reported = std::collections::HashSet::new();
    loop {
        let run = jobs::run_view(&app.store, run_id)
            .await
            .map_err(failed)?
            .ok_or_else(|| CliError::Failed(format!("run {run_id} disappeared")))?;
        let total = run.jobs.len() as u64;
        let done =
            (run.counts.succeeded + run.counts.skipped + run.counts.failed + run.counts.cancelled)
                as u64;
        if terminal {
            let bar = bar.get_or_insert_with(|| {
                let b = indicatif::ProgressBar::new(total);
                b.set_style(
                    indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} images {msg}")
                        .expect("a valid template"),
                );
                b
            });
            bar.set_position(done);
        } else if show {
            for job in run
                .jobs
                .iter()
                .filter(|j| !matches!(j.status.as_str(), "queued" | "running"))
            {
                if reported.insert(job.id) {
                    let what = job
                        .image_refs
                        .first()
                        .cloned()
                        .unwrap_or_else(|| job.image_id.clone());
                    let why = job
                        .error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default();
                    eprintln!("{} {} on {}{}", job.status, what, job.daemon, why);
                }
            }
        }
        if run.finished() {
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            return Ok(run);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

async fn settings_command(app: &Janitor, command: SettingsCommand) -> Result<(), CliError> {
    let view = match command {
        SettingsCommand::Show { json } => {
            let view = settings::load(&app.store).await.map_err(failed)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view).map_err(failed)?);
                return Ok(());
            }
            view
        }
        SettingsCommand::Set { assignments } => {
            let mut change = serde_json::Map::new();
            for a in &assignments {
                let (key, value) = a
                    .split_once('=')
                    .ok_or_else(|| CliError::BadInput(format!("{a:?}: expected KEY=VALUE")))?;
                // A JSON value (number, true/false, [list]) as such; anything else as text.
                let value = serde_json::from_str(value)
                    .unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
                change.insert(key.trim().to_owned(), value);
            }
            app.change_settings(&change, None)
                .await
                .map_err(|e| match e {
                    SettingsError::Invalid(fields) => {
                        let lines: Vec<String> =
                            fields.iter().map(|(f, m)| format!("{f}: {m}")).collect();
                        CliError::BadInput(lines.join("\n"))
                    }
                    other => failed(other),
                })?
        }
    };
    let time = |t: Option<i64>| t.map(crate::clock::rfc3339).unwrap_or_else(|| "-".into());
    let patterns: Vec<&str> = view.protected_patterns.iter().map(|p| p.as_str()).collect();
    println!("interval_hours      {}", view.interval_hours);
    println!("cleanup_on_update   {}", view.cleanup_on_update);
    println!("keep_previous       {}", view.keep_previous);
    println!("min_age_hours       {}", view.min_age_hours);
    println!("remove_dangling     {}", view.remove_dangling);
    println!(
        "protected_patterns  {}",
        serde_json::to_string(&patterns).map_err(failed)?
    );
    println!(
        "next_run_at         {}",
        if view.interval_hours == 0 {
            "never (interval_hours = 0)".into()
        } else {
            time(view.next_run_at)
        }
    );
    println!("last_run_at         {}", time(view.last_run_at));
    Ok(())
}

async fn admin_command(app: &Janitor, command: AdminCommand) -> Result<(), CliError> {
    match command {
        AdminCommand::ResetPassword { password_stdin } => {
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).map_err(failed)?;
                Password::parse(line.trim_end_matches(['\r', '\n']))
                    .map_err(|e| CliError::BadInput(e.to_string()))?
            } else {
                Password::generate()
            };
            auth::reset_admin_password(&app.store, &password)
                .await
                .map_err(failed)?;
            if password_stdin {
                println!("admin password changed; every browser session was logged out");
            } else {
                println!("new admin password: {}", password.expose());
            }
            if std::env::var_os("EXAPP_JANITOR_ADMIN_PASSWORD").is_some() {
                eprintln!(
                    "note: EXAPP_JANITOR_ADMIN_PASSWORD is set; a server started with it sets that password again"
                );
            }
            Ok(())
        }
    }
}

/// A HaRP shared key from its file: read here, never taken from the command
/// line (where every user of the host could read it).
fn read_key_file(path: &std::path::Path) -> Result<String, CliError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| CliError::BadInput(format!("--harp-key-file {}: {e}", path.display())))?;
    if !meta.is_file() || meta.len() > 4096 {
        return Err(CliError::BadInput(format!(
            "--harp-key-file {}: not a small regular file holding the key",
            path.display()
        )));
    }
    std::fs::read_to_string(path)
        .map_err(|e| CliError::BadInput(format!("--harp-key-file {}: {e}", path.display())))
}

async fn daemon_command(app: &Janitor, command: DaemonCommand) -> Result<(), CliError> {
    match command {
        DaemonCommand::Add {
            name,
            endpoint,
            tls_ca,
            tls_cert,
            tls_key,
            harp_key_file,
            harp_docker_port,
            exapps,
        } => {
            let harp_key = match harp_key_file {
                None => None,
                Some(path) => Some(read_key_file(&path)?),
            };
            let input = NewDaemonInput {
                name,
                endpoint,
                tls_ca,
                tls_cert,
                tls_key,
                harp_key,
                harp_docker_port,
                exapps: (!exapps.is_empty()).then_some(exapps),
            };
            let daemon = daemons::add(&app.store, &input).await?;
            let daemon = daemons::check(&app.store, daemon, app.daemon_timeout).await;
            let c = &daemon.contact;
            if c.reachable {
                println!(
                    "added {}: Docker Engine {} (API {})",
                    daemon.name,
                    c.engine_version.as_deref().unwrap_or("?"),
                    c.api_version.as_deref().unwrap_or("?")
                );
            } else {
                println!(
                    "added {}; it does not answer now: {}",
                    daemon.name,
                    c.last_error.as_deref().unwrap_or("unknown error")
                );
            }
            Ok(())
        }
        DaemonCommand::Exapps { name, add, remove } => {
            let daemon = daemons::change_exapps(&app.store, &name, &add, &remove).await?;
            let exapps = daemon.harp.map(|h| h.exapps).unwrap_or_default();
            if exapps.is_empty() {
                println!("{name}: no ExApps to look for");
            } else {
                let ids: Vec<&str> = exapps.iter().map(|a| a.as_str()).collect();
                println!("{name}: looks for {}", ids.join(", "));
            }
            Ok(())
        }
        DaemonCommand::List { json } => {
            let daemons = daemons::check_all(&app.store, app.daemon_timeout).await?;
            if json {
                let rows: Vec<DaemonSummary> = daemons.iter().map(DaemonSummary::from).collect();
                let text = serde_json::to_string_pretty(&rows).map_err(failed)?;
                println!("{text}");
            } else {
                print_daemon_table(&daemons).map_err(failed)?;
            }
            Ok(())
        }
        DaemonCommand::Remove { name } => {
            daemons::remove(&app.store, &name).await?;
            println!("removed {name}");
            Ok(())
        }
    }
}

fn print_daemon_table(daemons: &[StoredDaemon]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if daemons.is_empty() {
        writeln!(
            out,
            "no daemons configured; add one with: exapp-janitor daemon add NAME ENDPOINT"
        )?;
        return Ok(());
    }
    let rows: Vec<[String; 4]> = daemons
        .iter()
        .map(|d| {
            let c = &d.contact;
            let status = if c.reachable {
                "up".to_string()
            } else {
                format!("DOWN: {}", c.last_error.as_deref().unwrap_or("unknown"))
            };
            let engine = match (&c.engine_version, &c.api_version) {
                (Some(e), Some(a)) if c.reachable => format!("{e} (API {a})"),
                _ => "-".into(),
            };
            [
                d.name.to_string(),
                daemons::describe_endpoint(&d.endpoint),
                engine,
                status,
            ]
        })
        .collect();
    let header = ["NAME", "ENDPOINT", "ENGINE", "STATUS"];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].len())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    writeln!(
        out,
        "{:w0$}  {:w1$}  {:w2$}  {}",
        header[0], header[1], header[2], header[3]
    )?;
    for r in rows {
        writeln!(out, "{:w0$}  {:w1$}  {:w2$}  {}", r[0], r[1], r[2], r[3])?;
    }
    Ok(())
}
