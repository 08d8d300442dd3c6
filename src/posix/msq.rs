//! `posix msq`: server, client, `--clean` and `--stat` of a POSIX message
//! queue, over the `ipc::posix_mq` handle.
//!
//! Queues are opened non-blocking: every wait is a poll on the queue
//! descriptor together with the signal pipe, because posixmq's blocking
//! calls retry EINTR and would never return on Ctrl-C.

use std::io;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::cli::{Mode, PosixMsqArgs};
use crate::error::{fail_with_hint, hinted, undo_create};
use crate::ipc::posix_mq::{Access, Attributes, PosixQueue, QueueOptions};
use crate::ipc::{Creation, OpenError};
use crate::output::{Fields, Out, Payload};
use crate::serve::{Flow, Messages, Server, Waited};
use crate::sys::{insert_ownership, read_proc_u64};
use crate::target::{FileMode, PosixName};

pub fn run(args: &PosixMsqArgs, out: &mut Out) -> Result<ExitCode> {
    let name = &args.target.name;
    match args.mode.mode() {
        Mode::Server => server(args, out),
        Mode::Client => client(args, out),
        Mode::Clean => clean(name, out),
        Mode::Stat => stat(name, out),
    }
}

/// Attributes for a queue this call creates.
struct Create {
    mode: FileMode,
    max_msgs: u32,
    msg_size: u32,
}

/// Open `name`, creating it with `create` when missing. Returns the queue and
/// whether this call created it. An existing queue is used as it is.
fn open_or_create(name: &PosixName, access: Access, create: &Create) -> Result<(PosixQueue, bool)> {
    let options = QueueOptions {
        access,
        nonblocking: true,
        mode: create.mode.bits(),
        capacity: create.max_msgs as usize,
        msg_size: create.msg_size as usize,
    };
    match PosixQueue::open(name.as_str(), Creation::OpenOrCreate, &options) {
        Ok(opened) => Ok((opened.handle, opened.created)),
        Err(OpenError::Create(e)) => {
            Err(create_error(e, create)).with_context(|| format!("cannot create queue {name}"))
        }
        Err(OpenError::Open(e)) => Err(e).with_context(|| format!("cannot open queue {name}")),
        Err(OpenError::Vanished) => {
            bail!("cannot open queue {name}: it was removed and recreated while opening it")
        }
    }
}

/// An existing queue, either end, non-blocking.
fn open_existing(name: &PosixName, access: Access) -> io::Result<PosixQueue> {
    PosixQueue::open_existing(name.as_str(), access)
}

/// The kernel's ceilings, which no sysctl raises (ipc/mqueue.c).
pub const HARD_MSGMAX: u64 = 65536;
pub const HARD_MSGSIZEMAX: u64 = 16 * 1024 * 1024;

/// The largest attributes `mq_open(O_CREAT)` accepts from this process
/// (ipc/mqueue.c, `mqueue_get_inode`): /proc/sys/fs/mqueue/msg_max and
/// msgsize_max, or HARD_MSGMAX and HARD_MSGSIZEMAX for a process with
/// CAP_SYS_RESOURCE. Beyond them the kernel says EINVAL.
#[derive(Debug, Clone, Copy)]
pub struct AttrLimits {
    pub msg_max: Option<u64>,
    pub msgsize_max: Option<u64>,
    pub cap_sys_resource: bool,
}

/// Which limit refuses a queue's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverLimit {
    MsgMax,
    MsgsizeMax,
    HardMsgmax,
    HardMsgsizemax,
}

impl OverLimit {
    /// The name `limits --json` gives it.
    pub fn name(self) -> &'static str {
        match self {
            OverLimit::MsgMax => "msg_max",
            OverLimit::MsgsizeMax => "msgsize_max",
            OverLimit::HardMsgmax => "hard_msgmax",
            OverLimit::HardMsgsizemax => "hard_msgsizemax",
        }
    }
}

impl AttrLimits {
    /// The limits of this process, read now.
    pub fn here() -> AttrLimits {
        let proc = |f: &str| read_proc_u64(&format!("/proc/sys/fs/mqueue/{f}"));
        AttrLimits {
            msg_max: proc("msg_max"),
            msgsize_max: proc("msgsize_max"),
            cap_sys_resource: crate::sys::has_cap_sys_resource(),
        }
    }

    /// The attributes `mq_open` gives a queue when it gets none: the smaller
    /// of msg_default and msg_max, and of msgsize_default and msgsize_max
    /// (mq_overview(7)).
    pub fn defaults(&self, msg_default: Option<u64>, msgsize_default: Option<u64>) -> (u64, u64) {
        let pick = |default: Option<u64>, max: Option<u64>, fallback: u64| match (default, max) {
            (Some(d), Some(m)) => d.min(m),
            (d, m) => d.or(m).unwrap_or(fallback),
        };
        (
            pick(msg_default, self.msg_max, 10),
            pick(msgsize_default, self.msgsize_max, 8192),
        )
    }

    /// Why the kernel refuses a queue of `max_msgs` x `msg_size` from this
    /// process with EINVAL; None when the attributes are within its limits
    /// (or a limit could not be read).
    pub fn refusal(&self, max_msgs: u32, msg_size: u32) -> Option<(OverLimit, String)> {
        let (n, size) = (u64::from(max_msgs), u64::from(msg_size));
        // Without the capability the sysctl is this process's limit, and
        // the hint says what would lift it: not uid 0, the capability.
        let lift = |hard: u64| {
            format!(
                "this process's limit: it lacks CAP_SYS_RESOURCE, which would allow up to {hard} \
                 (being root is not enough)"
            )
        };
        if n > HARD_MSGMAX {
            return Some((
                OverLimit::HardMsgmax,
                format!(
                    "--max-msgs {n} is above the kernel's hard limit of {HARD_MSGMAX} messages (HARD_MSGMAX)"
                ),
            ));
        }
        if size > HARD_MSGSIZEMAX {
            return Some((
                OverLimit::HardMsgsizemax,
                format!(
                    "--msg-size {size} is above the kernel's hard limit of {HARD_MSGSIZEMAX} bytes (HARD_MSGSIZEMAX)"
                ),
            ));
        }
        if self.cap_sys_resource {
            return None;
        }
        if let Some(m) = self.msg_max.filter(|m| n > *m) {
            return Some((
                OverLimit::MsgMax,
                format!(
                    "--max-msgs {n} is above /proc/sys/fs/mqueue/msg_max ({m}), {}",
                    lift(HARD_MSGMAX)
                ),
            ));
        }
        if let Some(m) = self.msgsize_max.filter(|m| size > *m) {
            return Some((
                OverLimit::MsgsizeMax,
                format!(
                    "--msg-size {size} is above /proc/sys/fs/mqueue/msgsize_max ({m}), {}",
                    lift(HARD_MSGSIZEMAX)
                ),
            ));
        }
        None
    }
}

/// Name the limit behind a failed mq_open(O_CREAT).
fn create_error(e: io::Error, create: &Create) -> anyhow::Error {
    let Some(errno) = e.raw_os_error().map(Errno::from_raw) else {
        return e.into();
    };
    let proc = |f: &str| read_proc_u64(&format!("/proc/sys/fs/mqueue/{f}"));
    match errno {
        Errno::EINVAL => {
            let limits = AttrLimits::here();
            let hint = match limits.refusal(create.max_msgs, create.msg_size) {
                Some((OverLimit::MsgMax, why)) => format!("{why}; raise msg_max or ask for fewer"),
                Some((OverLimit::MsgsizeMax, why)) => {
                    format!("{why}; raise msgsize_max or ask for less")
                }
                Some((_, why)) => why,
                None if limits.cap_sys_resource => format!(
                    "--max-msgs and --msg-size must be within {HARD_MSGMAX} and {HARD_MSGSIZEMAX} \
                     for this process, which has CAP_SYS_RESOURCE"
                ),
                None => "--max-msgs and --msg-size must be within /proc/sys/fs/mqueue/msg_max and msgsize_max"
                    .into(),
            };
            hinted(errno, hint)
        }
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
                proc("queues_max").map_or_else(|| "?".into(), |v| v.to_string())
            ),
        ),
        _ => e.into(),
    }
}

/// What a queue charges against RLIMIT_MSGQUEUE, as mq_overview(7) gives it.
pub fn queue_cost(max_msgs: u32, msg_size: u32) -> u64 {
    const POINTER: u64 = size_of::<usize>() as u64;
    // struct posix_msg_tree_node: an rb_node (3 words) and a list_head (2) plus the priority.
    const TREE_NODE: u64 = 6 * POINTER;
    // struct msg_msg: a list_head (2 words), m_type, m_ts, next and security.
    // The kernel charges the struct, not a pointer to it: a limit of 50000
    // bytes takes 10 x 4904 but refuses 10 x 4905 (x86_64, 6.x).
    const MSG_MSG: u64 = 6 * POINTER;
    const MQ_PRIO_MAX: u64 = 32768;
    let n = u64::from(max_msgs);
    n * MSG_MSG + n.min(MQ_PRIO_MAX) * TREE_NODE + n * u64::from(msg_size)
}

/// Open or create the queue of `args` for a server or client, with its attributes.
fn open_for(args: &PosixMsqArgs, access: Access) -> Result<(PosixQueue, bool, Attributes)> {
    let name = &args.target.name;
    let create = Create {
        mode: args.create.mode,
        max_msgs: args.max_msgs,
        msg_size: args.msg_size,
    };
    let (mq, created) = open_or_create(name, access, &create)?;
    let attrs = mq
        .attributes()
        .with_context(|| format!("cannot read attributes of queue {name}"))?;
    Ok((mq, created, attrs))
}

fn server(args: &PosixMsqArgs, out: &mut Out) -> Result<ExitCode> {
    let name = &args.target.name;
    let mut server = Server::new(out, &args.serve)?;
    let (mq, created, attrs) = open_for(args, Access::Read)?;
    let verb = if created { "created" } else { "opened" };
    let flow = server.start(
        format_args!(
            "posix msq {name}: {verb} (max-msgs {}, msg-size {}, {} queued); waiting for messages",
            attrs.capacity, attrs.max_msg_len, attrs.current_messages
        ),
        |f| {
            f.insert("mechanism".into(), "posix-msq".into());
            f.insert("name".into(), name.as_str().into());
            f.insert("created".into(), created.into());
            f.insert("maxmsg".into(), attrs.capacity.into());
            f.insert("msgsize".into(), attrs.max_msg_len.into());
            f.insert("curmsgs".into(), attrs.current_messages.into());
        },
    )?;
    if flow == Flow::Done {
        return Ok(ExitCode::SUCCESS);
    }
    let mut buf = vec![0u8; attrs.max_msg_len];
    // Yield the CPU once before sleeping on an empty queue: a sender on the
    // same CPU refills it without the poll wake-up and its two switches.
    let mut yielded = false;
    loop {
        match mq.recv(&mut buf) {
            Ok((priority, len)) => {
                yielded = false;
                let payload = Payload(&buf[..len]);
                let flow = server.event(
                    "message",
                    format_args!("{}{payload}", PriorityPrefix(priority)),
                    |f| {
                        f.insert("priority".into(), priority.into());
                        f.insert("size".into(), len.into());
                        payload.insert_into(f);
                    },
                )?;
                if flow == Flow::Done {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            // Drained: flush what was printed, then sleep until the next one.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && !yielded => {
                yielded = true;
                let _ = nix::sched::sched_yield();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                yielded = false;
                match server.wait(Some((mq.fd(), PollFlags::POLLIN)), None)? {
                    Waited::Ready | Waited::Tick => {}
                    Waited::Canceled => return server.canceled(),
                }
            }
            Err(e) => return Err(e).with_context(|| format!("cannot receive from queue {name}")),
        }
    }
}

/// `priority 5: ` before a payload, nothing for the default priority 0.
struct PriorityPrefix(u32);

impl std::fmt::Display for PriorityPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 != 0 {
            write!(f, "priority {}: ", self.0)?;
        }
        Ok(())
    }
}

fn client(args: &PosixMsqArgs, out: &mut Out) -> Result<ExitCode> {
    let name = &args.target.name;
    let messages = Messages::new(args.serve.count, args.send.message.as_deref());
    let count = messages.count;
    let (mq, created, attrs) = open_for(args, Access::Write)?;
    // The longest message is the fixed text or the last {"count":N}; refuse
    // it before anything is sent, so a run never stops half-way, and remove
    // the queue if this call created it, so a refused run leaves nothing.
    let longest = messages.longest();
    if count > 0 && longest > attrs.max_msg_len {
        let refused = fail_with_hint(
            format!(
                "a message of {longest} bytes is larger than the queue's message size of {} bytes (mq_msgsize)",
                attrs.max_msg_len
            ),
            "send a shorter message, or remove the queue and create it with a larger --msg-size",
        )
        .context(format!("cannot send to queue {name}"));
        return Err(undo_create(refused, created, "queue", || {
            PosixQueue::remove_name(name.as_str())
                .with_context(|| format!("cannot remove queue {name}"))
        }));
    }
    let interval = args.send.interval.duration();
    let mut msg = Vec::with_capacity(longest);
    for i in 1..=count {
        messages.write(i, &mut msg);
        send(&mq, args.priority, &msg, args.send.nonblock, out)
            .with_context(|| format!("cannot send to queue {name}"))?;
        let payload = Payload(&msg);
        out.event(
            "sent",
            format_args!("sent {}{payload}", PriorityPrefix(args.priority)),
            |f| {
                f.insert("priority".into(), args.priority.into());
                f.insert("size".into(), msg.len().into());
                payload.insert_into(f);
            },
        )?;
        if i < count && !interval.is_zero() {
            out.flush()?;
            std::thread::sleep(interval);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Send one message; on a full queue wait for room unless `nonblock`.
fn send(mq: &PosixQueue, priority: u32, msg: &[u8], nonblock: bool, out: &mut Out) -> Result<()> {
    // As the server: yield once before sleeping on a full queue, so a
    // receiver on the same CPU drains it without a poll wake-up.
    let mut yielded = nonblock;
    loop {
        match mq.send(priority, msg) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && !yielded => {
                yielded = true;
                let _ = nix::sched::sched_yield();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if nonblock {
                    return Err(fail_with_hint(
                        "queue is full",
                        "a server (-s) drains it; without --nonblock the client waits for room",
                    ));
                }
                out.flush()?;
                let mut fds = [PollFd::new(mq.fd(), PollFlags::POLLOUT)];
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn clean(name: &PosixName, out: &mut Out) -> Result<ExitCode> {
    super::clean(name, "queue", "posix-msq", out, PosixQueue::remove_name)
}

fn stat(name: &PosixName, out: &mut Out) -> Result<ExitCode> {
    // Either end will do for mq_getattr; try the one the mode allows.
    let mq = open_existing(name, Access::Read)
        .or_else(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => open_existing(name, Access::Write),
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
    let mut f = Fields::new();
    f.insert("mechanism".into(), "posix-msq".into());
    f.insert("name".into(), name.as_str().into());
    f.insert("maxmsg".into(), attrs.capacity.into());
    f.insert("msgsize".into(), attrs.max_msg_len.into());
    f.insert("curmsgs".into(), attrs.current_messages.into());
    insert_ownership(&mut f, st.st_uid, st.st_gid, st.st_mode);
    out.attributes(&f)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::{AttrLimits, HARD_MSGMAX, OverLimit, queue_cost};

    const SYSCTL: AttrLimits = AttrLimits {
        msg_max: Some(10),
        msgsize_max: Some(8192),
        cap_sys_resource: false,
    };
    const CAPABLE: AttrLimits = AttrLimits {
        cap_sys_resource: true,
        ..SYSCTL
    };

    #[test]
    fn the_sysctls_bind_a_process_without_cap_sys_resource() {
        assert_eq!(SYSCTL.refusal(10, 8192), None);
        let (limit, why) = SYSCTL.refusal(11, 8192).unwrap();
        assert_eq!(limit, OverLimit::MsgMax);
        assert!(
            why.contains("msg_max (10)")
                && why.contains("CAP_SYS_RESOURCE")
                && why.contains("65536")
        );
        assert!(!why.contains("root may"), "{why}");
        assert_eq!(SYSCTL.refusal(1, 8193).unwrap().0, OverLimit::MsgsizeMax);
        // The hard limits come first: no capability lifts them.
        assert_eq!(
            SYSCTL.refusal(100_000, 8192).unwrap().0,
            OverLimit::HardMsgmax
        );
    }

    #[test]
    fn cap_sys_resource_allows_up_to_the_hard_limits() {
        assert_eq!(CAPABLE.refusal(11, 8193), None);
        assert_eq!(CAPABLE.refusal(HARD_MSGMAX as u32, 16 << 20), None);
        assert_eq!(
            CAPABLE.refusal(HARD_MSGMAX as u32 + 1, 1).unwrap().0,
            OverLimit::HardMsgmax
        );
        assert_eq!(
            CAPABLE.refusal(1, (16 << 20) + 1).unwrap().0,
            OverLimit::HardMsgsizemax
        );
    }

    #[test]
    fn defaults_are_capped_by_the_maxima() {
        assert_eq!(SYSCTL.defaults(Some(10), Some(8192)), (10, 8192));
        let small = AttrLimits {
            msg_max: Some(5),
            msgsize_max: Some(1024),
            ..SYSCTL
        };
        assert_eq!(small.defaults(Some(10), Some(8192)), (5, 1024));
        assert_eq!(small.defaults(None, None), (5, 1024));
    }

    #[test]
    fn cost_of_default_queue() {
        // 10 messages of 8192 bytes dominate; the overhead is per message.
        assert!(queue_cost(10, 8192) > 81920);
        assert!(queue_cost(10, 8192) < 81920 + 10 * 128);
    }

    #[test]
    fn cost_matches_the_kernel() {
        // Measured with prlimit --msgqueue=50000: 10 x 4904 fits, 10 x 4905 does not.
        if size_of::<usize>() == 8 {
            assert!(queue_cost(10, 4904) <= 50000);
            assert!(queue_cost(10, 4905) > 50000);
        }
    }
}
