//! The optional TOML config file (`--config FILE`): the same settings as the
//! flags, for a service that would rather not carry them on its command line.
//!
//! A key is the name of the setting's environment variable without
//! `EXAPP_JANITOR_`, in lower case (`listen`, `data_dir`, `trusted_proxies`).
//! The file's values become flags appended to the command line for every
//! setting that neither a flag nor the environment set, so precedence is
//! flag > environment > file > built-in default, and a file value passes
//! through exactly the parser and limits of its flag.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Command};

const ENV_PREFIX: &str = "EXAPP_JANITOR_";
/// The flag that names the file; a file cannot name another one.
pub const CONFIG_KEY: &str = "config";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigFileError {
    #[error("cannot read the config file {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("the config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: `{key}` is not a setting (the settings are: {known})")]
    UnknownKey {
        path: PathBuf,
        key: String,
        known: String,
    },
    #[error("{path}: `{key}` must be {expected}")]
    WrongType {
        path: PathBuf,
        key: String,
        expected: &'static str,
    },
    #[error("{path}: `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// Reads and parses the file.
pub fn read(path: &Path) -> Result<toml::Table, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigFileError::Read {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    text.parse::<toml::Table>()
        .map_err(|e| ConfigFileError::Syntax {
            path: path.to_owned(),
            message: match e.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}: {}", e.message())
                }
                None => e.message().to_owned(),
            },
        })
}

/// `argv` with the file's settings added, each checked by the flag's own
/// parser. `matches` is `argv` parsed without the file: it says which
/// command runs and which settings a flag or the environment already gave.
pub fn apply(
    cmd: &Command,
    argv: &[OsString],
    matches: &ArgMatches,
    table: &toml::Table,
    path: &Path,
) -> Result<Vec<OsString>, ConfigFileError> {
    let known = settings_of(cmd);
    let active = active_settings(cmd, matches);
    let mut added = Vec::new();
    for (key, value) in table {
        if !known.iter().any(|k| k == key) {
            return Err(ConfigFileError::UnknownKey {
                path: path.to_owned(),
                key: key.clone(),
                known: known.join(", "),
            });
        }
        // Valid for another command (`listen` while running `scan`): unused.
        let Some((arg, matches)) = active.iter().find(|(arg, _)| key_of(arg) == *key) else {
            continue;
        };
        let flags = flags_for(arg, value).map_err(|expected| ConfigFileError::WrongType {
            path: path.to_owned(),
            key: key.clone(),
            expected,
        })?;
        if set_elsewhere(matches, arg) {
            continue;
        }
        cmd.clone()
            .try_get_matches_from(with_args(argv, &flags))
            .map_err(|e| ConfigFileError::Invalid {
                path: path.to_owned(),
                key: key.clone(),
                message: clap_sentence(&e),
            })?;
        added.extend(flags);
    }
    Ok(with_args(argv, &added))
}

/// Every key a file may hold, whichever command it is for.
fn settings_of(cmd: &Command) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let mut stack = vec![cmd];
    while let Some(c) = stack.pop() {
        for arg in c.get_arguments() {
            let key = key_of(arg);
            if !key.is_empty() && key != CONFIG_KEY && !keys.contains(&key) {
                keys.push(key);
            }
        }
        stack.extend(c.get_subcommands());
    }
    keys.sort();
    keys
}

/// The settings of the command being run, each with the matches it is
/// looked up in: the top level's and those of each subcommand on the way.
fn active_settings<'a>(
    cmd: &'a Command,
    matches: &'a ArgMatches,
) -> Vec<(&'a Arg, &'a ArgMatches)> {
    let mut found = Vec::new();
    let (mut cmd, mut matches) = (cmd, matches);
    loop {
        for arg in cmd.get_arguments() {
            let key = key_of(arg);
            // Global flags propagate into subcommands: take them once, at the top.
            let seen = found
                .iter()
                .any(|(a, _): &(&Arg, _)| a.get_id() == arg.get_id());
            if !key.is_empty() && key != CONFIG_KEY && !seen {
                found.push((arg, matches));
            }
        }
        let Some((name, sub_matches)) = matches.subcommand() else {
            break;
        };
        let Some(sub) = cmd.find_subcommand(name) else {
            break;
        };
        (cmd, matches) = (sub, sub_matches);
    }
    found
}

/// `EXAPP_JANITOR_DATA_DIR` → `data_dir`; "" for a flag without one.
fn key_of(arg: &Arg) -> String {
    arg.get_env()
        .and_then(|e| e.to_str())
        .and_then(|e| e.strip_prefix(ENV_PREFIX))
        .map(str::to_lowercase)
        .unwrap_or_default()
}

fn set_elsewhere(matches: &ArgMatches, arg: &Arg) -> bool {
    matches!(
        matches.value_source(arg.get_id().as_str()),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// The flags that say what `value` says: `--listen=ADDR`, `--flag` for a
/// true switch, one `--trusted-proxy=X` per entry of a list.
fn flags_for(arg: &Arg, value: &toml::Value) -> Result<Vec<OsString>, &'static str> {
    let long = arg.get_long().expect("every setting has a long flag");
    if !arg.get_action().takes_values() {
        return match value {
            toml::Value::Boolean(true) => Ok(vec![format!("--{long}").into()]),
            toml::Value::Boolean(false) => Ok(Vec::new()),
            _ => Err("true or false"),
        };
    }
    let one = |v: &toml::Value| match v {
        toml::Value::String(s) => Ok(format!("--{long}={s}").into()),
        toml::Value::Integer(n) => Ok(format!("--{long}={n}").into()),
        _ => Err(()),
    };
    if matches!(arg.get_action(), clap::ArgAction::Append) {
        match value {
            toml::Value::Array(items) => items
                .iter()
                .map(one)
                .collect::<Result<_, _>>()
                .map_err(|()| "a list of strings"),
            _ => Err("a list of strings, like [\"127.0.0.1\"]"),
        }
    } else {
        one(value)
            .map(|f| vec![f])
            .map_err(|()| "a string or a number")
    }
}

/// `argv` with `extra` before a `--` (after which everything is positional).
fn with_args(argv: &[OsString], extra: &[OsString]) -> Vec<OsString> {
    let at = argv.iter().position(|a| a == "--").unwrap_or(argv.len());
    let mut all = argv[..at].to_vec();
    all.extend_from_slice(extra);
    all.extend_from_slice(&argv[at..]);
    all
}

/// clap's first line, without its "error: ".
fn clap_sentence(e: &clap::Error) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ArgAction;

    fn command() -> Command {
        Command::new("tool")
            .arg(
                Arg::new("data_dir")
                    .long("data-dir")
                    .global(true)
                    .env("EXAPP_JANITOR_DATA_DIR")
                    .default_value("./data"),
            )
            .arg(
                Arg::new("config")
                    .long("config")
                    .global(true)
                    .env("EXAPP_JANITOR_CONFIG"),
            )
            .subcommand(
                Command::new("serve")
                    .arg(
                        Arg::new("timeout")
                            .long("timeout-secs")
                            .env("EXAPP_JANITOR_TIMEOUT_SECS")
                            .default_value("5")
                            .value_parser(clap::value_parser!(u64).range(1..=300)),
                    )
                    .arg(
                        Arg::new("public")
                            .long("public")
                            .env("EXAPP_JANITOR_PUBLIC")
                            .action(ArgAction::SetTrue),
                    )
                    .arg(
                        Arg::new("proxy")
                            .long("proxy")
                            .env("EXAPP_JANITOR_PROXIES")
                            .action(ArgAction::Append),
                    ),
            )
            .subcommand(
                Command::new("scan").arg(Arg::new("json").long("json").action(ArgAction::SetTrue)),
            )
    }

    fn run(argv: &[&str], file: &str) -> Result<Vec<String>, ConfigFileError> {
        let cmd = command();
        let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
        let matches = cmd.clone().try_get_matches_from(&argv).unwrap();
        let table: toml::Table = file.parse().unwrap();
        apply(&cmd, &argv, &matches, &table, Path::new("/etc/j.toml"))
            .map(|v| v.into_iter().map(|a| a.into_string().unwrap()).collect())
    }

    #[test]
    fn file_settings_become_flags_of_the_running_command() {
        let argv = run(
            &["tool", "serve"],
            "data_dir = \"/var/lib/j\"\ntimeout_secs = 9\npublic = true\nproxies = [\"10.0.0.0/8\", \"::1\"]",
        )
        .unwrap();
        assert_eq!(
            argv,
            [
                "tool",
                "serve",
                "--data-dir=/var/lib/j",
                "--proxy=10.0.0.0/8",
                "--proxy=::1",
                "--public",
                "--timeout-secs=9"
            ]
        );
    }

    #[test]
    fn a_flag_on_the_command_line_beats_the_file() {
        let argv = run(
            &["tool", "serve", "--timeout-secs", "7"],
            "timeout_secs = 9",
        )
        .unwrap();
        assert_eq!(argv, ["tool", "serve", "--timeout-secs", "7"]);
    }

    #[test]
    fn a_global_flag_given_after_the_subcommand_beats_the_file_too() {
        let argv = run(&["tool", "serve", "--data-dir", "/x"], "data_dir = \"/y\"").unwrap();
        assert_eq!(argv, ["tool", "serve", "--data-dir", "/x"]);
    }

    #[test]
    fn a_setting_of_another_command_is_accepted_and_unused() {
        let argv = run(&["tool", "scan"], "timeout_secs = 9").unwrap();
        assert_eq!(argv, ["tool", "scan"]);
    }

    #[test]
    fn a_false_switch_adds_nothing() {
        assert_eq!(
            run(&["tool", "serve"], "public = false").unwrap(),
            ["tool", "serve"]
        );
    }

    #[test]
    fn file_flags_go_before_a_double_dash() {
        let argv = run(&["tool", "scan", "--"], "data_dir = \"/d\"").unwrap();
        assert_eq!(argv, ["tool", "scan", "--data-dir=/d", "--"]);
    }

    #[test]
    fn an_unknown_key_is_named_with_the_known_ones() {
        let err = run(&["tool", "serve"], "listen_port = 80").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/j.toml: `listen_port` is not a setting (the settings are: data_dir, proxies, public, timeout_secs)"
        );
        assert!(matches!(
            run(&["tool", "serve"], "config = \"/x\"").unwrap_err(),
            ConfigFileError::UnknownKey { .. }
        ));
    }

    #[test]
    fn a_value_of_the_wrong_type_is_refused() {
        for (file, expected) in [
            ("timeout_secs = 1.5", "a string or a number"),
            ("public = \"yes\"", "true or false"),
            (
                "proxies = \"::1\"",
                "a list of strings, like [\"127.0.0.1\"]",
            ),
            ("proxies = [1.5]", "a list of strings"),
        ] {
            let err = run(&["tool", "serve"], file).unwrap_err();
            assert!(
                matches!(&err, ConfigFileError::WrongType { expected: e, .. } if *e == expected),
                "{file}: {err}"
            );
        }
    }

    #[test]
    fn a_value_out_of_range_gets_the_flags_own_message() {
        let err = run(&["tool", "serve"], "timeout_secs = 5000").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("/etc/j.toml: `timeout_secs`: invalid value '5000'"),
            "{text}"
        );
        assert!(text.contains("5000 is not in 1..=300"), "{text}");
    }

    #[test]
    fn a_bad_value_is_refused_even_when_a_flag_overrides_it() {
        // A file that is wrong stays wrong, whatever today's command line says.
        let err = run(&["tool", "serve", "--public"], "public = 3").unwrap_err();
        assert!(matches!(err, ConfigFileError::WrongType { .. }));
    }
}
