//! examples-ipc: parse, dispatch, map errors to exit codes.

mod bench;
mod cli;
mod demo;
mod error;
mod fifo;
mod ipc;
mod output;
mod pipe;
mod posix;
mod procfs;
mod serve;
mod signal;
mod sys;
mod sysv;
mod target;
mod text_input;
mod tour;

mod clean;
mod limits;
mod ls;
mod manpage;

use std::process::ExitCode;

use cli::{Cli, Command};
use output::Out;

fn main() -> ExitCode {
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap's own format; --help and --version exit 0, usage errors 2.
            let _ = err.print();
            return ExitCode::from(err.exit_code().clamp(0, 255) as u8);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(err) => error::report(&err),
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut out = Out::new(cli.json);
    let code = match cli.command {
        Command::Posix(cmd) => posix::run(cmd, &mut out),
        Command::Sysv(cmd) => sysv::run(cmd, &mut out),
        Command::Tour(args) => tour::run(&args, &mut out),
        Command::Bench(args) => bench::run(&args, &mut out),
        Command::Ls(args) => ls::run(&args, &mut out),
        Command::Clean(args) => clean::run(&args, &mut out),
        Command::Limits(args) => limits::run(&args, &mut out),
        Command::Completions(args) => manpage::completions(args.shell, &mut out),
        Command::Man => manpage::man(&mut out),
        Command::Demo(cmd) => demo::run(cmd, &mut out),
        Command::Fifo(args) => fifo::run(&args, &mut out),
        Command::Pipe(args) => pipe::run(&args, &mut out),
    };
    // Flush what was printed before the error, so stdout and stderr agree.
    let flushed = out.flush();
    let code = code?;
    flushed?;
    Ok(code)
}
