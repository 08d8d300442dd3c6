//! Futex wait and wake on a 32-bit word in shared memory, for the bench's
//! shared-memory rings. Process-shared futexes (no FUTEX_PRIVATE_FLAG): the
//! waiter and the waker are different processes mapping the same page.

use std::sync::atomic::AtomicU32;

/// `futex(word, FUTEX_WAIT, expected, NULL)`: sleep while `*word ==
/// expected`, until a `wake` on the word (or a signal, or a spurious
/// wake-up: the caller checks the word again either way).
///
/// The result is not reported: EAGAIN (the word changed already), EINTR
/// and a wake-up all mean "look at the word again".
///
/// # References
/// [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)
#[inline]
pub fn wait(word: &AtomicU32, expected: u32) {
    // SAFETY: `word` is a valid, aligned u32 that outlives the call; no
    // timeout and no second word are read for FUTEX_WAIT.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
}

/// `futex(word, FUTEX_WAKE, INT_MAX)`: wake every waiter on the word.
///
/// # References
/// [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)
#[inline]
pub fn wake(word: &AtomicU32) {
    // SAFETY: as for `wait`; FUTEX_WAKE reads no timeout or second word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX as u32,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
}
