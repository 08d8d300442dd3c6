//! SIGINT and SIGTERM as something a server can wait on.
//!
//! posixmq's `recv`/`send` and most blocking calls retry EINTR, so a flag set
//! by a handler would never wake a server blocked in the kernel. Instead the
//! handler (signal-hook) writes to a self-pipe, and every wait polls that pipe
//! together with the object's own descriptor.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::time::TimeSpec;
use signal_hook::consts::{SIGINT, SIGTERM};

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
