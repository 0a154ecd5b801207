//! `syscensus denials`: what the seccomp profiles containers run under
//! refused them, from an agent's state directory (`refusals/`), or from
//! the cluster: the RefusalReports of the LocalhostProfiles, where every
//! node's agent adds what the installed profile refused in production.
use std::{fmt::Write as _, path::PathBuf, process::ExitCode};

use clap::{Args, ValueEnum};
use kube::{Api, ResourceExt as _};
use syscensus_api::{LocalhostProfile, RefusalReport};

use super::{ClusterArgs, OutputError, block_on, write_stdout};
use crate::{
    cluster::ConnectError,
    daemon::state::StateDir,
    refusal::{
        report::ContainerRefusals,
        status::{PROFILE_REFUSALS_KIND, ProfileRefusals},
    },
};

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
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("cannot list the {what}{}: {source}", namespace.as_ref().map(|n| format!(" of namespace {n}")).unwrap_or_default())]
    Kube {
        what: &'static str,
        namespace: Option<String>,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("failed to start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
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
    /// Read the cluster instead: what the installed profiles refused in
    /// production, from the LocalhostProfiles' RefusalReports (implied by
    /// --kubeconfig and --context).
    #[arg(long)]
    pub cluster: bool,
    /// With the cluster: the namespace (default: every namespace).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub connection: ClusterArgs,
}

/// Lists the objects of kind `K` in `namespace`, else in every one.
async fn list<K>(
    client: kube::Client,
    namespace: Option<&str>,
    what: &'static str,
) -> Result<Vec<K>, Error>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    match api.list(&Default::default()).await {
        Ok(list) => Ok(list.items),
        // No such kind: a cluster whose agents only install (deploy's
        // install-only overlay) has no reports.
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Vec::new()),
        Err(source) => Err(Error::Kube {
            what,
            namespace: namespace.map(ToOwned::to_owned),
            source: Box::new(source),
        }),
    }
}

/// The LocalhostProfiles (of `namespace`, else every one) that refused
/// anything, from their RefusalReports, ordered by namespace and name. A
/// report whose LocalhostProfile is gone (it is deleted with it) is left
/// out.
async fn read_cluster(
    client: kube::Client,
    namespace: Option<&str>,
) -> Result<Vec<ProfileRefusals>, Error> {
    let reports: Vec<RefusalReport> = list(client.clone(), namespace, "RefusalReports").await?;
    if reports.is_empty() {
        return Ok(Vec::new());
    }
    let profiles: Vec<LocalhostProfile> = list(client, namespace, "LocalhostProfiles").await?;
    let profiles: std::collections::BTreeMap<(String, String), LocalhostProfile> = profiles
        .into_iter()
        .map(|p| ((p.namespace().unwrap_or_default(), p.name_any()), p))
        .collect();
    let mut out: Vec<ProfileRefusals> = reports
        .into_iter()
        .filter_map(|r| {
            if r.spec.refused.is_empty() && r.spec.refused_not_listed == 0 {
                return None;
            }
            let key = (r.namespace().unwrap_or_default(), r.name_any());
            let p = profiles.get(&key)?;
            Some(ProfileRefusals {
                api_version: crate::refusal::report::API_VERSION.to_owned(),
                kind: PROFILE_REFUSALS_KIND.to_owned(),
                namespace: key.0,
                name: key.1,
                localhost_profile: p.spec.localhost_profile.clone(),
                workload: p.spec.workload.clone(),
                container: p.spec.container.clone(),
                refused: r.spec.refused,
                refused_not_listed: r.spec.refused_not_listed,
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(out)
}

/// The text output of the cluster's refusals.
pub fn render_cluster(profiles: &[ProfileRefusals]) -> String {
    let mut out = String::new();
    if profiles.is_empty() {
        out.push_str("no installed profile refused anything\n");
        return out;
    }
    for p in profiles {
        let total: i64 = p.refused.iter().map(|r| r.count).sum();
        let _ = writeln!(
            out,
            "{}/{} ({} {}/{} container {}): {total} refused{}",
            p.namespace,
            p.name,
            p.localhost_profile,
            p.workload.kind.as_str(),
            p.workload.name,
            p.container,
            if p.refused_not_listed > 0 {
                format!(" ({} more syscalls not listed)", p.refused_not_listed)
            } else {
                String::new()
            }
        );
        for r in &p.refused {
            let by: Vec<String> = r
                .reported_by
                .iter()
                .map(|b| format!("{}/{} {}", b.node, b.pod, b.container))
                .collect();
            let _ = writeln!(
                out,
                "  {:<20} {:>8}  first {}  last {}  {}  {}  on {}",
                r.syscall,
                r.count,
                r.first_seen.0,
                r.last_seen.0,
                r.how.as_deref().unwrap_or("-"),
                r.architecture,
                by.join(", "),
            );
        }
    }
    out
}

/// Prints the refusal reports of the state directory, or of the cluster.
pub fn denials(args: DenialsArgs) -> Result<ExitCode, Error> {
    let cluster =
        args.cluster || args.connection.kubeconfig.is_some() || args.connection.context.is_some();
    if cluster {
        let connection = args.connection.connection();
        let profiles = block_on(async {
            let client = connection.client().await?;
            read_cluster(client, args.namespace.as_deref()).await
        })
        .map_err(Error::Runtime)??;
        let text = match args.output {
            Output::Json => {
                #[expect(
                    clippy::unwrap_used,
                    reason = "serializing plain data to a String cannot fail"
                )]
                let mut text = serde_json::to_string_pretty(&profiles).unwrap();
                text.push('\n');
                text
            }
            Output::Text => render_cluster(&profiles),
        };
        write_stdout(text.as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
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
            crate::container_recording::State::Running => "running",
            crate::container_recording::State::Exited => "exited",
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
