//! SIGINT and SIGTERM as something a server can wait on.
//!
//! posixmq's `recv`/`send` and most blocking calls retry EINTR, so a flag set
//! by a handler would never wake a server blocked in the kernel. Instead the
//! handler (signal-hook) writes to a self-pipe, and every wait polls that pipe
//! together with the object's own descriptor. A call that has no descriptor
//! (msgrcv, msgsnd) is ended by an [`Interrupter`] instead.

use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll, ppoll};
use nix::sys::pthread::{Pthread, pthread_kill, pthread_self};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::time::TimeSpec;
use signal_hook::consts::{SIGALRM, SIGINT, SIGTERM};

/// How often an [`Interrupter`] that was triggered interrupts its thread,
/// until it is dropped: the longest a call entered just after the signal
/// blocks.
const KICK_EVERY: Duration = Duration::from_millis(5);

/// Why a wait returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The descriptor is ready.
    Ready,
    /// SIGINT or SIGTERM arrived.
    Canceled,
    /// The timeout passed.
    TimedOut,
}

pub struct Cancel {
    flag: Arc<AtomicBool>,
    pipe: UnixStream,
}

impl Cancel {
    /// Route SIGINT and SIGTERM to this object for the rest of the process.
    pub fn install() -> io::Result<Cancel> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [SIGINT, SIGTERM] {
            signal_hook::flag::register(sig, Arc::clone(&flag))?;
            signal_hook::low_level::pipe::register(sig, write.try_clone()?)?;
        }
        Ok(Cancel { flag, pipe: read })
    }

    /// An [`Interrupter`] of the calling thread, triggered by SIGINT or
    /// SIGTERM.
    pub fn interrupter(&self) -> io::Result<Interrupter> {
        Interrupter::new(self.pipe.try_clone()?)
    }

    pub fn is_canceled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Wait until `fd` is ready for `events`, a signal arrives, or `timeout`
    /// passes (`None`: no limit).
    pub fn wait(
        &self,
        fd: Option<(BorrowedFd<'_>, PollFlags)>,
        timeout: Option<Duration>,
    ) -> io::Result<Wake> {
        loop {
            if self.is_canceled() {
                return Ok(Wake::Canceled);
            }
            let mut fds = vec![PollFd::new(self.pipe.as_fd(), PollFlags::POLLIN)];
            if let Some((fd, events)) = fd {
                fds.push(PollFd::new(fd, events));
            }
            let ts = timeout.map(TimeSpec::from_duration);
            match ppoll(&mut fds, ts, None) {
                Ok(0) => return Ok(Wake::TimedOut),
                Ok(_) => {
                    if self.is_canceled() {
                        return Ok(Wake::Canceled);
                    }
                    if fds.len() > 1 && fds[1].any().unwrap_or(false) {
                        return Ok(Wake::Ready);
                    }
                    // Only the pipe woke us but the flag is unset: cannot
                    // happen with this handler order; drain and wait again.
                    let mut byte = [0u8; 64];
                    let _ = io::Read::read(&mut &self.pipe, &mut byte);
                }
                // A signal interrupted the poll: the loop rechecks the flag.
                // The timeout restarts, which only lengthens a wait that a
                // caller bounds with its own deadline anyway.
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Give SIGALRM a handler (once per process): its default action kills,
/// and it is only ever sent to end a blocking call with EINTR (System V
/// calls are never restarted, SA_RESTART or not, signal(7)).
pub fn catch_alarm() -> io::Result<()> {
    static CAUGHT: AtomicBool = AtomicBool::new(false);
    if !CAUGHT.load(Ordering::SeqCst) {
        // The flag is not needed, only the EINTR.
        signal_hook::flag::register(SIGALRM, Arc::new(AtomicBool::new(false)))?;
        CAUGHT.store(true, Ordering::SeqCst);
    }
    Ok(())
}

/// Ends a blocking call of the thread that made it (msgrcv, which has no
/// descriptor to poll with the signal pipe) once `trigger` becomes readable,
/// even when the signal lands between the caller's look at the cancel flag
/// and the call: the handler has run by then, and the call would block until
/// the next message.
///
/// A watcher thread sleeps in poll on `trigger` (a clone of the signal
/// pipe), so nothing wakes while idle. Once it is readable, the watcher
/// sends SIGALRM to the thread (pthread_kill) every [`KICK_EVERY`] until
/// this guard is dropped: a call entered after any one kick is ended by the
/// next. The watcher blocks SIGINT, SIGTERM and SIGALRM, so signals sent to
/// the process (Ctrl-C, `kill`, a timer) still go to the blocking thread.
///
/// Not `Send`: dropped on the thread it interrupts, which is therefore
/// alive for every kick.
pub struct Interrupter {
    /// Dropped to tell the watcher to stop.
    stop: Option<UnixStream>,
    watcher: Option<JoinHandle<()>>,
    _same_thread: PhantomData<*const ()>,
}

impl Interrupter {
    fn new(trigger: UnixStream) -> io::Result<Interrupter> {
        catch_alarm()?;
        let target = pthread_self();
        let (stop, stopped) = UnixStream::pair()?;
        // A thread starts with its creator's mask: block first, so that no
        // signal reaches the watcher before it would block them itself.
        let mask = SigSet::from_iter([Signal::SIGINT, Signal::SIGTERM, Signal::SIGALRM]);
        let old = mask.thread_swap_mask(SigmaskHow::SIG_BLOCK)?;
        let watcher = std::thread::Builder::new()
            .name("interrupter".into())
            .spawn(move || watch(&trigger, &stopped, target));
        old.thread_set_mask()?;
        Ok(Interrupter {
            stop: Some(stop),
            watcher: Some(watcher?),
            _same_thread: PhantomData,
        })
    }
}

impl Drop for Interrupter {
    /// Stop the watcher and wait for it: no kick comes after this.
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.join();
        }
    }
}

/// The watcher: wait for `trigger` or `stop`, then kick `target` until
/// `stop` (its other end dropped: POLLHUP).
fn watch(trigger: &UnixStream, stop: &UnixStream, target: Pthread) {
    let triggered = loop {
        let mut fds = [
            PollFd::new(trigger.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) if fds[1].any().unwrap_or(true) => break false,
            Ok(_) if fds[0].any().unwrap_or(false) => break true,
            // Only on a kernel short of memory: try again a little later.
            Ok(_) | Err(_) => std::thread::sleep(KICK_EVERY),
        }
    };
    if !triggered {
        return;
    }
    loop {
        if pthread_kill(target, Signal::SIGALRM).is_err() {
            return;
        }
        let mut fds = [PollFd::new(stop.as_fd(), PollFlags::POLLIN)];
        let every = PollTimeout::try_from(KICK_EVERY).unwrap_or(PollTimeout::MAX);
        if matches!(poll(&mut fds, every), Ok(n) if n > 0) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;
    use crate::ipc::Owned;
    use crate::ipc::sysv_msq::{MsgBuf, SysvQueue};

    /// The case a flag alone cannot catch: the trigger comes before the
    /// call blocks, and the call must still end.
    #[test]
    fn a_trigger_before_the_call_still_ends_it() {
        let q = Owned::new(SysvQueue::private(0o600).unwrap());
        let (trigger, fire) = UnixStream::pair().unwrap();
        let guard = Interrupter::new(trigger).unwrap();
        (&fire).write_all(b"x").unwrap();
        let mut buf = MsgBuf::with_capacity(8);
        assert_eq!(q.recv(&mut buf, 0, true), Err(Errno::EINTR));
        // Still kicking until dropped: the next call ends too.
        assert_eq!(q.recv(&mut buf, 0, true), Err(Errno::EINTR));
        drop(guard);
    }

    #[test]
    fn an_untriggered_interrupter_stops_when_dropped() {
        let (trigger, _fire) = UnixStream::pair().unwrap();
        drop(Interrupter::new(trigger).unwrap());
    }
}
