//! Shell completions and man pages, generated from the command line's own
//! definition (clap_complete, clap_mangen), so they never drift from it.
use std::{fs, path::PathBuf, process::ExitCode};

use clap::{Args, CommandFactory as _};
use clap_complete::Shell;

use super::Cli;
use crate::commands::{OutputError, write_stdout};

/// Options of `syscensus completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Options of `syscensus man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write syscensus.1 and one page per command (syscensus-export.1, ...)
    /// into this directory instead of printing syscensus.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Prints the completion script of `args.shell`.
pub(super) fn completions(args: &CompletionsArgs) -> Result<ExitCode, OutputError> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut command, "syscensus", &mut out);
    write_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn render(command: clap::Command) -> Result<Vec<u8>, OutputError> {
    let mut out = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut out)
        .map_err(|source| OutputError {
            path: PathBuf::from("the man page"),
            source,
        })?;
    Ok(out)
}

/// Prints the man page, or writes every page into `args.dir`.
pub(super) fn man(args: &ManArgs) -> Result<ExitCode, OutputError> {
    let command = Cli::command();
    let Some(dir) = &args.dir else {
        write_stdout(&render(command)?)?;
        return Ok(ExitCode::SUCCESS);
    };
    let write = |name: String, bytes: Vec<u8>| {
        let path = dir.join(name);
        fs::write(&path, bytes).map_err(|source| OutputError { path, source })
    };
    fs::create_dir_all(dir).map_err(|source| OutputError {
        path: dir.clone(),
        source,
    })?;
    for sub in command.get_subcommands() {
        let name = format!("syscensus-{}", sub.get_name());
        let page = sub.clone().name(name.clone()).display_name(name.clone());
        write(format!("{name}.1"), render(page)?)?;
    }
    write("syscensus.1".to_owned(), render(command)?)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn completions_and_man_pages_know_every_command_and_option() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "syscensus", &mut out);
            let text = String::from_utf8(out).unwrap();
            for word in [
                "approve",
                "completions",
                "kubeconfig",
                "context",
                "install-only",
            ] {
                assert!(text.contains(word), "{shell}: no {word}");
            }
        }
        let page = String::from_utf8(render(Cli::command()).unwrap()).unwrap();
        assert!(page.starts_with(".ie"), "{}", &page[..40]);
        assert!(page.contains(".TH syscensus 1"), "{page}");
        let dir = tempfile::tempdir().unwrap();
        man(&ManArgs {
            dir: Some(dir.path().to_path_buf()),
        })
        .unwrap();
        let export = fs::read_to_string(dir.path().join("syscensus-export.1")).unwrap();
        assert!(export.contains("\\-\\-branch"), "{export}");
        assert!(dir.path().join("syscensus-approve.1").exists());
    }
}
