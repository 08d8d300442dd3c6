//! examples-ipc: parse, dispatch, map errors to exit codes.

mod bench;
mod cli;
mod demo;
mod error;
mod fifo;
mod ipc;
#[expect(
    dead_code,
    reason = "ObjectRef and Addr are for the resolved specs, which come next"
)]
mod object;
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
mod help;
mod limits;
mod ls;
mod manpage;

use std::ffi::OsString;
use std::io::Write as _;
use std::process::ExitCode;

use cli::{Cli, Command};
use output::Out;

fn main() -> ExitCode {
    // Before anything is printed: a Tab in the shell runs this binary to
    // complete, and only the candidates may reach stdout.
    manpage::complete_if_asked();
    let args: Vec<OsString> = std::env::args_os().collect();
    if let [_, flag] = args.as_slice()
        && (flag == "--version" || flag == "-V")
    {
        // clap's answer without clap: building its tree was the largest part
        // of what `--version` cost beyond a hello-world (docs/bench.md,
        // Startup). A failed write is reported as for every other command.
        let mut out = Out::new(false);
        let written = out.writer().write_all(VERSION.as_bytes());
        return match written.and_then(|()| out.flush()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => error::report(&e.into()),
        };
    }
    let cli = match cli::parse(&args) {
        Ok(cli) => cli,
        Err(err) => {
            // clap's own format; --help and --version exit 0, usage errors 2.
            let err = error::with_tip(err, &args);
            let _ = err.print();
            return ExitCode::from(err.exit_code().clamp(0, 255) as u8);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(err) => error::report(&err),
    }
}

/// What clap prints for `examples-ipc --version` (a test holds them equal).
const VERSION: &str = concat!("examples-ipc ", env!("CARGO_PKG_VERSION"), "\n");

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if cli.json {
        // A shell script and a roff page have no JSON form: refused, not ignored.
        let what = match cli.command {
            Command::Completions(_) => Some("completions prints a shell script"),
            Command::Man(_) => Some("man prints roff"),
            _ => None,
        };
        if let Some(what) = what {
            return Err(error::usage(format!("--json does not apply: {what}")));
        }
    }
    let mut out = Out::new(cli.json);
    let code = match cli.command {
        Command::Posix(cmd) => posix::run(cmd, &mut out),
        Command::Sysv(cmd) => sysv::run(cmd, &mut out),
        Command::Tour(args) => tour::run(&args, &mut out),
        Command::Bench(args) => bench::run(&bench_config(&args), &mut out),
        Command::Ls(args) => ls::run(&args, &mut out),
        Command::Clean(args) => clean::run(&args, &mut out),
        Command::Limits(args) => limits::run(&args, &mut out),
        Command::Completions(args) => manpage::completions(args.shell, &mut out),
        Command::Man(args) => manpage::man(&args, &mut out),
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

/// `bench`'s options as the bench module takes them.
fn bench_config(args: &cli::BenchArgs) -> bench::Config {
    use cli::{BenchMech as M, BenchPattern, BenchPin};
    let mech = |m: &M| match m {
        M::Pipe => bench::Mech::Pipe,
        M::Vmsplice => bench::Mech::Vmsplice,
        M::Fifo => bench::Mech::Fifo,
        M::Unix => bench::Mech::Unix,
        M::UnixDgram => bench::Mech::UnixDgram,
        M::Tcp => bench::Mech::Tcp,
        M::PosixMsq => bench::Mech::PosixMsq,
        M::SysvMsq => bench::Mech::SysvMsq,
        M::ShmSpin => bench::Mech::ShmSpin,
        M::ShmFutex => bench::Mech::ShmFutex,
        M::ShmSem => bench::Mech::ShmSem,
        M::Eventfd => bench::Mech::Eventfd,
    };
    let pin = |p: &BenchPin| match p {
        BenchPin::None => bench::Pin::None,
        BenchPin::Same => bench::Pin::Same,
        BenchPin::Split => bench::Pin::Split,
    };
    bench::Config {
        mechs: args.mech.iter().map(mech).collect(),
        sizes: args.size.iter().map(|&s| s as usize).collect(),
        count: args.count,
        duration: args.duration.map(|d| d.duration()),
        warmup: args.warmup,
        pins: if args.pin.is_empty() {
            vec![bench::Pin::None]
        } else {
            args.pin.iter().map(pin).collect()
        },
        floor: args.floor,
        no_floor: args.no_floor,
        pattern: match args.pattern {
            BenchPattern::Pingpong => bench::Pattern::Pingpong,
            BenchPattern::Stream => bench::Pattern::Stream,
        },
        svg: args.svg.clone(),
        corrupt_after: args.corrupt_after,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn version_is_what_clap_prints() {
        let cmd = super::Cli::command();
        assert_eq!(super::VERSION, cmd.render_version());
        assert_eq!(super::VERSION, cmd.render_long_version());
    }
}
