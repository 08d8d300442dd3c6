//! `completions` and `man`: both generated from the clap definition, so they
//! never drift from the real command line.

use std::io::Write as _;
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
    // Into memory first: clap_complete panics when its writer fails, and a
    // full disk or a closed pipe is a failed write, reported like any other.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "examples-ipc", &mut script);
    out.writer().write_all(&script)?;
    Ok(ExitCode::SUCCESS)
}

pub fn man(out: &mut Out) -> Result<ExitCode> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .context("cannot render the man page")?;
    out.writer().write_all(&page)?;
    Ok(ExitCode::SUCCESS)
}
