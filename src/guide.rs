//! What a command's help and man page show beyond its options: the data
//! of a [`Guide`]. `help` renders guides and lists them; a channel
//! (`channel::fifo`) keeps its own next to its code.

/// What a command's help and man page show beyond its options.
pub struct Guide {
    /// Mechanisms only: each mode's flags and what it does. No mode flag
    /// runs the client, and the client's line says so.
    pub modes: &'static [(&'static str, &'static str)],
    /// What the example shows, then its command lines.
    pub examples: &'static [(&'static str, &'static [&'static str])],
}

/// The line above a mechanism's modes.
pub const MODES_INTRO: &str = "at most one; with none, the client runs";

/// The flag column of the client, which has no flag.
pub const CLIENT: &str = "(no flag)";
