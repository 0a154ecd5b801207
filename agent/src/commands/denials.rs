//! `syscensus denials`: what the seccomp profiles containers run under
//! refused them, from an agent's state directory (`refusals/`).
use std::{fmt::Write as _, path::PathBuf, process::ExitCode};

use clap::{Args, ValueEnum};

use super::{OutputError, write_stdout};
use crate::{daemon::state::StateDir, refusal::report::ContainerRefusals};

/// `syscensus denials` failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot read {}: {source}: is --state-dir the state directory of an agent (syscensus agent --state-dir)?",
        path.display()
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a refusal report: {source}; remove it or let the agent write it again", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// How `syscensus denials` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// One block per watched container, one line per refused syscall.
    Text,
    /// The reports as a JSON array (`ContainerRefusals` documents).
    Json,
}

/// Options of `syscensus denials`.
#[derive(Debug, Args)]
pub struct DenialsArgs {
    /// The agent's state directory.
    #[arg(
        long,
        env = "SYSCENSUS_STATE_DIR",
        default_value = "/var/lib/syscensus"
    )]
    pub state_dir: PathBuf,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Prints the refusal reports of the state directory.
pub fn denials(args: DenialsArgs) -> Result<ExitCode, Error> {
    let reports = read(&args.state_dir)?;
    let text = match args.output {
        Output::Json => {
            #[expect(
                clippy::unwrap_used,
                reason = "serializing plain data to a String cannot fail"
            )]
            let mut text = serde_json::to_string_pretty(&reports).unwrap();
            text.push('\n');
            text
        }
        Output::Text => render(&reports),
    };
    write_stdout(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// Every report in `state_dir`, ordered by Pod and container.
pub fn read(state_dir: &std::path::Path) -> Result<Vec<ContainerRefusals>, Error> {
    let dir = StateDir::refusals_dir(state_dir);
    let read_err = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| Error::Read { path, source }
    };
    let mut reports = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(read_err(&dir))? {
        let path = entry.map_err(read_err(&dir))?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(read_err(&path))?;
        let report: ContainerRefusals =
            serde_json::from_str(&text).map_err(|source| Error::Parse {
                path: path.clone(),
                source,
            })?;
        reports.push(report);
    }
    reports.sort_by_cached_key(|r| (who(r), r.container_id.clone()));
    Ok(reports)
}

/// `namespace/pod container` (or the container id).
fn who(r: &ContainerRefusals) -> String {
    let pod = r.pod.as_ref();
    let pod_name = pod
        .and_then(|p| match (&p.namespace, &p.name) {
            (Some(ns), Some(name)) => Some(format!("{ns}/{name}")),
            (None, Some(name)) => Some(name.clone()),
            _ => None,
        })
        .unwrap_or_default();
    match (&r.container_name, pod_name.is_empty()) {
        (Some(name), false) => format!("{pod_name} {name}"),
        (Some(name), true) => name.clone(),
        (None, false) => format!("{pod_name} {}", short(&r.container_id)),
        (None, true) => short(&r.container_id).to_owned(),
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// The text output.
pub fn render(reports: &[ContainerRefusals]) -> String {
    let mut out = String::new();
    if reports.is_empty() {
        out.push_str("no container is watched\n");
        return out;
    }
    for r in reports {
        let state = match r.state {
            crate::recording::State::Running => "running",
            crate::recording::State::Exited => "exited",
        };
        let _ = writeln!(
            out,
            "{} ({}, {state}, profile from {} default {}): {} refused{}",
            who(r),
            short(&r.container_id),
            r.profile.source,
            r.profile.default_action,
            r.total(),
            if r.incomplete {
                " (incomplete: the kernel's map was full)"
            } else {
                ""
            },
        );
        for s in &r.syscalls {
            let how = match s.how {
                Some(crate::refusal::report::How::Log) => " logged",
                Some(crate::refusal::report::How::Signal) => " killed",
                _ => "",
            };
            let _ = writeln!(
                out,
                "  {:<20} {:>8}  first {}  last {}  by {}  {}{how}",
                s.name,
                s.count,
                s.first_seen.as_deref().unwrap_or("-"),
                s.last_seen,
                s.process.as_deref().unwrap_or("-"),
                s.arch,
            );
        }
    }
    out
}
