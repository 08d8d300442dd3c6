//! `demo sorted`: a server keeps a shared array sorted while a client
//! appends random numbers to it. Both take an atomic busy flag with a
//! compare-and-swap before they touch the array: a spin lock, cheap when
//! held briefly, and it works across processes with no kernel object.
//! The parent is the server; the client is a forked child.

use std::process::ExitCode;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::kind;
use super::records::{Array, SortedResult, SortedStart};
use super::shared::{Header, align64, mix, process_gone, region};
use crate::children::{Children, Ended, spawn};
use crate::output::Out;
use crate::signal::Cancel;
use crate::spec::Sorted as SortedArgs;

crate::shared_struct! {
    struct Sorted {
        header: Header,
        /// The spin lock: 0 free, else the holder's pid, so a waiter can tell
        /// that the holder died with it (the kernel releases a spin lock never,
        /// unlike a robust mutex or a SEM_UNDO semaphore).
        busy: AtomicU32,
        /// Numbers in `data`.
        len: AtomicU32,
        /// Set by the client after its last append.
        client_done: AtomicU32,
        _pad: AtomicU32,
        /// Loop turns spent waiting for the lock, both sides.
        spins: AtomicU64,
    }
}

/// The shared state and its two arrays: the sorted data and the client's
/// own log of what it appended, to check the data against at the end.
struct View<'r> {
    head: &'r Sorted,
    data: &'r [AtomicI64],
    log: &'r [AtomicI64],
}

impl View<'_> {
    /// Take the lock, or give up when `abort` says so (checked every 1024
    /// turns) or when its holder has died.
    fn lock(&self, abort: impl Fn() -> bool) -> Result<()> {
        let me = std::process::id();
        let mut spins = 0u64;
        loop {
            let busy = &self.head.busy;
            match busy.compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => break,
                Err(holder) => {
                    spins += 1;
                    if spins % 1024 == 0 {
                        if abort() {
                            bail!("canceled while waiting for the lock");
                        }
                        if holder != 0 && process_gone(holder) {
                            bail!("the lock holder (pid {holder}) died holding it");
                        }
                    }
                    if spins % 64 == 0 {
                        std::thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                }
            }
        }
        self.head.spins.fetch_add(spins, Ordering::Relaxed);
        Ok(())
    }

    fn unlock(&self) {
        self.head.busy.store(0, Ordering::Release);
    }

    fn snapshot(&self, n: usize) -> Vec<i64> {
        self.data[..n]
            .iter()
            .map(|v| v.load(Ordering::Relaxed))
            .collect()
    }
}

pub fn run(args: &SortedArgs, out: &mut Out) -> Result<ExitCode> {
    let cancel = Cancel::install().context("cannot install signal handlers")?;
    let count = args.count as usize;
    let interval = args.interval;
    let data_at = align64(size_of::<Sorted>());
    let log_at = data_at + align64(count * size_of::<i64>());
    let size = log_at + count * size_of::<i64>();
    let region = region(size)?;
    let view = View {
        head: region.at(0)?,
        data: region.slice(data_at, count)?,
        log: region.slice(log_at, count)?,
    };
    view.head.header.init(kind::SORTED, size);

    out.line(&SortedStart {
        demo: "sorted",
        count,
    })?;
    out.flush()?;

    let seed = mix(u64::from(std::process::id())
        ^ Instant::now().elapsed().as_nanos() as u64
        ^ now_nanos());
    let mut children = spawn(1, |_| {
        if view.head.header.check(kind::SORTED, size).is_err() {
            return 3;
        }
        append(&view, seed, count, interval)
    })?;

    let start = Instant::now();
    if serve(&view, &mut children, &cancel, interval, out)? == Ended::Canceled {
        drop(children);
        out.canceled()?;
        return Ok(ExitCode::SUCCESS);
    }
    check(&view, count, start.elapsed(), out)
}

/// The client: append `count` random numbers under the lock, one every
/// `interval`; the exit status.
fn append(view: &View<'_>, seed: u64, count: usize, interval: Duration) -> i32 {
    let mut x = seed;
    for i in 0..count {
        x = mix(x);
        let v = (x % 1000) as i64;
        if view.lock(|| false).is_err() {
            return 4;
        }
        let n = view.head.len.load(Ordering::Relaxed) as usize;
        view.data[n].store(v, Ordering::Relaxed);
        view.log[i].store(v, Ordering::Relaxed);
        view.head.len.store(n as u32 + 1, Ordering::Relaxed);
        view.unlock();
        if !interval.is_zero() {
            std::thread::sleep(interval);
        }
    }
    view.head.client_done.store(1, Ordering::Release);
    0
}

/// The server: sort what the client appended, whenever it grew, until the
/// client is done and the child has exited (or Ctrl-C).
fn serve(
    view: &View<'_>,
    children: &mut Children,
    cancel: &Cancel,
    interval: Duration,
    out: &mut Out,
) -> Result<Ended> {
    let mut sorted_len = 0usize;
    let poll = (interval / 2).clamp(Duration::from_millis(1), Duration::from_millis(50));
    loop {
        let done = view.head.client_done.load(Ordering::Acquire) == 1;
        if let Err(e) = view.lock(|| cancel.is_canceled()) {
            if cancel.is_canceled() {
                return Ok(Ended::Canceled);
            }
            return Err(e);
        }
        let n = view.head.len.load(Ordering::Relaxed) as usize;
        if n > sorted_len {
            sort_locked(view, n, out)?;
            sorted_len = n;
        } else {
            view.unlock();
        }
        // `done` was read before the lock: everything appended is in `n`.
        if done && sorted_len == n {
            children.wait(cancel, Duration::from_millis(100), || Ok(()))?;
            return Ok(Ended::Done);
        }
        match children.wait_once(cancel, poll)? {
            Some(Ended::Canceled) => return Ok(Ended::Canceled),
            // The child exited: the next turn sorts what it left and ends.
            Some(Ended::Done) | None => {}
        }
    }
}

/// Sort the first `n` numbers, which the caller holds the lock on, and
/// release it; print the array before and after.
fn sort_locked(view: &View<'_>, n: usize, out: &mut Out) -> Result<()> {
    let mut numbers = view.snapshot(n);
    let printed = out.event(&Array {
        sorted: false,
        n,
        array: &numbers,
    });
    numbers.sort_unstable();
    for (slot, v) in view.data.iter().zip(&numbers) {
        slot.store(*v, Ordering::Relaxed);
    }
    view.unlock();
    printed?;
    out.event(&Array {
        sorted: true,
        n,
        array: &numbers,
    })?;
    out.flush()?;
    Ok(())
}

/// The claim: sorted, and exactly the numbers the client appended.
fn check(view: &View<'_>, count: usize, elapsed: Duration, out: &mut Out) -> Result<ExitCode> {
    let n = view.head.len.load(Ordering::Acquire) as usize;
    let final_data = view.snapshot(n);
    let mut appended: Vec<i64> = view.log.iter().map(|v| v.load(Ordering::Relaxed)).collect();
    appended.sort_unstable();
    let is_sorted = final_data.is_sorted();
    let complete = final_data == appended;
    let spins = view.head.spins.load(Ordering::Relaxed);
    out.line(&SortedResult {
        demo: "sorted",
        n,
        count,
        sorted: is_sorted,
        complete,
        spins,
        ms: super::ms(elapsed),
    })?;
    if !is_sorted || !complete {
        bail!("the shared array is wrong at the end");
    }
    Ok(ExitCode::SUCCESS)
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
