//! `posix msq`: server, client and `--stat` of a POSIX message queue, over
//! the `ipc::posix_mq` handle.
//!
//! Queues are opened non-blocking: every wait is a poll on the queue
//! descriptor together with the signal pipe, because posixmq's blocking
//! calls retry EINTR and would never return on Ctrl-C.

use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use serde::Serialize;

use crate::error::{fail_with_hint, hinted, removed_under_server, undo_create};
use crate::ipc::OpenError;
use crate::ipc::posix_mq::{Access, Attributes, PosixQueue, QueueOptions};
use crate::mq_attrs::{AskedBy, AttrLimits, HARD_MSGMAX, HARD_MSGSIZEMAX, OverLimit, queue_cost};
use crate::object::Kind;
use crate::output::{Out, or_unknown};
use crate::record::stat::{StatBody, StatText};
use crate::record::{At, Message, Opened, Record};
use crate::serve::recv::{Source, receive_all};
use crate::serve::send::{Sink, room, send_all};
use crate::serve::{Server, Wait};
use crate::spec::{Create, PosixMsq, PosixMsqRole, QueueAttrs};
use crate::sys::read_proc_u64;
use crate::target::PosixName;

pub fn run(spec: &PosixMsq, out: &mut Out) -> Result<ExitCode> {
    match &spec.role {
        PosixMsqRole::Server(serve) => {
            let mut server = Server::new(out, serve)?;
            let (mq, created, attrs) = open_for(&spec.name, &spec.create, Access::Read)?;
            let start = Start {
                opened: Opened {
                    mechanism: Kind::PosixMsq,
                    at: At::Name { name: &spec.name },
                    created,
                },
                maxmsg: attrs.capacity,
                msgsize: attrs.max_msg_len,
                curmsgs: attrs.current_messages,
            };
            if server.start(&start)? == crate::serve::Flow::Done {
                return Ok(ExitCode::SUCCESS);
            }
            let mut source = Queue {
                buf: vec![0u8; attrs.max_msg_len],
                mq,
                name: &spec.name,
            };
            receive_all(&mut server, &mut source)
        }
        PosixMsqRole::Client { send, priority } => {
            let (mq, created, attrs) = open_for(&spec.name, &spec.create, Access::Write)?;
            let longest = crate::serve::send::Messages::new(send).longest();
            // The longest message is the fixed text or the last
            // {"count":N}: refused before anything is sent, so a run never
            // stops half-way, and a queue this call created goes again.
            if send.count > 0 && longest > attrs.max_msg_len {
                return Err(too_long(&spec.name, longest, &attrs, created));
            }
            let sink = Queue {
                buf: Vec::new(),
                mq,
                name: &spec.name,
            };
            send_all(out, &mut Sender(sink, *priority), send, b"")
        }
    }
}

/// The refusal of a message larger than the queue's message size.
fn too_long(name: &PosixName, longest: usize, attrs: &Attributes, created: bool) -> anyhow::Error {
    let refused = fail_with_hint(
        format!(
            "a message of {longest} bytes is larger than the queue's message size of {} bytes (mq_msgsize)",
            attrs.max_msg_len
        ),
        "send a shorter message, or remove the queue and create it with a larger --msg-size",
    )
    .context(format!("cannot send to queue {name}"));
    undo_create(refused, created, "queue", || {
        PosixQueue::remove_name(name.as_str())
            .with_context(|| format!("cannot remove queue {name}"))
    })
}

/// Open `name`, creating it by `create` when missing, with its attributes
/// and whether this call created it. An existing queue is used as it is.
fn open_for(
    name: &PosixName,
    create: &Create<QueueAttrs>,
    access: Access,
) -> Result<(PosixQueue, bool, Attributes)> {
    let options = QueueOptions {
        access,
        nonblocking: true,
        mode: create.mode.bits(),
        capacity: create.attrs.max_msgs as usize,
        msg_size: create.attrs.msg_size as usize,
    };
    let opened = match PosixQueue::open(name.as_str(), create.policy, &options) {
        Ok(opened) => opened,
        Err(OpenError::Create(e)) => {
            return Err(create_error(e, &create.attrs, AskedBy::Flags))
                .with_context(|| format!("cannot create queue {name}"));
        }
        Err(OpenError::Open(e)) => {
            return Err(e).with_context(|| format!("cannot open queue {name}"));
        }
        Err(OpenError::Vanished) => {
            bail!("cannot open queue {name}: it was removed and recreated while opening it")
        }
    };
    let attrs = opened
        .handle
        .attributes()
        .with_context(|| format!("cannot read attributes of queue {name}"))?;
    Ok((opened.handle, opened.created, attrs))
}

/// Name the limit behind a failed mq_open(O_CREAT); `--restore` too,
/// whose attributes come from the file (`by`).
pub(crate) fn create_error(e: io::Error, create: &QueueAttrs, by: AskedBy) -> anyhow::Error {
    let Some(errno) = e.raw_os_error().map(Errno::from_raw) else {
        return e.into();
    };
    let proc = |f: &str| read_proc_u64(&format!("/proc/sys/fs/mqueue/{f}"));
    match errno {
        Errno::EINVAL => hinted(errno, attrs_hint(create, by)),
        Errno::EMFILE => {
            let cost = queue_cost(create.max_msgs, create.msg_size);
            let rlimit =
                nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_MSGQUEUE)
                    .map(|(soft, _)| soft.to_string())
                    .unwrap_or_else(|_| "?".into());
            hinted(
                errno,
                format!(
                    "this queue needs about {cost} bytes of RLIMIT_MSGQUEUE (ulimit -q, {rlimit} bytes for this \
                     user), or the open-file limit is reached; remove unused queues or ask for less"
                ),
            )
        }
        Errno::ENOSPC => hinted(
            errno,
            format!(
                "/proc/sys/fs/mqueue/queues_max ({}) queues exist already; remove unused ones \
                 (a process with CAP_SYS_RESOURCE may exceed it, being root is not enough)",
                or_unknown(proc("queues_max"))
            ),
        ),
        _ => e.into(),
    }
}

/// Why mq_open refused `create` with EINVAL, and what to do: ask for
/// less, or (a restore, whose attributes are the file's) raise the limit
/// or restore into a queue that exists.
fn attrs_hint(create: &QueueAttrs, by: AskedBy) -> String {
    let limits = AttrLimits::here();
    let [count, size] = by.names();
    let existing = "restore into an existing queue with -n NAME";
    let raise = |sysctl: &str, less: &str| match by {
        AskedBy::Flags => format!("raise {sysctl} or ask for {less}"),
        AskedBy::File => format!("raise it (sysctl fs.mqueue.{sysctl}) or {existing}"),
    };
    let why = match limits.refusal_of(by, create.max_msgs, create.msg_size) {
        Some((OverLimit::MsgMax, why)) => return format!("{why}; {}", raise("msg_max", "fewer")),
        Some((OverLimit::MsgsizeMax, why)) => {
            return format!("{why}; {}", raise("msgsize_max", "less"));
        }
        Some((_, why)) => why,
        None if limits.cap_sys_resource => format!(
            "{count} and {size} must be within {HARD_MSGMAX} and {HARD_MSGSIZEMAX} \
             for this process, which has CAP_SYS_RESOURCE"
        ),
        None => {
            format!("{count} and {size} must be within /proc/sys/fs/mqueue/msg_max and msgsize_max")
        }
    };
    match by {
        AskedBy::Flags => why,
        AskedBy::File => format!("{why}; {existing}"),
    }
}

/// The open queue of a server (its receive buffer) or a client.
struct Queue<'n> {
    mq: PosixQueue,
    buf: Vec<u8>,
    name: &'n PosixName,
}

impl Source for Queue<'_> {
    fn take(&mut self, _wait: Wait) -> Result<Option<impl Record + '_>> {
        match self.mq.recv(&mut self.buf) {
            Ok((priority, len)) => Ok(Some(Message::new(
                false,
                Priority { priority },
                &self.buf[..len],
            ))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot receive from queue {}", self.name)),
        }
    }

    fn ready(&self) -> Option<BorrowedFd<'_>> {
        Some(self.mq.fd())
    }

    /// `mq_unlink` leaves our descriptor working: the queue's inode, which
    /// fstat shows, has no link left once its name is gone.
    fn check(&self) -> Result<()> {
        let st = self
            .mq
            .stat()
            .with_context(|| format!("cannot stat queue {}", self.name))?;
        if st.st_nlink == 0 {
            return Err(removed_under_server("queue", self.name, "mq_unlink"));
        }
        Ok(())
    }
}

/// A client's queue and the priority it sends with.
struct Sender<'n>(Queue<'n>, u32);

impl Sink for Sender<'_> {
    fn send(&mut self, msg: &[u8], wait: Wait) -> Result<bool> {
        let deadline = wait.deadline();
        loop {
            match self.0.mq.send(self.1, msg) {
                Ok(()) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.into()),
            }
            if !room(self.0.mq.fd(), wait, deadline)? {
                return Ok(false);
            }
        }
    }

    fn full(&self) -> String {
        match self.0.mq.attributes() {
            Ok(a) => format!(
                "queue {} is full ({} of {})",
                self.0.name, a.current_messages, a.capacity
            ),
            Err(_) => format!("queue {} is full", self.0.name),
        }
    }

    fn failed(&self) -> String {
        format!("cannot send to queue {}", self.0.name)
    }

    fn sent<'a>(&'a self, msg: &'a [u8]) -> impl Record + 'a {
        Message::new(true, Priority { priority: self.1 }, msg)
    }
}

/// `stat`: read-only, either end will do for mq_getattr.
pub fn stat(name: &PosixName, out: &mut Out) -> Result<ExitCode> {
    let open = |access| PosixQueue::open_existing(name.as_str(), access);
    let mq = open(Access::Read)
        .or_else(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => open(Access::Write),
            _ => Err(e),
        })
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => anyhow::anyhow!("no such queue"),
            _ => e.into(),
        })
        .with_context(|| format!("cannot open queue {name}"))?;
    let attrs = mq
        .attributes()
        .with_context(|| format!("cannot read attributes of queue {name}"))?;
    let st = mq
        .stat()
        .with_context(|| format!("cannot stat queue {name}"))?;
    let body = QueueStat {
        maxmsg: attrs.capacity,
        msgsize: attrs.max_msg_len,
        curmsgs: attrs.current_messages,
    };
    let owner = (st.st_uid, st.st_gid, st.st_mode);
    super::print_stat(out, Kind::PosixMsq, name, body, owner)
}

// ---- Records ----

/// `posix msq /q: created (max-msgs 10, msg-size 8192, 0 queued); waiting for messages`
#[derive(Serialize)]
struct Start<'a> {
    #[serde(flatten)]
    opened: Opened<'a>,
    maxmsg: usize,
    msgsize: usize,
    curmsgs: usize,
}

impl fmt::Display for Start<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (max-msgs {}, msg-size {}, {} queued); waiting for messages",
            self.opened, self.maxmsg, self.msgsize, self.curmsgs
        )
    }
}

crate::record_kind!(Start<'_>, "start");

/// A message's head: its priority, `priority 5: ` before the payload
/// (nothing for the default priority 0).
#[derive(Serialize)]
struct Priority {
    priority: u32,
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.priority != 0 {
            write!(f, "priority {}: ", self.priority)?;
        }
        Ok(())
    }
}

/// What `--stat` shows of a queue besides its name and owner.
#[derive(Serialize)]
struct QueueStat {
    maxmsg: usize,
    msgsize: usize,
    curmsgs: usize,
}

impl StatBody for QueueStat {
    fn text(&self, t: &mut StatText) {
        t.line("maxmsg", self.maxmsg);
        t.line("msgsize", self.msgsize);
        t.line("curmsgs", self.curmsgs);
    }
}
