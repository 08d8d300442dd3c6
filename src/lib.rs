//! examples-ipc as a library: everything but the command line's clap types.
//!
//! The binary (`main.rs` and `cli.rs`) parses the command line, resolves it
//! into the typed specs of [`spec`] and runs them here; nothing in this crate
//! can name a clap type of `cli.rs`, so no command reads its options from
//! the parser. docs/architecture.md draws the tree and the flow.

pub mod bench;
pub mod channel;
pub mod children;
pub mod clean;
pub mod debugging;
pub mod demo;
pub mod doctor;
pub mod error;
pub mod guide;
pub mod help;
pub mod hexdump;
pub mod ipc;
pub mod limits;
pub mod ls;
pub mod manpage;
pub mod mq_attrs;
pub mod mqfs;
pub mod namespaces;
pub mod object;
pub mod output;
pub mod pipe;
pub mod posix;
pub mod procfs;
pub mod record;
pub mod serve;
pub mod signal;
pub mod snapshot;
pub mod spec;
pub mod sys;
pub mod sysv;
pub mod target;
pub mod text_input;
pub mod tour;
pub mod watch;

use std::process::ExitCode;

use object::Addr;
use output::Out;
use spec::Task;

/// Run one command on one object (or pipe).
///
/// # Errors
/// The command's failure, which `error::report` turns into the `error:`
/// line and the exit code.
pub fn run(task: &Task, out: &mut Out) -> anyhow::Result<ExitCode> {
    match task {
        Task::PosixMsq(spec) => posix::msq::run(spec, out),
        Task::PosixShm(spec) => posix::shm::run(spec, out),
        Task::PosixSem(spec) => posix::sem::run(spec, out),
        Task::SysvMsq(spec) => sysv::msq::run(spec, out),
        Task::SysvShm(spec) => sysv::shm::run(spec, out),
        Task::SysvSem(spec) => sysv::sem::run(spec, out),
        Task::Clean(obj) => match &obj.addr {
            Addr::Name(name) => posix::clean(obj.kind, name, out),
            Addr::Key(_) | Addr::Id(_) => sysv::clean(obj, out),
        },
        Task::Stat(obj) => match &obj.addr {
            Addr::Name(name) => posix::stat(obj.kind, name, out),
            Addr::Key(_) | Addr::Id(_) => sysv::stat(obj, out),
        },
        Task::Channel(spec) => channel::run(spec, out),
        Task::Pipe(spec) => pipe::run(spec, out),
    }
}
