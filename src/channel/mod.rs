//! Message channels reached by a path: the FIFO and the Unix datagram
//! socket. A server creates the
//! channel when it is missing and prints every message; clients send
//! messages to it; `--clean` removes it. The commands share one spec
//! ([`spec::Channel`]), one set of options (the binary's `ChannelArgs`),
//! the server loop of [`crate::serve::recv`] and the send loop of
//! [`crate::serve::send`]; a [`Channel`] brings the rest.
//!
//! A new channel is four files: its handle in `src/ipc/` (with its
//! `pub mod` line there), its `impl Channel` in a file here, its line in
//! [`ALL`] below, and its variant in the binary's `cli.rs`
//! (docs/architecture.md).

pub mod fifo;
pub mod socket;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use serde::Serialize;

use crate::error::fail_with_hint;
use crate::guide::Guide;
use crate::output::{Escaped, Out};
use crate::record::verb;
use crate::spec::{self, ChannelRole, Send, Serve};
use crate::target::FileMode;

/// What a channel says about itself: its names, and the words of its
/// help, its man page and its tour step. Plain data, so a channel's file
/// declares it once and [`Channel`] reads it.
pub struct About {
    /// Its command word, its `mechanism` in JSON and its name for
    /// `spec::Channel`: `fifo`.
    pub name: &'static str,
    /// What it is in messages: `FIFO`.
    pub what: &'static str,
    /// What it is, as a heading (`tour`'s step): `Named pipe (FIFO)`.
    pub title: &'static str,
    /// Its file without `--path`, in $XDG_RUNTIME_DIR or the temp dir.
    pub file: &'static str,
    /// Whether a message is a line: then a newline in `--message` would
    /// split it, and the client refuses it (exit 2).
    pub lines: bool,
    /// Its modes and examples for `--help` and the man page.
    pub guide: Guide,
    /// The help of options (by clap id) that this channel words otherwise
    /// than the shared `ChannelArgs`.
    pub option_help: &'static [(&'static str, &'static str)],
    /// The man page's EXIT STATUS line for a failure.
    pub failure: &'static str,
    /// The man page's FILES: each path and what it is.
    pub files: &'static [(&'static str, &'static str)],
    /// The system's man pages of the man page's SEE ALSO: `fifo(7)`.
    pub man_pages: &'static [&'static str],
}

/// One kind of message channel: what it is ([`About`]) and its three
/// commands.
pub trait Channel: Sync {
    fn about(&self) -> &'static About;

    /// `-s`: create the channel at `path` when missing (with `mode`), then
    /// print every message until `serve` says to stop.
    ///
    /// # Errors
    /// What stops the server early; the exit code of a clean end is `Ok`.
    fn serve(&self, path: &Path, mode: FileMode, serve: &Serve, out: &mut Out) -> Result<ExitCode>;

    /// The client: send the messages of `send` to the channel at `path`.
    ///
    /// # Errors
    /// No such channel, no server, or a failed send.
    fn send(&self, path: &Path, send: &Send, out: &mut Out) -> Result<ExitCode>;

    /// `--clean`: remove the channel at `path`, and nothing else.
    ///
    /// # Errors
    /// Nothing there, something else there, or the removal failed.
    fn clean(&self, path: &Path, out: &mut Out) -> Result<ExitCode>;

    /// [`About::name`].
    fn name(&self) -> &'static str {
        self.about().name
    }

    /// [`About::what`].
    fn what(&self) -> &'static str {
        self.about().what
    }

    /// [`About::title`].
    fn title(&self) -> &'static str {
        self.about().title
    }

    /// [`About::guide`].
    fn guide(&self) -> &'static Guide {
        &self.about().guide
    }

    /// The help of option `id` where this channel words it otherwise.
    fn option_help(&self, id: &str) -> Option<&'static str> {
        let words = self.about().option_help;
        words.iter().find(|(i, _)| *i == id).map(|(_, help)| *help)
    }

    /// Why `--message TEXT` cannot be one message of this channel, if it
    /// cannot: the client refuses it before sending anything (exit 2).
    fn refuse_message(&self, text: &str) -> Option<String> {
        (self.about().lines && text.contains('\n')).then(|| {
            format!(
                "a {} message is one line: --message cannot contain a newline",
                self.what()
            )
        })
    }

    /// Where the channel is without `--path`.
    fn default_path(&self) -> PathBuf {
        runtime_path(self.about().file)
    }
}

/// Every channel, in the order `--help` lists them.
pub static ALL: &[&dyn Channel] = &[&fifo::FIFO, &socket::SOCKET];

/// The channel whose command word is `name`.
pub fn find(name: &str) -> Option<&'static dyn Channel> {
    ALL.iter().copied().find(|c| c.name() == name)
}

/// Run a channel's command.
///
/// # Errors
/// The command's failure; a name that is no channel's (a spec built by
/// hand, not by the binary) is one too.
pub fn run(spec: &spec::Channel, out: &mut Out) -> Result<ExitCode> {
    let channel = find(spec.name).ok_or_else(|| anyhow!("no channel is named {}", spec.name))?;
    let path = &spec.path;
    match &spec.role {
        ChannelRole::Server { mode, serve } => channel.serve(path, *mode, serve, out),
        ChannelRole::Client(send) => channel.send(path, send, out),
        ChannelRole::Clean => channel.clean(path, out),
    }
}

/// `file` in $XDG_RUNTIME_DIR, else in the temp dir: a channel's default
/// path. $XDG_RUNTIME_DIR is the user's own (mode 0700), where nobody else
/// can plant a file for us; the shared temp dir is the fallback.
pub fn runtime_path(file: &str) -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute() && d.is_dir())
        .unwrap_or_else(std::env::temp_dir)
        .join(file)
}

/// The refusal of something at `path` that is not the channel: `/p is a
/// regular file, not a FIFO`.
pub fn not_a(channel: &dyn Channel, path: &Path, what: &str) -> anyhow::Error {
    let it = channel.what();
    fail_with_hint(
        format!("{} is {what}, not a {it}", path.display()),
        format!(
            "choose another path with --path; the tool never replaces or follows \
             anything that is not a {it}"
        ),
    )
}

/// The hint of a client that found no server.
pub fn start_server_first(channel: &dyn Channel, path: &Path) -> String {
    format!(
        "start the server first: examples-ipc {} -s --path {}",
        channel.name(),
        path.display()
    )
}

// ---- Records ----

/// `fifo /run/user/0/examples-ipc.fifo: created; waiting for lines`
#[derive(Serialize)]
pub struct Start<'a> {
    mechanism: &'static str,
    #[serde(serialize_with = "crate::record::path")]
    path: &'a Path,
    created: bool,
    /// What the server waits for, in the text line: `lines`.
    #[serde(skip)]
    waiting_for: &'static str,
    /// The channel's `what()` when the server took the path over from a
    /// stale one of its kind. Text only: in JSON a new one was `created`.
    #[serde(skip)]
    replaced: Option<&'static str>,
}

impl<'a> Start<'a> {
    pub fn new(
        channel: &dyn Channel,
        path: &'a Path,
        created: bool,
        waiting_for: &'static str,
    ) -> Self {
        Start {
            mechanism: channel.name(),
            path,
            created,
            waiting_for,
            replaced: None,
        }
    }

    /// The start of a server that removed a stale `channel` at the path
    /// and made its own: `replaced a stale socket`.
    pub fn replaced(channel: &dyn Channel, path: &'a Path, waiting_for: &'static str) -> Self {
        Start {
            replaced: Some(channel.what()),
            ..Start::new(channel, path, true, waiting_for)
        }
    }
}

impl fmt::Display for Start<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: ", self.mechanism, Escaped(self.path.display()))?;
        match self.replaced {
            Some(what) => write!(f, "replaced a stale {what}")?,
            None => f.write_str(verb(self.created))?,
        }
        write!(f, "; waiting for {}", self.waiting_for)
    }
}

crate::record_kind!(Start<'_>, "start");

/// `removed FIFO /path`
#[derive(Serialize)]
pub struct Removed<'a> {
    mechanism: &'static str,
    #[serde(serialize_with = "crate::record::path")]
    path: &'a Path,
    #[serde(skip)]
    what: &'static str,
}

impl<'a> Removed<'a> {
    pub fn new(channel: &dyn Channel, path: &'a Path) -> Self {
        Removed {
            mechanism: channel.name(),
            path,
            what: channel.what(),
        }
    }
}

impl fmt::Display for Removed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "removed {} {}", self.what, Escaped(self.path.display()))
    }
}

crate::record_kind!(Removed<'_>, "removed");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_channel_is_found_by_its_name() {
        for channel in ALL {
            assert_eq!(
                find(channel.name()).map(Channel::name),
                Some(channel.name())
            );
        }
        assert!(find("pipe").is_none());
    }
}
