//! `socket`: a Unix domain datagram socket bound at a path. The server
//! binds it and prints every datagram; clients connect to it and send one
//! datagram per message, so a message is never split nor merged, and may
//! hold newlines.
//!
//! As a FIFO server leaves its FIFO, a socket server leaves its socket
//! file when it ends (the contract: a server leaves the object in place;
//! `--clean` removes it). That file is then stale, as no one is bound to
//! it: the next server at the path takes it over, as a FIFO server reuses
//! a FIFO, while a socket with a live server is never touched.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;
use serde::Serialize;

use super::{About, Channel, Removed, Start, not_a, start_server_first};
use crate::error::{fail_with_hint, removed_under_server};
use crate::guide::{CLIENT, Guide};
use crate::ipc::socket::{self, Bound, Found};
use crate::output::{Escaped, Out};
use crate::record::{Message, Record};
use crate::serve::recv::{Source, receive_all};
use crate::serve::send::{Sink, room, send_all};
use crate::serve::{Flow, Server, Wait};
use crate::spec::{Send, Serve};
use crate::target::FileMode;

/// The server's receive buffer: a longer datagram is printed cut to this,
/// with its full size. 64 KiB, as a FIFO's longest line; a client's
/// datagram can be larger (up to its send buffer, about 208 KiB).
const MAX_DATAGRAM: usize = 64 * 1024;

/// The Unix datagram socket as a [`Channel`].
pub struct SocketChannel;

pub static SOCKET: SocketChannel = SocketChannel;

impl Channel for SocketChannel {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn serve(&self, path: &Path, mode: FileMode, serve: &Serve, out: &mut Out) -> Result<ExitCode> {
        let mut server = Server::new(out, serve)?;
        let (sock, replaced) =
            bind(path, mode).with_context(|| format!("cannot serve socket {}", path.display()))?;
        let start = if replaced {
            Start::replaced(&SOCKET, path, "messages")
        } else {
            Start::new(&SOCKET, path, true, "messages")
        };
        if server.start(&start)? == Flow::Done {
            return Ok(ExitCode::SUCCESS);
        }
        let mut source = Datagrams {
            sock,
            path,
            buf: vec![0u8; MAX_DATAGRAM],
        };
        receive_all(&mut server, &mut source)
    }

    fn send(&self, path: &Path, send: &Send, out: &mut Out) -> Result<ExitCode> {
        let context = || format!("cannot connect to socket {}", path.display());
        // connect(2) follows symlinks and says ECONNREFUSED for any file that
        // is no bound socket: look first, to refuse those in their own words.
        match look(path)? {
            Found::Missing => {
                return Err(fail_with_hint(
                    "no such socket",
                    start_server_first(&SOCKET, path),
                ))
                .with_context(context);
            }
            Found::Other(what) => return Err(not_a(&SOCKET, path, what)).with_context(context),
            Found::Socket(_) => {}
        }
        let sock = socket::connect(path)
            .map_err(|e| match e {
                Errno::ECONNREFUSED => {
                    fail_with_hint("no server is reading it", start_server_first(&SOCKET, path))
                }
                Errno::EPROTOTYPE => anyhow!("it is a stream socket, not a datagram socket"),
                Errno::ENAMETOOLONG => too_long(path),
                e => e.into(),
            })
            .with_context(context)?;
        send_all(out, &mut Sender { sock, path }, send, b"")
    }

    fn clean(&self, path: &Path, out: &mut Out) -> Result<ExitCode> {
        let context = || format!("cannot remove socket {}", path.display());
        let file = match look(path)? {
            Found::Missing => bail!("cannot remove socket {}: no such socket", path.display()),
            Found::Other(what) => return Err(not_a(&SOCKET, path, what)).with_context(context),
            Found::Socket(file) => file,
        };
        if !socket::remove_if(path, file).with_context(context)? {
            bail!(
                "cannot remove socket {}: it changed while we looked",
                path.display()
            );
        }
        out.line(&Removed::new(&SOCKET, path))?;
        Ok(ExitCode::SUCCESS)
    }
}

const ABOUT: About = About {
    name: "socket",
    what: "socket",
    title: "Unix datagram socket",
    file: "examples-ipc.sock",
    lines: false,
    guide: GUIDE,
    option_help: &[
        (
            "server",
            "Bind the socket (taking over a stale one) and print every datagram sent to it",
        ),
        (
            "clean",
            "Remove the socket (only a socket: anything else at PATH is left alone)",
        ),
        (
            "path",
            "Path of the socket; the server binds it (mode --mode), taking over \
             a stale socket; anything else there is refused. Default: examples-ipc.sock in \
             $XDG_RUNTIME_DIR (private to the user), else in the temp dir",
        ),
        (
            "message",
            "Client: send TEXT as one datagram instead of {\"count\":i}: once, or -c N times",
        ),
        (
            "interval",
            "Client: seconds between datagrams (fractions and 0 allowed)",
        ),
        (
            "count",
            "Server: exit 0 after N datagrams. Client: send N datagrams (default 10)",
        ),
        (
            "timeout",
            "Server: exit 1 when no datagram comes for SECS seconds (fractions allowed)",
        ),
    ],
    failure: "The operation failed: no such socket, no server, something else than \
         a socket at the path, a server already there, no permission, or a \
         server's --timeout passed.",
    files: &[(
        "$XDG_RUNTIME_DIR/examples-ipc.sock",
        "the socket without --path; in the temporary directory when XDG_RUNTIME_DIR is unset",
    )],
    man_pages: &["unix(7)", "bind(2)", "connect(2)", "recv(2)"],
};

const GUIDE: Guide = Guide {
    modes: &[
        (
            "-s, --server",
            "Bind the socket, taking over a stale one; print every datagram \
             sent to it, from any number of clients",
        ),
        (
            CLIENT,
            "Client: send -c N datagrams (default 10 {\"count\":i}, or -m TEXT), \
             one every --interval",
        ),
        ("--clean", "Remove the socket"),
    ],
    examples: &[
        (
            "Terminal 1: bind the socket and print what is sent to it:",
            &["examples-ipc socket -s"],
        ),
        (
            "Terminal 2: send three datagrams, no pause:",
            &["examples-ipc socket -c 3 --interval 0"],
        ),
        (
            "A socket at a path of your choice, then remove it:",
            &[
                "examples-ipc socket -s --path /tmp/my.sock",
                "examples-ipc socket --clean --path /tmp/my.sock",
            ],
        ),
    ],
};

fn look(path: &Path) -> Result<Found> {
    socket::look(path).with_context(|| format!("cannot look at {}", path.display()))
}

/// The refusal of a path where a live server is bound.
fn live() -> anyhow::Error {
    fail_with_hint(
        "another server is reading it",
        "stop that server first, or choose another path with --path",
    )
}

/// Bind at `path`, and whether a stale socket there was replaced. bind(2)
/// never replaces what is at the path; when something is, only a socket
/// nobody is bound to (connect says ECONNREFUSED) is removed, if the path
/// still names the file looked at, and the bind tried once more. A live
/// server, one that binds in between included, and anything not a socket
/// are refused and left alone.
fn bind(path: &Path, mode: FileMode) -> Result<(Bound, bool)> {
    match Bound::bind(path, mode.bits()) {
        Ok(sock) => return Ok((sock, false)),
        Err(Errno::EADDRINUSE) => {}
        Err(Errno::ENAMETOOLONG) => return Err(too_long(path)),
        Err(e) => return Err(e.into()),
    }
    let replaced = match look(path)? {
        Found::Other(what) => return Err(not_a(&SOCKET, path, what)),
        // Gone since the bind: nothing to replace.
        Found::Missing => false,
        Found::Socket(file) => {
            match socket::connect(path) {
                Ok(_) => return Err(live()),
                Err(Errno::ECONNREFUSED) => {}
                Err(e) => return Err(e.into()),
            }
            socket::remove_if(path, file)?
        }
    };
    match Bound::bind(path, mode.bits()) {
        Ok(sock) => Ok((sock, replaced)),
        Err(Errno::EADDRINUSE) => Err(live()),
        Err(e) => Err(e.into()),
    }
}

/// A path longer than a socket address holds.
fn too_long(path: &Path) -> anyhow::Error {
    fail_with_hint(
        format!(
            "the path is {} bytes, and a socket's address holds at most {}",
            path.as_os_str().len(),
            socket::PATH_MAX
        ),
        "choose a shorter path with --path",
    )
}

/// The server's socket, one datagram at a time.
struct Datagrams<'p> {
    sock: Bound,
    path: &'p Path,
    buf: Vec<u8>,
}

impl Source for Datagrams<'_> {
    fn take(&mut self, _wait: Wait) -> Result<Option<impl Record + '_>> {
        loop {
            match self.sock.recv(&mut self.buf) {
                Ok(len) => {
                    let kept = len.min(self.buf.len());
                    let head = Datagram {
                        cut_from: (len > kept).then_some(len),
                    };
                    return Ok(Some(Message::new(false, head, &self.buf[..kept])));
                }
                Err(Errno::EAGAIN) => return Ok(None),
                Err(Errno::EINTR) => {}
                Err(e) => {
                    return Err(anyhow::Error::new(e)).with_context(|| {
                        format!("cannot receive on socket {}", self.path.display())
                    });
                }
            }
        }
    }

    fn ready(&self) -> Option<BorrowedFd<'_>> {
        Some(self.sock.as_fd())
    }

    /// Clients connect by the path: once it is gone, or another file, none
    /// can reach this server.
    fn check(&self) -> Result<()> {
        match socket::still_at(self.path, self.sock.file()) {
            Ok(true) => Ok(()),
            Ok(false) => Err(removed_under_server(
                "socket",
                Escaped(self.path.display()),
                "unlink",
            )),
            Err(e) => Err(e).with_context(|| format!("cannot stat socket {}", self.path.display())),
        }
    }
}

/// A client's connected socket.
struct Sender<'p> {
    sock: UnixDatagram,
    path: &'p Path,
}

impl Sink for Sender<'_> {
    /// One `send` per message, whole or not at all.
    fn send(&mut self, msg: &[u8], wait: Wait) -> Result<bool> {
        let deadline = wait.deadline();
        loop {
            match socket::send(&self.sock, msg) {
                Ok(_) => return Ok(true),
                Err(Errno::EAGAIN) => {}
                Err(Errno::EINTR) => continue,
                Err(Errno::ECONNREFUSED | Errno::ECONNRESET) => {
                    bail!("the server went away")
                }
                Err(Errno::EMSGSIZE) => bail!(
                    "a datagram of {} bytes is above what the socket sends at once \
                     (EMSGSIZE; the limit follows /proc/sys/net/core/wmem_default)",
                    msg.len()
                ),
                Err(e) => return Err(e.into()),
            }
            if !room(self.sock.as_fd(), wait, deadline)? {
                return Ok(false);
            }
        }
    }

    fn full(&self) -> String {
        format!("socket {}: the server's queue is full", self.path.display())
    }

    fn failed(&self) -> String {
        format!("cannot send to socket {}", self.path.display())
    }

    fn sent<'a>(&'a self, msg: &'a [u8]) -> impl Record + 'a {
        Message::new(true, Datagram { cut_from: None }, msg)
    }
}

// ---- Records ----

/// A datagram's head: nothing, or that it was cut to the buffer.
#[derive(Serialize)]
struct Datagram {
    /// The datagram's full size, when it was longer than the buffer and
    /// only its first `size` bytes are shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    cut_from: Option<usize>,
}

impl fmt::Display for Datagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cut_from {
            Some(len) => write!(f, "(cut: {len} bytes, the first {MAX_DATAGRAM} shown) "),
            None => Ok(()),
        }
    }
}
