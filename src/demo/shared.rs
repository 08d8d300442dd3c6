//! What every demo shares: an anonymous shared mapping made before `fork`
//! with a checked header, a named semaphore that is unlinked as soon as
//! every process has it, and the child processes themselves. The handles
//! (mapping, semaphores, fork) live in `ipc`.
//!
//! Anonymous `MAP_SHARED` memory has no name, so nothing can be left behind
//! by a crash or Ctrl-C: the kernel frees it when the last process that maps
//! it exits.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use anyhow::{Context, Result, bail, ensure};
use nix::errno::Errno;

use crate::ipc::Owned;
pub use crate::ipc::mapping::Mapping;
use crate::ipc::mapping::Shared;
use crate::ipc::posix_sem::NamedSem;
pub use crate::ipc::posix_sem::SemCell;

/// "EIPCDEMO" in the first eight bytes of every layout, so a dump of the
/// memory says what it is.
pub const MAGIC: u64 = u64::from_be_bytes(*b"EIPCDEMO");
/// Bumped whenever a layout changes: a process built from other code refuses it.
pub const VERSION: u32 = 1;

crate::shared_struct! {
    /// The start of every demo layout: magic number, layout version, which
    /// demo, and the size of the whole region, checked by every process
    /// that attaches.
    pub struct Header {
        magic: AtomicU64,
        version: AtomicU32,
        kind: AtomicU32,
        size: AtomicU64,
    }
}

impl Header {
    /// Written by the process that made the region, before any other attaches.
    pub fn init(&self, kind: u32, size: usize) {
        self.kind.store(kind, Ordering::Relaxed);
        self.size.store(size as u64, Ordering::Relaxed);
        self.version.store(VERSION, Ordering::Relaxed);
        // Release: whoever sees the magic sees the rest.
        self.magic.store(MAGIC, Ordering::Release);
    }

    /// Refuse a region that is not this demo's layout at this version.
    pub fn check(&self, kind: u32, size: usize) -> Result<()> {
        let magic = self.magic.load(Ordering::Acquire);
        ensure!(
            magic == MAGIC,
            "bad magic number {magic:#018x}, expected {MAGIC:#018x}"
        );
        let version = self.version.load(Ordering::Relaxed);
        ensure!(
            version == VERSION,
            "layout version {version}, this program knows {VERSION}"
        );
        let k = self.kind.load(Ordering::Relaxed);
        ensure!(k == kind, "the region belongs to demo {k}, not {kind}");
        let s = self.size.load(Ordering::Relaxed);
        ensure!(s == size as u64, "the region is {s} bytes, expected {size}");
        Ok(())
    }
}

/// An anonymous `MAP_SHARED` region of `len` zeroed bytes: made before
/// `fork`, it is the same memory in every child.
pub fn region(len: usize) -> Result<Mapping> {
    Mapping::anonymous(len).with_context(|| format!("cannot map {len} bytes of shared memory"))
}

/// Round `n` up to a multiple of 64 (a cache line), for the next part of a layout.
pub fn align64(n: usize) -> usize {
    n.div_ceil(64) * 64
}

/// A region laid out as one `H` (the demo's header and shared words) and,
/// from the next cache line, `n` slots of `S`: the ring's slots, the
/// scoreboard's worker rows.
pub struct HeadAndSlots<H, S> {
    region: Mapping,
    size: usize,
    slots_at: usize,
    n: usize,
    parts: PhantomData<fn() -> (H, S)>,
}

impl<H: Shared, S: Shared> HeadAndSlots<H, S> {
    /// Map the region, zeroed (see [`region`]).
    pub fn new(n: usize) -> Result<Self> {
        let slots_at = align64(size_of::<H>());
        let size = slots_at + n * size_of::<S>();
        Ok(HeadAndSlots {
            region: region(size)?,
            size,
            slots_at,
            n,
            parts: PhantomData,
        })
    }

    /// The size of the whole region in bytes, as its `Header` records it.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The head and the slots.
    pub fn parts(&self) -> Result<(&H, &[S])> {
        Ok((
            self.region.at(0)?,
            self.region.slice(self.slots_at, self.n)?,
        ))
    }
}

/// A POSIX named semaphore that exists by name only between its creation
/// and `remove_now`: processes forked in between inherit it, and the guard
/// unlinks it however the demo ends. `sem_open(name, O_CREAT|O_EXCL, 0600,
/// value)`; a semaphore left by an earlier run that crashed between its
/// create and its unlink (same pid, so same name) is stale: it is unlinked
/// and replaced. Returns whether that happened.
pub fn named_sem(name: &str, value: u32) -> Result<(Owned<NamedSem>, bool)> {
    let mut replaced = false;
    for _ in 0..2 {
        match NamedSem::create(name, 0o600, value) {
            Ok(sem) => return Ok((Owned::new(sem), replaced)),
            Err(Errno::EEXIST) => {
                let _ = NamedSem::remove_name(name);
                replaced = true;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot create semaphore {name}")),
        }
    }
    bail!("cannot create semaphore {name}: it keeps reappearing")
}

/// Unlink the name of a semaphore every process has now: it lives on in
/// each of them.
pub fn unlink_now(sem: &mut Owned<NamedSem>) -> Result<()> {
    let name = sem.name().to_string();
    sem.remove_now()
        .with_context(|| format!("cannot unlink semaphore {name}"))
}

/// `sem_wait`, retried on EINTR.
pub fn sem_wait(sem: &NamedSem) -> Result<(), Errno> {
    loop {
        match sem.wait() {
            Err(Errno::EINTR) => continue,
            done => return done,
        }
    }
}

/// A small fast generator for the demos' numbers (splitmix64).
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Whether process `pid` has ended (gone, or a zombie not yet reaped).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_none_or(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
        Err(_) => true,
    }
}

/// Spin on `f` with a pause, yielding the CPU now and then: on a 2-core
/// machine the process we wait for may need our core.
pub fn spin_until(mut f: impl FnMut() -> bool) -> u64 {
    let mut spins = 0u64;
    while !f() {
        spins += 1;
        if spins % 64 == 0 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
    spins
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_start_on_the_cache_line_after_the_head() {
        // A 72-byte head takes two cache lines; three 12-byte slots follow.
        let layout = HeadAndSlots::<[AtomicU64; 9], [AtomicU32; 3]>::new(3).unwrap();
        assert_eq!(layout.size(), 128 + 3 * 12);
        let (head, slots) = layout.parts().unwrap();
        assert_eq!(slots.len(), 3);
        let gap = slots.as_ptr() as usize - std::ptr::from_ref(head) as usize;
        assert_eq!(gap, 128);
    }
}
