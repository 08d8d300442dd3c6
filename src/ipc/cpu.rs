//! A cheap clock for the bench's per-round-trip timing.

/// A monotonic tick counter: the TSC on x86-64 (constant rate on every CPU
/// this runs on; a vDSO clock_gettime costs several times more per round
/// trip), nanoseconds elsewhere. Only differences are meaningful, scaled
/// by a wall-clock time.
///
/// # References
/// [RDTSC](https://www.felixcloutier.com/x86/rdtsc)
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn ticks() -> u64 {
    // SAFETY: RDTSC exists on every x86-64 CPU and has no memory effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
pub fn ticks() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
}
