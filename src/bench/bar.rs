//! The progress bar on standard error: the measured phase of each run.

use std::io::Write as _;
use std::time::Instant;

use super::drive::Stop;

/// A bar named `label` for a run that stops at `stop`.
pub(super) fn progress_bar(label: &str, stop: Stop) -> indicatif::ProgressBar {
    let (len, unit) = match stop {
        Stop::Count(n) => (n, "{pos}/{len}"),
        Stop::Time(d) => (d.as_millis() as u64, "{pos}/{len} ms"),
    };
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::term_like_with_hz(Box::new(BarTerm), 20),
    );
    let style = indicatif::ProgressStyle::with_template(&format!("{{msg:10}} [{{bar:30}}] {unit}"))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(label.to_string());
    // Drawn at once: a `^C` echoed from now on lands on the bar's line,
    // which finish_and_clear erases.
    bar.tick();
    bar
}

/// Where the bar stands: the measured phase only (not the fork, the
/// warmup or the final handshake), never past its length. A timed run
/// checks the clock every 64 messages and so ends a little after its
/// duration; the bar then shows it full.
pub(super) fn bar_position(stop: Stop, progress: u64, measuring_since: Option<Instant>) -> u64 {
    match stop {
        Stop::Count(n) => progress.min(n),
        Stop::Time(d) => {
            let ms = measuring_since.map_or(0, |t| t.elapsed().as_millis());
            ms.min(d.as_millis()) as u64
        }
    }
}

/// The progress bar's terminal: standard error, drawn two columns short of
/// its width.
///
/// indicatif pads the bar's line with blanks to the terminal's width, which
/// leaves the cursor in the last column: a `^C` the terminal echoes there
/// wraps onto a line of its own, and clearing the bar (its one line) would
/// leave the bar on the screen above `canceled.`. With two spare columns
/// the echo stays on the bar's line, and clearing the bar clears it too.
#[derive(Debug)]
struct BarTerm;

impl BarTerm {
    fn put(s: &str) -> std::io::Result<()> {
        std::io::stderr().lock().write_all(s.as_bytes())
    }

    /// CSI n A/B/C/D: the cursor `n` rows or columns up, down, right or
    /// left. Nothing for 0, which a terminal would take as 1.
    fn cursor(n: usize, direction: char) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        Self::put(&format!("\x1b[{n}{direction}"))
    }
}

impl indicatif::TermLike for BarTerm {
    fn width(&self) -> u16 {
        crate::ipc::terminal::stderr_size()
            .map_or(80, |(_, cols)| cols)
            .saturating_sub(2)
            .max(1)
    }

    fn height(&self) -> u16 {
        crate::ipc::terminal::stderr_size().map_or(24, |(rows, _)| rows)
    }

    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        Self::cursor(n, 'A')
    }

    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        Self::cursor(n, 'B')
    }

    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        Self::cursor(n, 'C')
    }

    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        Self::cursor(n, 'D')
    }

    fn write_line(&self, s: &str) -> std::io::Result<()> {
        Self::put(s)?;
        Self::put("\n")
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        Self::put(s)
    }

    fn clear_line(&self) -> std::io::Result<()> {
        Self::put("\r\x1b[2K")
    }

    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bar_position_is_the_measured_phase_clamped_to_the_length() {
        let ms = Duration::from_millis;
        let time = Stop::Time(ms(300));
        // Warmup: nothing measured yet.
        assert_eq!(bar_position(time, 0, None), 0);
        let since = |d| {
            Instant::now()
                .checked_sub(d)
                .expect("a monotonic clock past boot")
        };
        let p = bar_position(time, 0, Some(since(ms(100))));
        assert!((100..=300).contains(&p), "{p}");
        // Measured past its duration (the clock is read every 64 messages):
        // full, never 915/300.
        assert_eq!(bar_position(time, 0, Some(since(ms(915)))), 300);
        assert_eq!(bar_position(Stop::Count(300), 256, None), 256);
        assert_eq!(bar_position(Stop::Count(300), 320, None), 300);
    }
}
