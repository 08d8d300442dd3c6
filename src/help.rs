//! The words of `--help` and the man pages that clap cannot derive from the
//! types: each command's modes and examples, and the help of shared options
//! whose meaning depends on the command they are in.
//!
//! One source for both: `--help` shows a [`Guide`] after the options, the
//! man page turns the same guide into MODES and EXAMPLES sections, and a
//! test parses every example, so none can name a flag that does not exist.

use clap::Arg;
use clap::builder::StyledStr;

use crate::channel::{self, Channel};

pub use crate::guide::{CLIENT, Guide, MODES_INTRO};

/// The guide of the command at `path` (`""` for the top, `"posix msq"`).
pub fn guide(path: &str) -> Option<&'static Guide> {
    GUIDES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, g)| g)
        .or_else(|| channel::find(path).map(Channel::guide))
}

/// Every guide with its command path.
pub fn guides() -> impl Iterator<Item = (&'static str, &'static Guide)> {
    let channels = channel::ALL.iter().map(|c| (c.name(), c.guide()));
    GUIDES.iter().map(|(p, g)| (*p, g)).chain(channels)
}

/// `after_help` of the command at `path`: its modes, then its examples,
/// under headings styled as clap styles "Options:".
///
/// Built with `push_str`, not `format!`: the help of posix, sysv, demo and
/// the counter demos is built on every run, `--version` included (see the
/// comment on `Command` in the binary's cli.rs).
pub fn after_help(path: &str) -> StyledStr {
    let Some(guide) = guide(path) else {
        return StyledStr::new();
    };
    let mut s = String::with_capacity(1024);
    if !guide.modes.is_empty() {
        s.push_str(HEADER_ON);
        s.push_str("Modes (");
        s.push_str(MODES_INTRO);
        s.push_str("):");
        s.push_str(HEADER_OFF);
        s.push('\n');
        let width = guide.modes.iter().map(|(f, _)| f.len()).max().unwrap_or(0);
        for (flags, what) in guide.modes {
            // Wrapped here with a hanging indent, as clap wraps options: clap
            // wraps after_help only at the terminal's edge, without indent.
            for (i, line) in wrap(what, HELP_WIDTH - 4 - width).iter().enumerate() {
                let flags = if i == 0 { flags } else { "" };
                s.push_str("  ");
                s.push_str(flags);
                s.extend(std::iter::repeat_n(' ', width - flags.len() + 2));
                s.push_str(line);
                s.push('\n');
            }
        }
        s.push('\n');
    }
    s.push_str(HEADER_ON);
    s.push_str("Examples:");
    s.push_str(HEADER_OFF);
    s.push('\n');
    for (i, (what, commands)) in guide.examples.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        s.push_str("  ");
        s.push_str(what);
        s.push('\n');
        for command in *commands {
            s.push_str("    ");
            s.push_str(command);
            s.push('\n');
        }
    }
    StyledStr::from(s)
}

/// clap's default header style, bold and underlined, as the escape codes
/// anstyle writes for it (a test checks they agree); clap strips them when
/// stdout is not a terminal.
const HEADER_ON: &str = "\x1b[1m\x1b[4m";
const HEADER_OFF: &str = "\x1b[0m";

/// The width the modes are wrapped to: a classic terminal's.
const HELP_WIDTH: usize = 80;

/// `text` in lines of at most `width` characters, broken between words.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines
}

// ---- Help of shared options, per command ----
//
// `ServeArgs` (`--count`, `--timeout`) and `ModeArgs` (`--server`,
// `--clean`, `--stat`) are flattened into every mechanism, but what they do
// differs: a message client sends N messages, a shm server prints N times.
// Each mechanism sets their help with `mut_args(help::msq_options)` and so
// on, so `--help` describes this command only.

fn set(arg: Arg, help: &'static str) -> Arg {
    arg.help(help).long_help(None)
}

/// `posix msq`, `sysv msq`.
pub fn msq_options(arg: Arg) -> Arg {
    match arg.get_id().as_str() {
        "server" => set(
            arg,
            "Create the queue if missing, then print each message it receives",
        ),
        "clean" => set(arg, "Remove the queue"),
        "stat" => set(arg, "Print the queue's attributes and exit"),
        "count" => set(
            arg,
            "Server: exit 0 after N messages. Client: send N messages (default 10)",
        ),
        "timeout" => set(
            arg,
            "Server: exit 1 when no message comes for SECS seconds (fractions allowed)",
        ),
        "save" => set(
            arg,
            "Take every message into FILE without waiting (JSON Lines), written and \
             fsynced before success; on failure they go back in order; Ctrl-C keeps \
             those taken so far in FILE (exit 1)",
        ),
        "restore" => set(
            arg,
            "Send FILE's messages in order, with their priorities or types, to the \
             file's queue unless -n or -k names another; a missing queue is created \
             with the saved attributes",
        ),
        _ => arg,
    }
}

/// `posix shm`, `sysv shm`.
pub fn shm_options(arg: Arg) -> Arg {
    match arg.get_id().as_str() {
        "server" => set(
            arg,
            "Create the segment if missing, then print its text every --interval",
        ),
        "clean" => set(arg, "Remove the segment"),
        "stat" => set(arg, "Print the segment's attributes and exit"),
        "count" => shm_count(arg),
        "timeout" => shm_timeout(arg),
        "save" => set(
            arg,
            "Copy the segment's bytes into FILE (JSON Lines), written and fsynced \
             before success; the segment is not changed",
        ),
        "restore" => set(
            arg,
            "Write FILE's bytes into the file's segment unless -n or -k names another; \
             a missing one is created with the saved size and mode",
        ),
        _ => arg,
    }
}

fn shm_count(arg: Arg) -> Arg {
    set(
        arg,
        "Server: exit 0 after N prints of the text (the first, at start, counts)",
    )
}

fn shm_timeout(arg: Arg) -> Arg {
    set(
        arg,
        "Server: exit 1 when nothing is printed for SECS seconds, as when the text \
         does not change with --on-change (fractions allowed)",
    )
}

/// `posix sem`, `sysv sem`.
pub fn sem_options(arg: Arg) -> Arg {
    match arg.get_id().as_str() {
        "server" => set(
            arg,
            "Create the semaphore if missing, then print its value when it changes",
        ),
        "clean" => set(arg, "Remove the semaphore"),
        "stat" => set(arg, "Print the semaphore's attributes and exit"),
        "count" => set(
            arg,
            "Server: exit 0 after N prints of the value (the first, at start, counts)",
        ),
        "timeout" => set(
            arg,
            "Server: exit 1 when the value does not change for SECS seconds. \
             Client with --wait: give up after SECS (fractions allowed)",
        ),
        _ => arg,
    }
}

/// A channel's command (`fifo`): the words the channel gives its options.
pub fn channel_options(channel: &dyn Channel, arg: Arg) -> Arg {
    match channel.option_help(arg.get_id().as_str()) {
        Some(help) => set(arg, help),
        None => arg,
    }
}

/// `demo memfd`: the shm exchange without a name in /dev/shm.
pub fn memfd_options(arg: Arg) -> Arg {
    match arg.get_id().as_str() {
        "count" => shm_count(arg),
        "timeout" => shm_timeout(arg),
        _ => arg,
    }
}

// ---- Guides ----

const MSQ_POSIX_MODES: &[(&str, &str)] = &[
    (
        "-s, --server",
        "Create the queue if missing; print each message it receives",
    ),
    (
        CLIENT,
        "Client: create the queue if missing; send -c N messages (default 10 \
         {\"count\":i}, or -m TEXT), one every --interval",
    ),
    ("--clean", "Remove the queue (mq_unlink)"),
    ("--stat", "Print maxmsg, msgsize, curmsgs, owner and perms"),
    (
        "--save FILE",
        "Take every message into FILE (a POSIX queue cannot be read without taking)",
    ),
    (
        "--restore FILE",
        "Send FILE's messages, creating the queue when missing; with --partial, \
         those of a file a killed save cut short",
    ),
];

const MSQ_SYSV_MODES: &[(&str, &str)] = &[
    (
        "-s, --server",
        "Create the queue if missing; print each message with its type \
         (--type selects, as msgrcv does)",
    ),
    (
        CLIENT,
        "Client: create the queue if missing; send -c N messages of --type T \
         (default 1), one every --interval",
    ),
    ("--clean", "Remove the queue (IPC_RMID), by -k KEY or -i ID"),
    (
        "--stat",
        "Print what ipcs -q -i shows: qnum, qbytes, lspid, lrpid, times",
    ),
    (
        "--peek",
        "Print every message and take none (MSG_COPY); --type selects",
    ),
    (
        "--save FILE",
        "Take every message into FILE; with --keep, copy them (MSG_COPY)",
    ),
    (
        "--restore FILE",
        "Send FILE's messages, creating the queue when missing; with --partial, \
         those of a file a killed save cut short",
    ),
];

const SHM_SERVER: (&str, &str) = (
    "-s, --server",
    "Create the segment if missing; print its text every --interval \
     (with --on-change, only when it changed; --diff adds the changed bytes)",
);

const SHM_CLIENT: (&str, &str) = (
    CLIENT,
    "Client: create the segment if missing; write -m TEXT, or one line read \
     from standard input",
);

const SHM_DEBUG: [(&str, &str); 3] = [
    (
        "--dump",
        "Print the bytes as xxd does; --offset N and --length N select",
    ),
    ("--save FILE", "Copy the bytes into FILE"),
    (
        "--restore FILE",
        "Write FILE's bytes, creating the segment when missing",
    ),
];

const SHM_POSIX_MODES: &[(&str, &str)] = &[
    SHM_SERVER,
    SHM_CLIENT,
    ("--clean", "Remove the segment (shm_unlink)"),
    ("--stat", "Print size, owner and perms"),
    SHM_DEBUG[0],
    SHM_DEBUG[1],
    SHM_DEBUG[2],
];

const SHM_SYSV_MODES: &[(&str, &str)] = &[
    SHM_SERVER,
    SHM_CLIENT,
    (
        "--clean",
        "Remove the segment (IPC_RMID), by -k KEY or -i ID",
    ),
    (
        "--stat",
        "Print what ipcs -m -i shows: size, nattch, cpid, lpid, times",
    ),
    SHM_DEBUG[0],
    SHM_DEBUG[1],
    SHM_DEBUG[2],
];

const SEM_SERVER: (&str, &str) = (
    "-s, --server",
    "Create the semaphore if missing (--value N); print its value when it changes",
);

const SEM_CLIENT: (&str, &str) = (
    CLIENT,
    "Client: take one unit without waiting (exit 1 when it is 0); -r gives one \
     back, --wait waits for one",
);

const SEM_POSIX_MODES: &[(&str, &str)] = &[
    SEM_SERVER,
    SEM_CLIENT,
    ("--clean", "Remove the semaphore (sem_unlink)"),
    ("--stat", "Print value, owner and perms"),
];

const SEM_SYSV_MODES: &[(&str, &str)] = &[
    SEM_SERVER,
    SEM_CLIENT,
    ("--clean", "Remove the set (IPC_RMID), by -k KEY or -i ID"),
    (
        "--stat",
        "Print what ipcs -s -i shows: each semaphore's value, ncount, zcount, pid",
    ),
];

const GUIDES: &[(&str, Guide)] = &[
    (
        "",
        Guide {
            modes: &[],
            examples: &[
                (
                    "See every mechanism work end to end, in one terminal:",
                    &["examples-ipc tour"],
                ),
                (
                    "Serve a POSIX message queue in one terminal, send to it from another:",
                    &[
                        "examples-ipc posix msq -s",
                        "examples-ipc posix msq -m hello",
                    ],
                ),
                (
                    "List every IPC object on this machine, with who uses it:",
                    &["examples-ipc ls"],
                ),
            ],
        },
    ),
    (
        "posix",
        Guide {
            modes: &[],
            examples: &[
                (
                    "A message queue: serve /test, then send to it from another terminal:",
                    &[
                        "examples-ipc posix msq -s",
                        "examples-ipc posix msq -m hello",
                    ],
                ),
                (
                    "Shared memory: write a text that a server prints:",
                    &["examples-ipc posix shm -m hello"],
                ),
                (
                    "A semaphore with one unit:",
                    &["examples-ipc posix sem -s --value 1"],
                ),
            ],
        },
    ),
    (
        "posix msq",
        Guide {
            modes: MSQ_POSIX_MODES,
            examples: &[
                (
                    "Terminal 1: create /test and print each message as it arrives:",
                    &["examples-ipc posix msq -s"],
                ),
                (
                    "Terminal 2: send \"hello\" three times, at priority 5:",
                    &["examples-ipc posix msq -m hello -c 3 -p 5"],
                ),
                (
                    "Before removing a queue, keep its messages; put them back later:",
                    &[
                        "examples-ipc posix msq --save test.jsonl",
                        "examples-ipc posix msq --restore test.jsonl",
                    ],
                ),
            ],
        },
    ),
    (
        "posix shm",
        Guide {
            modes: SHM_POSIX_MODES,
            examples: &[
                (
                    "Terminal 1: create /test and print its text whenever it changes:",
                    &["examples-ipc posix shm -s --on-change --interval 0.5"],
                ),
                (
                    "Terminal 2: write a text into the segment:",
                    &["examples-ipc posix shm -m hello"],
                ),
                (
                    "The first 64 bytes, as xxd prints them:",
                    &["examples-ipc posix shm --dump --length 64"],
                ),
            ],
        },
    ),
    (
        "posix sem",
        Guide {
            modes: SEM_POSIX_MODES,
            examples: &[
                (
                    "Terminal 1: create /test with one unit and watch its value:",
                    &["examples-ipc posix sem -s --value 1"],
                ),
                (
                    "Terminal 2: take the unit, then give it back:",
                    &["examples-ipc posix sem", "examples-ipc posix sem -r"],
                ),
                (
                    "Wait up to 5 seconds for a unit:",
                    &["examples-ipc posix sem --wait --timeout 5"],
                ),
            ],
        },
    ),
    (
        "sysv",
        Guide {
            modes: &[],
            examples: &[
                (
                    "A message queue with key 200: serve it, then send from another terminal:",
                    &["examples-ipc sysv msq -s", "examples-ipc sysv msq -m hello"],
                ),
                (
                    "Shared memory at a key as ipcs prints it:",
                    &["examples-ipc sysv shm -k 0x000000c8 -m hello"],
                ),
                (
                    "Remove a semaphore set by the id ipcs shows:",
                    &["examples-ipc sysv sem --clean -i 32769"],
                ),
            ],
        },
    ),
    (
        "sysv msq",
        Guide {
            modes: MSQ_SYSV_MODES,
            examples: &[
                (
                    "Terminal 1: create the queue with key 200 and print each message:",
                    &["examples-ipc sysv msq -s"],
                ),
                (
                    "Terminal 2: send one message of type 7:",
                    &["examples-ipc sysv msq -m hello --type 7 -c 1"],
                ),
                (
                    "See what is queued, taking nothing; then a copy into a file:",
                    &[
                        "examples-ipc sysv msq --peek",
                        "examples-ipc sysv msq --save queue.jsonl --keep",
                    ],
                ),
            ],
        },
    ),
    (
        "sysv shm",
        Guide {
            modes: SHM_SYSV_MODES,
            examples: &[
                (
                    "Terminal 1: create the segment with key 200, print its text when it changes:",
                    &["examples-ipc sysv shm -s --on-change"],
                ),
                (
                    "Terminal 2: write a text into it:",
                    &["examples-ipc sysv shm -m hello"],
                ),
                (
                    "Keep the bytes in a file before removing the segment:",
                    &[
                        "examples-ipc sysv shm --save segment.jsonl",
                        "examples-ipc sysv shm --clean",
                    ],
                ),
            ],
        },
    ),
    (
        "sysv sem",
        Guide {
            modes: SEM_SYSV_MODES,
            examples: &[
                (
                    "Terminal 1: create the set with key 200, one unit, and watch it:",
                    &["examples-ipc sysv sem -s --value 1"],
                ),
                (
                    "Terminal 2: take the unit with SEM_UNDO: the kernel gives it back at exit:",
                    &["examples-ipc sysv sem --undo"],
                ),
                ("Give a unit back by hand:", &["examples-ipc sysv sem -r"]),
            ],
        },
    ),
    (
        "tour",
        Guide {
            modes: &[],
            examples: &[
                (
                    "Every mechanism, one after another:",
                    &["examples-ipc tour"],
                ),
                (
                    "Only some of them:",
                    &["examples-ipc tour --only posix-msq,fifo"],
                ),
                (
                    "The same as JSON lines, for a script:",
                    &["examples-ipc --json tour"],
                ),
            ],
        },
    ),
    (
        "bench",
        Guide {
            modes: &[],
            examples: &[
                ("Every mechanism, 0.3 s each:", &["examples-ipc bench"]),
                (
                    "The size curve, latency and throughput against size as a chart:",
                    &["examples-ipc bench --size 64,4096,65536,1048576 --svg curve.svg"],
                ),
                (
                    "Two mechanisms next to the hardware floor, on one core and across two:",
                    &["examples-ipc bench --mech shm-spin,posix-msq --pin same,split"],
                ),
            ],
        },
    ),
    (
        "ls",
        Guide {
            modes: &[],
            examples: &[
                ("Every object:", &["examples-ipc ls"]),
                (
                    "POSIX shared memory only, three columns, unaligned for a script:",
                    &["examples-ipc ls --posix -t shm -o name,size,users --raw --noheadings"],
                ),
                (
                    "What `clean --stale` would remove, as one JSON document:",
                    &["examples-ipc --json ls --orphaned"],
                ),
            ],
        },
    ),
    (
        "clean",
        Guide {
            modes: &[],
            examples: &[
                (
                    "List the orphaned objects, remove nothing:",
                    &["examples-ipc clean --stale --dry-run"],
                ),
                (
                    "Remove the orphaned POSIX objects whose name starts with /test:",
                    &["examples-ipc clean --stale --prefix /test"],
                ),
                (
                    "Remove one orphaned System V object by key:",
                    &["examples-ipc clean --stale -k 0x000000c8"],
                ),
            ],
        },
    ),
    (
        "limits",
        Guide {
            modes: &[],
            examples: &[
                (
                    "Every limit, with what is in use:",
                    &["examples-ipc limits"],
                ),
                (
                    "Could this process create a queue of 100 messages of 64 KiB?",
                    &["examples-ipc limits --max-msgs 100 --msg-size 65536"],
                ),
            ],
        },
    ),
    (
        "doctor",
        Guide {
            modes: &[],
            examples: &[
                (
                    "What is wrong here, with the command that fixes each finding:",
                    &["examples-ipc doctor"],
                ),
                (
                    "For a script: exit 0 when healthy, 1 with findings",
                    &["examples-ipc --json doctor"],
                ),
                (
                    "Every container's IPC namespace, each with its own /dev/shm and limits (as root):",
                    &["examples-ipc doctor -A"],
                ),
            ],
        },
    ),
    (
        "watch",
        Guide {
            modes: &[],
            examples: &[
                (
                    "Every object, redrawn each second until Ctrl-C:",
                    &["examples-ipc watch"],
                ),
                (
                    "One queue, ten samples half a second apart, as JSON lines:",
                    &["examples-ipc --json watch -t msq --name /jobs --interval 0.5 --count 10"],
                ),
            ],
        },
    ),
    (
        "completions",
        Guide {
            modes: &[],
            examples: &[
                (
                    "bash: add to ~/.bashrc",
                    &["source <(examples-ipc completions bash)"],
                ),
                (
                    "zsh: add to ~/.zshrc, after compinit",
                    &["source <(examples-ipc completions zsh)"],
                ),
                (
                    "fish: write it where fish finds it",
                    &[
                        "examples-ipc completions fish > ~/.config/fish/completions/examples-ipc.fish",
                    ],
                ),
            ],
        },
    ),
    (
        "man",
        Guide {
            modes: &[],
            examples: &[
                (
                    "Install every page for this user (man finds ~/.local/share/man):",
                    &["examples-ipc man --dir ~/.local/share/man/man1"],
                ),
                (
                    "Read the top page without installing it:",
                    &["examples-ipc man | man -l -"],
                ),
            ],
        },
    ),
    (
        "pipe",
        Guide {
            modes: &[],
            examples: &[
                ("Three sample messages:", &["examples-ipc pipe"]),
                (
                    "Your own messages:",
                    &["examples-ipc pipe -m one -m \"two words\""],
                ),
            ],
        },
    ),
    (
        "demo",
        Guide {
            modes: &[],
            examples: &[
                (
                    "The lost updates of a race, and three cures side by side:",
                    &["examples-ipc demo cures"],
                ),
                (
                    "A ring buffer with three producers:",
                    &["examples-ipc demo ring --producers 3"],
                ),
                (
                    "Shared memory without a name in /dev/shm:",
                    &["examples-ipc demo memfd -s"],
                ),
            ],
        },
    ),
    (
        "demo race",
        Guide {
            modes: &[],
            examples: &[
                (
                    "Four processes, a million increments each:",
                    &["examples-ipc demo race"],
                ),
                (
                    "More processes, fewer increments:",
                    &["examples-ipc demo race --procs 8 --iters 100000"],
                ),
            ],
        },
    ),
    (
        "demo mutex",
        Guide {
            modes: &[],
            examples: &[
                ("No update lost, at a price:", &["examples-ipc demo mutex"]),
                (
                    "Two processes, fewer increments:",
                    &["examples-ipc demo mutex --procs 2 --iters 100000"],
                ),
            ],
        },
    ),
    (
        "demo atomic",
        Guide {
            modes: &[],
            examples: &[
                ("No update lost, no lock:", &["examples-ipc demo atomic"]),
                (
                    "Eight processes on one cache line:",
                    &["examples-ipc demo atomic --procs 8"],
                ),
            ],
        },
    ),
    (
        "demo cures",
        Guide {
            modes: &[],
            examples: &[
                (
                    "race, mutex and atomic, timed:",
                    &["examples-ipc demo cures"],
                ),
                (
                    "As JSON lines, fewer increments:",
                    &["examples-ipc --json demo cures --iters 100000"],
                ),
            ],
        },
    ),
    (
        "demo ring",
        Guide {
            modes: &[],
            examples: &[
                (
                    "One producer: no compare-and-swap needed:",
                    &["examples-ipc demo ring --producers 1"],
                ),
                (
                    "Three producers on a small ring:",
                    &["examples-ipc demo ring --producers 3 --slots 8"],
                ),
            ],
        },
    ),
    (
        "demo scoreboard",
        Guide {
            modes: &[],
            examples: &[
                ("Four workers, live:", &["examples-ipc demo scoreboard"]),
                (
                    "Eight workers, fewer items:",
                    &["examples-ipc demo scoreboard -w 8 --items 200"],
                ),
            ],
        },
    ),
    (
        "demo sorted",
        Guide {
            modes: &[],
            examples: &[
                (
                    "Twelve numbers, appended one by one:",
                    &["examples-ipc demo sorted"],
                ),
                (
                    "Slowly enough to watch:",
                    &["examples-ipc demo sorted -c 20 --interval 0.5"],
                ),
            ],
        },
    ),
    (
        "demo memfd",
        Guide {
            modes: &[
                (
                    "-s, --server",
                    "Create a sealed memfd segment, publish where to find it, print its text",
                ),
                (
                    CLIENT,
                    "Client: open the server's segment through /proc; write -m TEXT \
                     or a line from standard input",
                ),
            ],
            examples: &[
                (
                    "Terminal 1: serve, printing the text when it changes:",
                    &["examples-ipc demo memfd -s --on-change --interval 0.2"],
                ),
                (
                    "Terminal 2: write, and see the seal refuse a shrink:",
                    &["examples-ipc demo memfd -m hello --shrink"],
                ),
            ],
        },
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_styled_as_anstyle_writes_bold_underline() {
        let h = clap::builder::styling::Style::new().bold().underline();
        assert_eq!(HEADER_ON, h.render().to_string());
        assert_eq!(HEADER_OFF, h.render_reset().to_string());
    }
}
