//! The size of a terminal: `ioctl(TIOCGWINSZ)`. nix has no safe wrapper
//! for it, so the call lives here with the crate's other libc calls.

/// Rows and columns of the terminal on standard error.
///
/// `ioctl(2, TIOCGWINSZ)`:
/// [ioctl_tty(2)](https://man7.org/linux/man-pages/man2/ioctl_tty.2.html).
///
/// # Errors
/// None reported: `None` when standard error is not a terminal (ENOTTY) or
/// has no size set (a fresh pseudo-terminal reports 0 by 0).
pub fn stderr_size() -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into `ws`, which outlives the call.
    let r = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}
