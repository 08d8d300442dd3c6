//! examples-ipc: parse, dispatch, map errors to exit codes.

mod bench;
mod cli;
mod demo;
mod doctor;
mod error;
mod fifo;
mod ipc;
mod mqfs;
#[expect(
    dead_code,
    reason = "clean uses ObjectRef; Addr::Key, ObjectRef::sysv_key, Kind::new and Kind::what are for the command specs"
)]
mod object;
mod output;
mod pipe;
mod posix;
mod procfs;
mod serve;
mod signal;
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "clean --save uses part of it; the modes of each mechanism next"
    )
)]
mod snapshot;
mod sys;
mod sysv;
mod target;
mod text_input;
mod tour;
mod watch;

mod clean;
mod help;
#[cfg_attr(
    not(test),
    expect(dead_code, reason = "wired into the command line next")
)]
mod hexdump;
mod limits;
mod ls;
mod manpage;
mod namespaces;

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
        Command::Bench(args) => bench::run(&args, &mut out),
        Command::Ls(args) => ls::run(&list_options(args)?, &mut out),
        Command::Clean(args) => clean::run(&clean_options(args)?, &mut out),
        Command::Limits(args) => limits::run(&limits_options(&args), &mut out),
        Command::Doctor(args) => doctor::run(&select(args.select)?, &mut out),
        Command::Watch(args) => watch::run(
            &watch::WatchOptions {
                select: select(args.select)?,
                interval: args.interval.duration(),
                count: args.count,
            },
            &mut out,
        ),
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

/// The objects `ls` and `clean --stale` look at.
fn select(args: cli::SelectArgs) -> anyhow::Result<ls::Select> {
    let mech = args.r#type.map(|t| match t {
        cli::IpcType::Msq => object::Mech::Msq,
        cli::IpcType::Shm => object::Mech::Shm,
        cli::IpcType::Sem => object::Mech::Sem,
    });
    ls::Select::resolve(ls::Selection {
        posix: args.posix,
        sysv: args.sysv,
        mech,
        owner: args.owner,
        names: args.name,
        prefix: args.prefix,
        key: args.key,
    })
}

fn list_options(args: cli::LsArgs) -> anyhow::Result<ls::ListOptions> {
    Ok(ls::ListOptions {
        list_columns: args.list_columns,
        select: select(args.select)?,
        orphaned: args.orphaned,
        columns: args.output,
        headings: !args.noheadings,
        raw: args.raw,
        bytes: args.bytes,
        all_namespaces: args.all_namespaces,
        namespace: args.namespace,
    })
}

fn clean_options(args: cli::CleanArgs) -> anyhow::Result<clean::CleanOptions> {
    Ok(clean::CleanOptions {
        select: select(args.select)?,
        dry_run: args.dry_run,
        namespace: args.namespace,
        save: args.save,
    })
}

fn limits_options(args: &cli::LimitsArgs) -> limits::LimitsOptions {
    limits::LimitsOptions {
        max_msgs: args.max_msgs,
        msg_size: args.msg_size,
        all_namespaces: args.all_namespaces,
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
