//! CPU placement and CPU time of the bench's processes.

use anyhow::{Result, bail};
use nix::unistd::Pid;

pub(super) fn allowed_cpus() -> Result<Vec<usize>> {
    let set = nix::sched::sched_getaffinity(Pid::from_raw(0))?;
    let cpus: Vec<usize> = (0..nix::sched::CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .collect();
    if cpus.is_empty() {
        bail!("no CPU in the affinity mask");
    }
    Ok(cpus)
}

pub(super) fn set_affinity(cpu: usize) -> nix::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(Pid::from_raw(0), &set)
}

pub(super) fn restore_affinity(cpus: &[usize]) {
    let mut set = nix::sched::CpuSet::new();
    for &c in cpus {
        let _ = set.set(c);
    }
    let _ = nix::sched::sched_setaffinity(Pid::from_raw(0), &set);
}

pub(super) fn current_cpu() -> i32 {
    nix::sched::sched_getcpu().map_or(-1, |cpu| cpu as i32)
}

fn cpu_ns(clock: nix::time::ClockId) -> u64 {
    nix::time::clock_gettime(clock)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// user+sys of the calling thread (the watchdog's sleeps are not counted).
pub(super) fn thread_cpu_ns() -> f64 {
    cpu_ns(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID) as f64
}

/// user+sys of the whole (single-threaded) child.
pub(super) fn process_cpu_ns() -> u64 {
    cpu_ns(nix::time::ClockId::CLOCK_PROCESS_CPUTIME_ID)
}
