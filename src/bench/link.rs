//! The two ends of each mechanism, made before fork and used one per process.
//!
//! Every handle here is a small RAII type: Drop closes or unmaps, and the
//! only objects that have names (a FIFO, POSIX queues, named semaphores) are
//! unlinked right after they were opened, before fork, so nothing is left
//! behind whatever happens afterwards. The System V queue has no name
//! (IPC_PRIVATE) but lives until IPC_RMID, so it sits in an `Owned` guard.

use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::ipc::fifo::{self, End, Fifo};
use crate::ipc::futex;
use crate::ipc::mapping::Mapping;
use crate::ipc::posix_mq::{Access, PosixQueue, QueueOptions};
use crate::ipc::posix_sem::NamedSem;
use crate::ipc::sysv_msq::{MsgBuf, SysvQueue};
use crate::ipc::{Creation, Owned, Remove};
use crate::ipc::{socket, splice};

/// Transport of one message of a fixed size in one direction pair.
pub trait Link {
    /// Send all of `msg`.
    fn send(&mut self, msg: &[u8]) -> io::Result<()>;
    /// Receive exactly `buf.len()` bytes (one message).
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()>;
}

/// Set in the parent when the watchdog gives up on the run; spin and wait
/// loops look at it so that no loop outlives its peer.
pub type Abort = Arc<AtomicBool>;

fn aborted() -> io::Error {
    io::Error::other("aborted")
}

fn end_of_file() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the other side closed its end",
    )
}

// ---------------------------------------------------------------- streams

/// A byte stream: pipe, FIFO or socket. Messages are framed by size.
pub struct FdLink {
    rx: OwnedFd,
    tx: OwnedFd,
    abort: Abort,
}

impl FdLink {
    fn new(rx: OwnedFd, tx: OwnedFd, abort: &Abort) -> FdLink {
        FdLink {
            rx,
            tx,
            abort: abort.clone(),
        }
    }

    #[inline]
    fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        nix::unistd::read(&self.rx, buf).map_err(io::Error::from)
    }

    #[inline]
    fn write_some(&self, buf: &[u8]) -> io::Result<usize> {
        nix::unistd::write(&self.tx, buf).map_err(io::Error::from)
    }
}

impl Link for FdLink {
    fn send(&mut self, mut msg: &[u8]) -> io::Result<()> {
        while !msg.is_empty() {
            match self.write_some(msg) {
                Ok(n) => msg = &msg[n..],
                Err(e)
                    if e.kind() == io::ErrorKind::Interrupted
                        && !self.abort.load(Ordering::Relaxed) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn recv(&mut self, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_some(buf) {
                Ok(0) => return Err(end_of_file()),
                Ok(n) => buf = &mut buf[n..],
                Err(e)
                    if e.kind() == io::ErrorKind::Interrupted
                        && !self.abort.load(Ordering::Relaxed) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe().context("cannot create a pipe")
}

/// Two pipes: parent -> child and child -> parent.
pub fn pipes(abort: &Abort) -> Result<(FdLink, FdLink)> {
    Ok(fd_links(abort, pipe()?, pipe()?))
}

/// The parent's and the child's link over two one-way channels, each a
/// (read end, write end) pair: `down` carries parent -> child, `up` back.
fn fd_links(abort: &Abort, down: (OwnedFd, OwnedFd), up: (OwnedFd, OwnedFd)) -> (FdLink, FdLink) {
    (
        FdLink::new(up.0, down.1, abort),
        FdLink::new(down.0, up.1, abort),
    )
}

/// A stream socket pair (one socket each).
pub fn unix_pair(abort: &Abort) -> Result<(FdLink, FdLink)> {
    let (a, b) = std::os::unix::net::UnixStream::pair().context("cannot create a socket pair")?;
    let (a, b) = (OwnedFd::from(a), OwnedFd::from(b));
    let a2 = a.try_clone().context("cannot duplicate a socket")?;
    let b2 = b.try_clone().context("cannot duplicate a socket")?;
    Ok((FdLink::new(a, a2, abort), FdLink::new(b, b2, abort)))
}

/// A TCP connection over loopback (127.0.0.1) with Nagle's algorithm off
/// on both ends (TCP_NODELAY), so each message leaves at once.
pub fn tcp(abort: &Abort) -> Result<(FdLink, FdLink)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("cannot listen on a port of 127.0.0.1")?;
    let addr = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let a = TcpStream::connect(addr).with_context(|| format!("cannot connect to {addr}"))?;
    let me = a.local_addr().context("cannot read the local address")?;
    // Another local process may connect first: take only our connection,
    // which is already queued, so accept does not wait for long.
    let b = loop {
        let (b, peer) = listener
            .accept()
            .with_context(|| format!("cannot accept on {addr}"))?;
        if peer == me {
            break b;
        }
    };
    for s in [&a, &b] {
        s.set_nodelay(true)
            .context("cannot set TCP_NODELAY on a loopback connection")?;
    }
    let (a, b) = (OwnedFd::from(a), OwnedFd::from(b));
    let a2 = a.try_clone().context("cannot duplicate a socket")?;
    let b2 = b.try_clone().context("cannot duplicate a socket")?;
    Ok((FdLink::new(a, a2, abort), FdLink::new(b, b2, abort)))
}

/// A pipe pair whose writers hand over their pages with vmsplice(2)
/// instead of copying them into the pipe; the readers read(2) as from any
/// pipe, which copies the bytes once, from the writer's pages into the
/// reader's buffer. A pingpong sender touches its buffer again only after
/// the reply, which proves the reader read it.
pub struct SpliceLink(FdLink);

impl Link for SpliceLink {
    fn send(&mut self, mut msg: &[u8]) -> io::Result<()> {
        while !msg.is_empty() {
            match splice::vmsplice(self.0.tx.as_fd(), msg) {
                Ok(n) => msg = &msg[n..],
                Err(Errno::EINTR) if !self.0.abort.load(Ordering::Relaxed) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.0.recv(buf)
    }
}

/// Two pipes written with vmsplice.
pub fn vmsplice_pipes(abort: &Abort) -> Result<(SpliceLink, SpliceLink)> {
    let (p, c) = pipes(abort)?;
    Ok((SpliceLink(p), SpliceLink(c)))
}

/// A datagram socket pair: one `send` is one message, and a receiver sees
/// a datagram whole or not at all.
pub struct DgramLink {
    sock: UnixDatagram,
    abort: Abort,
}

impl Link for DgramLink {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        loop {
            match self.sock.send(msg) {
                Ok(n) if n == msg.len() => return Ok(()),
                Ok(n) => {
                    return Err(io::Error::other(format!(
                        "sent {n} of {} bytes as one datagram",
                        msg.len()
                    )));
                }
                Err(e)
                    if e.kind() == io::ErrorKind::Interrupted
                        && !self.abort.load(Ordering::Relaxed) => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        loop {
            match socket::recv_datagram(self.sock.as_fd(), buf) {
                Ok(n) if n == buf.len() => return Ok(()),
                Ok(n) => {
                    return Err(io::Error::other(format!(
                        "datagram of {n} bytes, expected {}",
                        buf.len()
                    )));
                }
                Err(Errno::EINTR) if !self.abort.load(Ordering::Relaxed) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A datagram socket pair (socketpair(AF_UNIX, SOCK_DGRAM)), one socket
/// each. A datagram socket sees no end of file when its peer dies, so the
/// wake-up shuts the parent's socket down, which ends its wait.
pub fn unix_dgram(abort: &Abort) -> Result<(DgramLink, DgramLink, Wake)> {
    let (a, b) = UnixDatagram::pair().context("cannot create a datagram socket pair")?;
    let mine = a.try_clone().context("cannot duplicate a socket")?;
    let wake = Wake(Box::new(move || {
        let _ = mine.shutdown(std::net::Shutdown::Both);
    }));
    let link = |sock| DgramLink {
        sock,
        abort: abort.clone(),
    };
    Ok((link(a), link(b), wake))
}

/// Why a datagram socket pair refuses `size`-byte messages, if it does:
/// one such datagram is sent (without waiting) and taken back. The kernel
/// refuses a datagram above the socket's send buffer, less a few bytes
/// (EMSGSIZE).
pub fn dgram_refuses(size: usize) -> Option<String> {
    let (a, b) = UnixDatagram::pair().ok()?;
    a.set_nonblocking(true).ok()?;
    let mut buf = vec![0u8; size];
    match a.send(&buf) {
        Ok(_) => {
            let _ = b.recv(&mut buf);
            None
        }
        Err(e) if e.raw_os_error() == Some(Errno::EMSGSIZE as i32) => Some(format!(
            "--size {size} is above the largest datagram a socket pair takes \
             (EMSGSIZE; the limit follows /proc/sys/net/core/wmem_default)"
        )),
        // Anything else shows when the mechanism is set up and measured.
        Err(_) => None,
    }
}

/// Two FIFOs in a private temporary directory. Both ends of each are opened
/// here (read end non-blocking first, so the write open does not wait for a
/// reader), then the FIFOs and the directory are removed at once.
pub fn fifos(abort: &Abort, tag: &str) -> Result<(FdLink, FdLink)> {
    let dir = std::env::temp_dir().join(format!("examples-ipc-bench-{}-{tag}", std::process::id()));
    std::fs::create_dir(&dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))?;
    let made = (|| -> Result<(OwnedFd, OwnedFd, OwnedFd, OwnedFd)> {
        let mut ends = Vec::new();
        for name in ["down", "up"] {
            let path = dir.join(name);
            fifo::create(&path, 0o600)
                .with_context(|| format!("cannot create FIFO {}", path.display()))?;
            // The read end first: a write end opens only with a reader there.
            let rx = Fifo::open(&path, End::Read)
                .with_context(|| format!("cannot open FIFO {}", path.display()))?;
            let tx = Fifo::open(&path, End::Write)
                .with_context(|| format!("cannot open FIFO {}", path.display()))?;
            // Blocking reads and writes from here on, as on any pipe.
            rx.set_blocking()
                .and_then(|()| tx.set_blocking())
                .context("cannot make a FIFO blocking")?;
            ends.push((rx.into_fd(), tx.into_fd()));
        }
        let (up_rx, up_tx) = ends.pop().context("no FIFO")?;
        let (down_rx, down_tx) = ends.pop().context("no FIFO")?;
        Ok((up_rx, down_tx, down_rx, up_tx))
    })();
    // Remove the names whatever happened: open descriptors keep the FIFOs alive.
    let _ = std::fs::remove_file(dir.join("down"));
    let _ = std::fs::remove_file(dir.join("up"));
    let _ = std::fs::remove_dir(&dir);
    let (up_rx, down_tx, down_rx, up_tx) = made?;
    Ok(fd_links(abort, (down_rx, down_tx), (up_rx, up_tx)))
}

// ---------------------------------------------------------- POSIX queues

pub struct MqLink {
    rx: Arc<PosixQueue>,
    tx: Arc<PosixQueue>,
    abort: Abort,
    prio: u32,
}

impl Link for MqLink {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        loop {
            match self.tx.send(0, msg) {
                Err(e)
                    if e.kind() == io::ErrorKind::Interrupted
                        && !self.abort.load(Ordering::Relaxed) => {}
                other => return other,
            }
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        loop {
            match self.rx.recv(buf) {
                Ok((prio, len)) => {
                    self.prio = prio;
                    if self.abort.load(Ordering::Relaxed) {
                        return Err(aborted());
                    }
                    if len != buf.len() {
                        return Err(io::Error::other(format!(
                            "message of {len} bytes, expected {}",
                            buf.len()
                        )));
                    }
                    return Ok(());
                }
                Err(e)
                    if e.kind() == io::ErrorKind::Interrupted
                        && !self.abort.load(Ordering::Relaxed) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Two queues of `size`-byte messages with unique names, unlinked as soon as
/// they are open (the descriptors survive fork).
pub fn posix_queues(abort: &Abort, tag: &str, size: usize) -> Result<(MqLink, MqLink, Wake)> {
    let options = QueueOptions {
        access: Access::ReadWrite,
        nonblocking: false,
        mode: 0o600,
        capacity: 10,
        msg_size: size,
    };
    let open = |dir: &str| -> Result<Arc<PosixQueue>> {
        let name = format!("/examples-ipc-bench-{}-{tag}-{dir}", std::process::id());
        let mq = PosixQueue::open(&name, Creation::CreateNew, &options)
            .map(|opened| opened.handle)
            .map_err(|e| e.into_inner(|| io::ErrorKind::NotFound.into()))
            .with_context(|| format!("cannot create queue {name} for {size}-byte messages"));
        let _ = PosixQueue::remove_name(&name);
        Ok(Arc::new(mq?))
    };
    let down = open("down")?;
    let up = open("up")?;
    let wake_up = up.clone();
    let wake_down = down.clone();
    let wake = Wake(Box::new(move || {
        // Unblock a parent that waits to receive (a message it will reject
        // because the abort flag is set) or to send into a full queue.
        let _ = wake_up.set_nonblocking(true);
        let _ = wake_up.send(0, &vec![0u8; size]);
        let _ = wake_down.set_nonblocking(true);
        let mut buf = vec![0u8; size];
        let _ = wake_down.recv(&mut buf);
    }));
    Ok((
        MqLink {
            rx: up.clone(),
            tx: down.clone(),
            abort: abort.clone(),
            prio: 0,
        },
        MqLink {
            rx: down,
            tx: up,
            abort: abort.clone(),
            prio: 0,
        },
        wake,
    ))
}

// ------------------------------------------------------- System V queue

pub struct SysvLink {
    q: SysvQueue,
    my_type: i64,
    peer_type: i64,
    buf: MsgBuf,
    abort: Abort,
}

impl Link for SysvLink {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.buf.fill(self.peer_type, msg);
        loop {
            match self.q.send(&self.buf, msg.len(), false) {
                Err(Errno::EINTR) if !self.abort.load(Ordering::Relaxed) => {}
                other => return other.map_err(io::Error::from),
            }
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        loop {
            match self.q.recv(&mut self.buf, self.my_type, true) {
                Ok((_, n)) if n == buf.len() => {
                    buf.copy_from_slice(self.buf.text(n));
                    return Ok(());
                }
                Ok((_, n)) => {
                    return Err(io::Error::other(format!(
                        "message of {n} bytes, expected {}",
                        buf.len()
                    )));
                }
                Err(Errno::EINTR) if !self.abort.load(Ordering::Relaxed) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// One private queue (IPC_PRIVATE: no key, so nothing else finds it); type
/// 1 carries parent -> child, type 2 child -> parent. The guard removes the
/// queue (IPC_RMID) when the caller drops it, in the process that made it.
pub fn sysv_queue(
    abort: &Abort,
    size: usize,
) -> Result<(SysvLink, SysvLink, Wake, Owned<SysvQueue>)> {
    let q = SysvQueue::private(0o600).context("cannot create a System V message queue")?;
    let q = Owned::new(q);
    let link = |me, peer| SysvLink {
        q: *q,
        my_type: me,
        peer_type: peer,
        buf: MsgBuf::with_capacity(size),
        abort: abort.clone(),
    };
    let (parent, child) = (link(2, 1), link(1, 2));
    let wq = *q;
    // IPC_RMID wakes every blocked msgsnd and msgrcv with EIDRM.
    let wake = Wake(Box::new(move || {
        let _ = wq.remove();
    }));
    Ok((parent, child, wake, q))
}

// ------------------------------------------------------- shared memory

/// An anonymous shared mapping made before fork: both processes see the
/// same pages and nothing appears in /dev/shm.
pub fn shared_memory(len: usize) -> Result<Arc<Mapping>> {
    let map = Mapping::anonymous(len)
        .map_err(io::Error::from)
        .context("cannot map shared memory")?;
    Ok(Arc::new(map))
}

/// A named POSIX semaphore, unlinked right after sem_open (processes
/// forked afterwards inherit it); Drop only closes.
fn named_sem(name: &str) -> Result<Arc<NamedSem>> {
    let made = NamedSem::create(name, 0o600, 0);
    let _ = NamedSem::remove_name(name);
    let sem = made
        .map_err(io::Error::from)
        .with_context(|| format!("cannot create semaphore {name}"))?;
    Ok(Arc::new(sem))
}

/// How a reader learns that a slot was published.
pub enum Notify {
    /// Busy wait on the sequence word with a pause hint.
    Spin,
    /// FUTEX_WAIT on the sequence word, FUTEX_WAKE after publishing.
    Futex,
    /// sem_wait / sem_post on one named semaphore per direction.
    Sem {
        rx: Arc<NamedSem>,
        tx: Arc<NamedSem>,
    },
    /// read / write of an eventfd counter per direction.
    EventFd { rx: Arc<EventFd>, tx: Arc<EventFd> },
}

fn eventfd_write(fd: &EventFd) -> io::Result<()> {
    fd.write(1).map(drop).map_err(io::Error::from)
}

fn eventfd_read(fd: &EventFd) -> io::Result<()> {
    fd.read().map(drop).map_err(io::Error::from)
}

/// EFD_SEMAPHORE: each read takes one unit, so one read per message holds
/// when several messages are queued (stream).
pub fn eventfd() -> Result<Arc<EventFd>> {
    let fd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_SEMAPHORE)
        .map_err(io::Error::from)
        .context("cannot create an eventfd")?;
    Ok(Arc::new(fd))
}

/// Layout of one direction in the mapping: the writer's sequence word
/// (head) and the reader's (tail) on their own cache lines, then `slots`
/// slots of `size` bytes. Everything starts on a 128-byte boundary: CPUs
/// fetch cache lines in adjacent pairs, and a slot sharing a pair with the
/// other direction's head would add coherence traffic to every message.
/// The two directions start on pages of their own (see [`shm`]). shm-spin
/// publishes through the slot itself and leaves the head unused.
#[derive(Clone, Copy)]
pub struct Ring {
    pub base: usize,
    pub slots: usize,
    pub size: usize,
}

impl Ring {
    pub const HEADER: usize = 256;
    pub fn bytes(&self) -> usize {
        Self::HEADER + self.slots * self.size.next_multiple_of(128)
    }
    pub fn head(&self) -> usize {
        self.base
    }
    fn tail(&self) -> usize {
        self.base + 128
    }
    /// Slot `i` (0 to slots - 1). The links count slots with a wrapping
    /// index rather than take a sequence number modulo `slots`: a division
    /// costs tens of cycles, on the path of every message.
    fn slot(&self, i: usize) -> usize {
        self.base + Self::HEADER + i * self.size.next_multiple_of(128)
    }
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots { 0 } else { i + 1 }
    }
}

/// The first word of a message: shm-spin's publication flag.
const WORD: usize = size_of::<usize>();

/// What the first word of every shm-spin slot holds before its first
/// message: a value the bench's first messages (sequence 0 and its
/// complement) do not start with.
const UNUSED: usize = 0x5eed_5eed_5eed_5eed_u64 as usize;

fn first_word(msg: &[u8]) -> usize {
    let mut w = [0u8; WORD];
    w.copy_from_slice(&msg[..WORD]);
    usize::from_ne_bytes(w)
}

/// Message passing through shared memory: `tx` ring out, `rx` ring in.
pub struct ShmLink {
    map: Arc<Mapping>,
    rx: Ring,
    tx: Ring,
    notify: Notify,
    abort: Abort,
    /// Next sequence number to send / to receive, and their slots.
    sent: u32,
    got: u32,
    tx_i: usize,
    rx_i: usize,
    /// The peer's tail last seen, so a sender rereads it only when the ring
    /// looks full.
    peer_tail: u32,
    /// Streaming: the writer may run ahead, so readers publish their tail
    /// and writers check it. A pingpong needs neither (a side sends only
    /// after the peer consumed its last message), and both would move one
    /// more cache line between the CPUs per message.
    flow: bool,
    /// shm-spin: the first word each slot of `rx` held when last read, and
    /// of `tx` when last written (see [`ShmLink::send_inline`]).
    seen: Vec<usize>,
    written: Vec<usize>,
}

/// The page size the directions are kept apart by.
const PAGE: usize = 4096;

/// Spins between sched_yield calls: progress on a single CPU instead of a
/// time slice per wait.
const SPINS_BEFORE_YIELD: u32 = 1 << 16;

impl ShmLink {
    fn wait_room(&mut self) -> io::Result<()> {
        let tail = self.map.atomic_u32(self.tx.tail());
        let mut spins = 0u32;
        while self.sent.wrapping_sub(self.peer_tail) as usize >= self.tx.slots {
            self.peer_tail = tail.load(Ordering::Acquire);
            if self.sent.wrapping_sub(self.peer_tail) as usize >= self.tx.slots {
                if self.abort.load(Ordering::Relaxed) {
                    return Err(aborted());
                }
                match self.notify {
                    Notify::Futex => {
                        let seen = self.peer_tail;
                        futex::wait(tail, seen);
                    }
                    _ => {
                        spins += 1;
                        if spins % SPINS_BEFORE_YIELD == 0 {
                            let _ = nix::sched::sched_yield();
                        }
                        std::hint::spin_loop();
                    }
                }
            }
        }
        Ok(())
    }
}

impl ShmLink {
    /// shm-spin's send: the message's first word is the flag. The body goes
    /// into the slot first, then the first word with Release; the reader
    /// spins on that word, in the same cache line as the first 56 bytes of
    /// the message, so a 64-byte message moves as one cache line, as the
    /// floor's word does. A separate head word would be a second line to
    /// fetch, after the first, for every message.
    ///
    /// This asks one thing of the messages: the first word of each differs
    /// from that of the message before it in the same slot. The bench's
    /// messages start with their sequence number (a reply with its
    /// complement), so it holds; a message that breaks it is refused,
    /// since the reader could not see it arrive.
    fn send_inline(&mut self, msg: &[u8]) -> io::Result<()> {
        let i = self.tx_i;
        let word = first_word(msg);
        if word == self.written[i] {
            return Err(io::Error::other(
                "shm-spin cannot publish a message whose first word is that of the \
                 last message in its slot",
            ));
        }
        let slot = self.tx.slot(i);
        self.map.write(slot + WORD, &msg[WORD..]);
        self.map.atomic_usize(slot).store(word, Ordering::Release);
        self.written[i] = word;
        self.sent = self.sent.wrapping_add(1);
        self.tx_i = self.tx.next(i);
        Ok(())
    }

    /// shm-spin's receive: spin until the slot's first word changes (with a
    /// pause hint; a sched_yield every 65536 spins, so a peer that shares
    /// the CPU gets to run), then copy the message out.
    fn recv_inline(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let i = self.rx_i;
        let slot = self.rx.slot(i);
        let word = self.map.atomic_usize(slot);
        let old = self.seen[i];
        let mut spins = 0u32;
        let new = loop {
            let w = word.load(Ordering::Acquire);
            if w != old {
                break w;
            }
            spins = spins.wrapping_add(1);
            if spins % 1024 == 0 {
                if self.abort.load(Ordering::Relaxed) {
                    return Err(aborted());
                }
                if spins % SPINS_BEFORE_YIELD == 0 {
                    let _ = nix::sched::sched_yield();
                }
            }
            std::hint::spin_loop();
        };
        self.map.read(slot, buf);
        self.seen[i] = new;
        self.got = self.got.wrapping_add(1);
        self.rx_i = self.rx.next(i);
        Ok(())
    }
}

impl Link for ShmLink {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        if self.flow {
            self.wait_room()?;
        }
        if matches!(self.notify, Notify::Spin) {
            return self.send_inline(msg);
        }
        self.map.write(self.tx.slot(self.tx_i), msg);
        self.tx_i = self.tx.next(self.tx_i);
        self.sent = self.sent.wrapping_add(1);
        let head = self.map.atomic_u32(self.tx.head());
        head.store(self.sent, Ordering::Release);
        match &self.notify {
            Notify::Spin => Ok(()),
            Notify::Futex => {
                futex::wake(head);
                Ok(())
            }
            Notify::Sem { tx, .. } => tx.post().map_err(io::Error::from),
            Notify::EventFd { tx, .. } => eventfd_write(tx),
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let head = self.map.atomic_u32(self.rx.head());
        let want = self.got;
        match &self.notify {
            Notify::Spin => {
                self.recv_inline(buf)?;
                return self.consumed();
            }
            Notify::Futex => {
                while head.load(Ordering::Acquire) == want {
                    if self.abort.load(Ordering::Relaxed) {
                        return Err(aborted());
                    }
                    futex::wait(head, want);
                }
            }
            Notify::Sem { rx, .. } => loop {
                match rx.wait() {
                    Err(Errno::EINTR) if !self.abort.load(Ordering::Relaxed) => {}
                    other => break other.map_err(io::Error::from)?,
                }
            },
            Notify::EventFd { rx, .. } => loop {
                match eventfd_read(rx) {
                    Err(e)
                        if e.kind() == io::ErrorKind::Interrupted
                            && !self.abort.load(Ordering::Relaxed) => {}
                    other => break other?,
                }
            },
        }
        if self.abort.load(Ordering::Relaxed) {
            return Err(aborted());
        }
        // With a semaphore or eventfd the count says a slot is ready; the
        // head says which, and a mismatch is a broken mechanism.
        if head.load(Ordering::Acquire) == want {
            return Err(io::Error::other("woken but no message was published"));
        }
        self.map.read(self.rx.slot(self.rx_i), buf);
        self.rx_i = self.rx.next(self.rx_i);
        self.got = want.wrapping_add(1);
        self.consumed()
    }
}

impl ShmLink {
    /// Streaming: tell the writer the slot is free again.
    fn consumed(&self) -> io::Result<()> {
        if self.flow {
            let tail = self.map.atomic_u32(self.rx.tail());
            tail.store(self.got, Ordering::Release);
            if matches!(self.notify, Notify::Futex) {
                // The writer may sleep on a full ring.
                futex::wake(tail);
            }
        }
        Ok(())
    }
}

/// Kind of shared-memory notification to build.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ShmKind {
    Spin,
    Futex,
    Sem,
    EventFd,
}

/// Two rings in one anonymous mapping. `slots` is 1 for a pingpong.
pub fn shm(
    abort: &Abort,
    kind: ShmKind,
    tag: &str,
    size: usize,
    slots: usize,
) -> Result<(ShmLink, ShmLink, Wake)> {
    let down = Ring {
        base: 0,
        slots,
        size,
    };
    // The directions a page apart: CPUs prefetch the lines next to one
    // they fetch, within its page, and would fetch the other direction's
    // lines, which the other CPU is writing. A minimal spin ping-pong on
    // the machine of docs/bench.md: 118 ns per round trip with both
    // directions in one page, 90 ns a page apart.
    let up = Ring {
        base: down.bytes().next_multiple_of(PAGE),
        slots,
        size,
    };
    let map = shared_memory(up.base + up.bytes())?;
    if kind == ShmKind::Spin {
        for ring in [down, up] {
            for i in 0..slots {
                map.atomic_usize(ring.slot(i))
                    .store(UNUSED, Ordering::Relaxed);
            }
        }
    }
    let (pn, cn, wake) = notifiers(kind, &map, tag, down, up)?;
    let link = |rx, tx, notify| ShmLink {
        map: map.clone(),
        rx,
        tx,
        notify,
        abort: abort.clone(),
        sent: 0,
        got: 0,
        tx_i: 0,
        rx_i: 0,
        peer_tail: 0,
        flow: slots > 1,
        seen: vec![UNUSED; slots],
        written: vec![UNUSED; slots],
    };
    Ok((link(up, down, pn), link(down, up, cn), wake))
}

/// How the parent (first) and the child learn of a message, and how the
/// watchdog wakes a parent that waits for one.
fn notifiers(
    kind: ShmKind,
    map: &Arc<Mapping>,
    tag: &str,
    down: Ring,
    up: Ring,
) -> Result<(Notify, Notify, Wake)> {
    Ok(match kind {
        ShmKind::Spin => (Notify::Spin, Notify::Spin, Wake(Box::new(|| {}))),
        ShmKind::Futex => {
            let m = map.clone();
            let wake = Wake(Box::new(move || {
                futex::wake(m.atomic_u32(up.head()));
                futex::wake(m.atomic_u32(down.tail()));
            }));
            (Notify::Futex, Notify::Futex, wake)
        }
        ShmKind::Sem => {
            let pid = std::process::id();
            let d = named_sem(&format!("/examples-ipc-bench-{pid}-{tag}-down"))?;
            let u = named_sem(&format!("/examples-ipc-bench-{pid}-{tag}-up"))?;
            let wu = u.clone();
            let wake = Wake(Box::new(move || {
                let _ = wu.post();
            }));
            (
                Notify::Sem {
                    rx: u.clone(),
                    tx: d.clone(),
                },
                Notify::Sem { rx: d, tx: u },
                wake,
            )
        }
        ShmKind::EventFd => {
            let d = eventfd()?;
            let u = eventfd()?;
            let wu = u.clone();
            let wake = Wake(Box::new(move || {
                let _ = eventfd_write(&wu);
            }));
            (
                Notify::EventFd {
                    rx: u.clone(),
                    tx: d.clone(),
                },
                Notify::EventFd { rx: d, tx: u },
                wake,
            )
        }
    })
}

/// What the watchdog calls after it set the abort flag and killed the
/// child, to unblock a parent that waits inside the mechanism.
pub struct Wake(pub Box<dyn Fn() + Send + Sync>);
