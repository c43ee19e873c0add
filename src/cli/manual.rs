//! `singularity completions` and `singularity man`: shell completions and manual pages,
//! generated from the same clap definitions that parse the commands, so they never drift.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use color_eyre::eyre::{Result, WrapErr};

use super::Cli;

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write a page for every command (singularity.1, singularity-server.1, ...) into this
    /// directory instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Prints the completion script for `args.shell`. Generated whole first: the generator
/// gives up on a closed pipe by panicking.
pub fn completions(args: &CompletionsArgs) -> Result<()> {
    let mut script = Vec::new();
    write_completions(args.shell, &mut script)?;
    super::output::write_all(&script);
    Ok(())
}

fn write_completions(shell: Shell, out: &mut dyn Write) -> Result<()> {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut Cli::command(), "singularity", out);
    Ok(())
}

/// Prints the main manual page, or writes one per command into `args.dir`.
pub fn man(args: &ManArgs) -> Result<()> {
    match &args.dir {
        Some(dir) => write_pages(dir).map(|written| {
            super::output::outln!("wrote {written} pages into {}", dir.display());
        }),
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .wrap_err("cannot render the manual page")?;
            super::output::write_all(&page);
            Ok(())
        }
    }
}

/// Writes a page for the program and each of its commands; returns how many.
fn write_pages(dir: &Path) -> Result<usize> {
    std::fs::create_dir_all(dir)
        .wrap_err_with(|| format!("cannot create {} for the manual pages", dir.display()))?;
    let mut command = Cli::command();
    command.build();
    let mut written = 0;
    let mut pending = vec![(String::from("singularity"), command)];
    while let Some((name, command)) = pending.pop() {
        let path = dir.join(format!("{name}.1"));
        let mut page = Vec::new();
        clap_mangen::Man::new(command.clone().name(name.clone()))
            .render(&mut page)
            .wrap_err("cannot render a manual page")?;
        std::fs::write(&path, page).wrap_err_with(|| format!("cannot write {}", path.display()))?;
        written += 1;
        for sub in command.get_subcommands() {
            if sub.get_name() != "help" {
                pending.push((format!("{name}-{}", sub.get_name()), sub.clone()));
            }
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(shell: Shell) -> String {
        let mut out = Vec::new();
        write_completions(shell, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn completions_know_the_commands_and_their_flags() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = script(shell);
            // Fish names long flags without their dashes.
            for word in ["server", "console", "simulate", "database-url", "services"] {
                assert!(script.contains(word), "{shell:?} completions lack {word}");
            }
        }
    }

    #[test]
    fn a_page_is_written_for_every_command() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_pages(dir.path()).unwrap();
        let server = std::fs::read_to_string(dir.path().join("singularity-server.1")).unwrap();
        assert!(server.starts_with(".ie") || server.contains(".TH singularity-server"));
        assert!(server.contains("database\\-url"), "{server}");
        assert!(dir.path().join("singularity-client-faults.1").exists());
        assert!(written > 10);
    }
}
