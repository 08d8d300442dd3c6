//! Message channels reached by a path: the FIFO. A server creates the
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

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, anyhow};

use crate::guide::Guide;
use crate::output::Out;
use crate::spec::{self, ChannelRole, Send, Serve};
use crate::target::FileMode;

/// One kind of message channel.
pub trait Channel: Sync {
    /// Its command word, its `mechanism` in JSON and its name for
    /// `spec::Channel`: `fifo`.
    fn name(&self) -> &'static str;

    /// What it is in messages: `FIFO`.
    fn what(&self) -> &'static str;

    /// Its modes and examples for `--help` and the man page.
    fn guide(&self) -> &'static Guide;

    /// The help of an option (by clap id) where this channel words it
    /// otherwise than the shared `ChannelArgs`.
    fn option_help(&self, id: &str) -> Option<&'static str>;

    /// Why `--message TEXT` cannot be one message of this channel, if it
    /// cannot: the client refuses it before sending anything (exit 2).
    fn refuse_message(&self, text: &str) -> Option<String>;

    /// The man page's EXIT STATUS line for a failure.
    fn failure(&self) -> &'static str;

    /// The man page's FILES: each path and what it is.
    fn files(&self) -> &'static [(&'static str, &'static str)];

    /// Where the channel is without `--path`.
    fn default_path(&self) -> PathBuf;

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
}

/// Every channel, in the order `--help` lists them.
pub static ALL: &[&dyn Channel] = &[&fifo::FIFO];

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
