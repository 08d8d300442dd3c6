//! POSIX message queue: `mq_open`, `mq_send`, `mq_receive`, `mq_unlink`.
//!
//! posixmq already is the safe handle (it closes in `Drop` and never
//! unlinks), so this file holds no `unsafe`. Queues are opened non-blocking:
//! every wait is a poll on the queue descriptor together with the signal
//! pipe, because posixmq's blocking calls retry EINTR and would never return
//! on Ctrl-C.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::fstat;
use posixmq::{OpenOptions, PosixMq};

use crate::cli::{Mode, PosixMsqArgs};
use crate::error::{fail_with_hint, hinted, undo_create};
use crate::output::{Fields, Out, Payload};
use crate::serve::{Flow, Messages, Server, Waited};
use crate::sys::{UmaskGuard, insert_ownership, read_proc_u64};
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

/// Which end of the queue a command uses.
#[derive(Clone, Copy)]
enum Access {
    Read,
    Write,
}

/// Attributes for a queue this call creates.
struct Create {
    mode: FileMode,
    max_msgs: u32,
    msg_size: u32,
}

/// Open `name`, creating it with `create` when missing. Returns the queue and
/// whether this call created it. An existing queue is used as it is.
fn open_or_create(name: &PosixName, access: Access, create: &Create) -> Result<(PosixMq, bool)> {
    let options = |o: &mut OpenOptions| {
        o.nonblocking();
    };
    // Two rounds: the queue may be unlinked between our EEXIST and our open.
    for _ in 0..2 {
        let mut new = match access {
            Access::Read => OpenOptions::readonly(),
            Access::Write => OpenOptions::writeonly(),
        };
        options(&mut new);
        new.create_new()
            .mode(create.mode.bits())
            .capacity(create.max_msgs as usize)
            .max_msg_len(create.msg_size as usize);
        let made = {
            let _umask = UmaskGuard::clear();
            new.open(name.as_str())
        };
        match made {
            Ok(mq) => return Ok((mq, true)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(create_error(e, create))
                    .with_context(|| format!("cannot create queue {name}"));
            }
        }
        match open_existing(name, access) {
            Ok(mq) => return Ok((mq, false)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot open queue {name}")),
        }
    }
    bail!("cannot open queue {name}: it was removed and recreated while opening it")
}

fn open_existing(name: &PosixName, access: Access) -> io::Result<PosixMq> {
    let mut o = match access {
        Access::Read => OpenOptions::readonly(),
        Access::Write => OpenOptions::writeonly(),
    };
    o.existing().nonblocking().open(name.as_str())
}

/// The kernel's ceilings, which no sysctl raises (ipc/mqueue.c).
const HARD_MSGMAX: u64 = 65536;
const HARD_MSGSIZEMAX: u64 = 16 * 1024 * 1024;

/// Name the limit behind a failed mq_open(O_CREAT).
fn create_error(e: io::Error, create: &Create) -> anyhow::Error {
    let Some(errno) = e.raw_os_error().map(Errno::from_raw) else {
        return e.into();
    };
    let proc = |f: &str| read_proc_u64(&format!("/proc/sys/fs/mqueue/{f}"));
    match errno {
        Errno::EINVAL => {
            let msg_max = proc("msg_max");
            let msgsize_max = proc("msgsize_max");
            let hint = match (msg_max, msgsize_max) {
                _ if u64::from(create.max_msgs) > HARD_MSGMAX => format!(
                    "--max-msgs {} is above the kernel's hard limit of {HARD_MSGMAX} messages (HARD_MSGMAX)",
                    create.max_msgs
                ),
                _ if u64::from(create.msg_size) > HARD_MSGSIZEMAX => format!(
                    "--msg-size {} is above the kernel's hard limit of {HARD_MSGSIZEMAX} bytes (HARD_MSGSIZEMAX)",
                    create.msg_size
                ),
                (Some(m), _) if u64::from(create.max_msgs) > m => format!(
                    "--max-msgs {} is above /proc/sys/fs/mqueue/msg_max ({m}; root may go up to \
                     {HARD_MSGMAX}); raise it or ask for fewer",
                    create.max_msgs
                ),
                (_, Some(s)) if u64::from(create.msg_size) > s => format!(
                    "--msg-size {} is above /proc/sys/fs/mqueue/msgsize_max ({s}; root may go up to \
                     {HARD_MSGSIZEMAX}); raise it or ask for less",
                    create.msg_size
                ),
                _ => "--max-msgs and --msg-size must be within /proc/sys/fs/mqueue/msg_max and msgsize_max"
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
                "/proc/sys/fs/mqueue/queues_max ({}) queues exist already; remove unused ones",
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
fn open_for(args: &PosixMsqArgs, access: Access) -> Result<(PosixMq, bool, posixmq::Attributes)> {
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

/// posixmq predates `AsFd`: borrow the descriptor it owns.
fn fd(mq: &PosixMq) -> BorrowedFd<'_> {
    // SAFETY: on Linux an mqd_t is a file descriptor, owned by `mq`, which
    // outlives the borrow.
    unsafe { BorrowedFd::borrow_raw(mq.as_raw_fd()) }
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
                match server.wait(Some((fd(&mq), PollFlags::POLLIN)), None)? {
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
            posixmq::remove_queue(name.as_str())
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
fn send(mq: &PosixMq, priority: u32, msg: &[u8], nonblock: bool, out: &mut Out) -> Result<()> {
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
                let mut fds = [PollFd::new(fd(mq), PollFlags::POLLOUT)];
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
    match posixmq::remove_queue(name.as_str()) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            bail!("cannot remove queue {name}: no such queue")
        }
        Err(e) => return Err(e).with_context(|| format!("cannot remove queue {name}")),
    }
    out.removed("posix-msq", "queue", name)?;
    Ok(ExitCode::SUCCESS)
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
    let st = fstat(fd(&mq)).with_context(|| format!("cannot stat queue {name}"))?;
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
    use super::queue_cost;

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
