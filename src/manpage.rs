//! `completions` and `man`: both generated from the clap definition, so they
//! never drift from the real command line.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, Shell};
use crate::output::Out;

pub fn completions(shell: Shell, out: &mut Out) -> Result<ExitCode> {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "examples-ipc", out.writer());
    Ok(ExitCode::SUCCESS)
}

pub fn man(out: &mut Out) -> Result<ExitCode> {
    clap_mangen::Man::new(Cli::command())
        .render(out.writer())
        .context("cannot write the man page")?;
    Ok(ExitCode::SUCCESS)
}
