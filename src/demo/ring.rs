//! `demo ring`: P producers and one consumer over a ring of S slots in
//! shared memory. Two counting semaphores hand out slots: `empty` (starts at
//! S) and `full` (starts at 0). One producer owns the head; several claim
//! positions with a compare-and-swap on it. Because a producer that claimed
//! position h may finish after the one that claimed h + 1, each slot carries
//! a sequence number the producer publishes last and the consumer waits for.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::kind;
use super::records::{RingResult, RingStart};
use super::shared::{HeadAndSlots, Header, SemCell, mix, spin_until};
use crate::children::{Ended, spawn};
use crate::output::Out;
use crate::signal::Cancel;
use crate::spec::Ring as RingArgs;

crate::shared_struct! {
    struct Ring {
        header: Header,
        slots: AtomicU32,
        producers: AtomicU32,
        items: AtomicU64,
        /// Next position to fill (monotonic; the slot is head % slots).
        head: AtomicU64,
        empty: SemCell,
        full: SemCell,
        /// Filled in by the consumer when it is done.
        received: AtomicU64,
        bad_checksum: AtomicU64,
        duplicates: AtomicU64,
        missing: AtomicU64,
        consumer_ns: AtomicU64,
        /// Failed compare-and-swaps: how often two producers raced for a slot.
        cas_retries: AtomicU64,
    }
}

crate::shared_struct! {
    struct Slot {
        /// Position + 1 once the producer has written the slot (0: never).
        seq: AtomicU64,
        producer: AtomicU64,
        index: AtomicU64,
        value: AtomicU64,
        checksum: AtomicU64,
    }
}

/// The item producer `p` sends as its `k`-th, and its checksum.
fn item(p: u64, k: u64) -> (u64, u64) {
    let value = mix((p << 40) ^ k);
    (value, checksum(p, k, value))
}

fn checksum(p: u64, k: u64, value: u64) -> u64 {
    mix(value ^ mix(p.wrapping_mul(31).wrapping_add(k)))
}

pub fn run(args: &RingArgs, out: &mut Out) -> Result<ExitCode> {
    let cancel = Cancel::install().context("cannot install signal handlers")?;
    let producers = args.producers as u64;
    let items = args.items;
    let nslots = args.slots as usize;
    let layout = HeadAndSlots::<Ring, Slot>::new(nslots)?;
    let (ring, slots) = layout.parts()?;
    let size = layout.size();
    ring.slots.store(args.slots, Ordering::Relaxed);
    ring.producers.store(args.producers, Ordering::Relaxed);
    ring.items.store(items, Ordering::Relaxed);
    ring.empty
        .init(args.slots)
        .context("cannot initialise a semaphore")?;
    ring.full.init(0).context("cannot initialise a semaphore")?;
    ring.header.init(kind::RING, size);

    out.line(&RingStart {
        demo: "ring",
        producers,
        items,
        slots: nslots,
        slot_bytes: size_of::<Slot>(),
    })?;
    out.flush()?;

    let start = Instant::now();
    let mut children = spawn(producers as usize + 1, |i| {
        if ring.header.check(kind::RING, size).is_err() {
            return 3;
        }
        let outcome = if i as u64 == producers {
            consume(ring, slots, producers, items)
        } else {
            produce(ring, slots, i as u64, items, producers > 1)
        };
        match outcome {
            Ok(()) => 0,
            Err(_) => 4,
        }
    })?;
    let ended = children.wait(&cancel, Duration::from_millis(100), || Ok(()))?;
    let wall = start.elapsed();
    if ended == Ended::Canceled {
        drop(children);
        out.canceled()?;
        return Ok(ExitCode::SUCCESS);
    }

    report(ring, nslots, wall, out)
}

/// The consumer's account of the run, and the verdict.
fn report(ring: &Ring, nslots: usize, wall: Duration, out: &mut Out) -> Result<ExitCode> {
    let producers = u64::from(ring.producers.load(Ordering::Relaxed));
    let items = ring.items.load(Ordering::Relaxed);
    let total = producers * items;
    let received = ring.received.load(Ordering::Acquire);
    let bad = ring.bad_checksum.load(Ordering::Relaxed);
    let dups = ring.duplicates.load(Ordering::Relaxed);
    let missing = ring.missing.load(Ordering::Relaxed);
    let retries = ring.cas_retries.load(Ordering::Relaxed);
    let consumer = Duration::from_nanos(ring.consumer_ns.load(Ordering::Relaxed));
    let rate = received as f64 / consumer.as_secs_f64().max(1e-9);
    let result = RingResult {
        demo: "ring",
        producers,
        items,
        slots: nslots,
        expected: total,
        received,
        bad_checksum: bad,
        duplicates: dups,
        missing,
        cas_retries: retries,
        ms: super::ms(consumer),
        wall_ms: super::ms(wall),
        items_per_sec: rate.round(),
        ns_per_item: consumer.as_nanos() as f64 / received.max(1) as f64,
    };
    out.line(&result)?;
    if !result.ok() {
        bail!("the ring lost, duplicated or corrupted items");
    }
    Ok(ExitCode::SUCCESS)
}

fn produce(
    ring: &Ring,
    slots: &[Slot],
    p: u64,
    items: u64,
    cas: bool,
) -> Result<(), nix::errno::Errno> {
    let n = slots.len() as u64;
    let mut retries = 0;
    for k in 0..items {
        // A free slot exists for us once `empty` is taken.
        ring.empty.wait()?;
        let pos = if cas {
            let mut h = ring.head.load(Ordering::Relaxed);
            loop {
                match ring
                    .head
                    .compare_exchange_weak(h, h + 1, Ordering::AcqRel, Ordering::Relaxed)
                {
                    Ok(_) => break h,
                    Err(now) => {
                        retries += 1;
                        h = now;
                    }
                }
            }
        } else {
            let h = ring.head.load(Ordering::Relaxed);
            ring.head.store(h + 1, Ordering::Relaxed);
            h
        };
        let slot = &slots[(pos % n) as usize];
        let (value, sum) = item(p, k);
        slot.producer.store(p, Ordering::Relaxed);
        slot.index.store(k, Ordering::Relaxed);
        slot.value.store(value, Ordering::Relaxed);
        slot.checksum.store(sum, Ordering::Relaxed);
        // Release: the consumer that sees this sequence sees the fields.
        slot.seq.store(pos + 1, Ordering::Release);
        ring.full.post()?;
    }
    ring.cas_retries.fetch_add(retries, Ordering::Relaxed);
    Ok(())
}

fn consume(
    ring: &Ring,
    slots: &[Slot],
    producers: u64,
    items: u64,
) -> Result<(), nix::errno::Errno> {
    let start = Instant::now();
    let n = slots.len() as u64;
    let total = producers * items;
    // One bit per item: 64 producers x 10 million items fit in 80 MB.
    let mut seen = vec![0u64; (total as usize).div_ceil(64)];
    let (mut received, mut bad, mut dups) = (0u64, 0u64, 0u64);
    for pos in 0..total {
        ring.full.wait()?;
        let slot = &slots[(pos % n) as usize];
        // `full` says some slot is ready; with several producers this one
        // may still be half-written: wait for its sequence number.
        spin_until(|| slot.seq.load(Ordering::Acquire) == pos + 1);
        let p = slot.producer.load(Ordering::Relaxed);
        let k = slot.index.load(Ordering::Relaxed);
        let value = slot.value.load(Ordering::Relaxed);
        let sum = slot.checksum.load(Ordering::Relaxed);
        ring.empty.post()?;
        received += 1;
        if p >= producers || k >= items || checksum(p, k, value) != sum || item(p, k).0 != value {
            bad += 1;
            continue;
        }
        let at = (p * items + k) as usize;
        let (word, bit) = (at / 64, 1u64 << (at % 64));
        if seen[word] & bit != 0 {
            dups += 1;
        }
        seen[word] |= bit;
    }
    let arrived: u64 = seen.iter().map(|w| u64::from(w.count_ones())).sum();
    let missing = total - arrived;
    ring.consumer_ns
        .store(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    ring.bad_checksum.store(bad, Ordering::Relaxed);
    ring.duplicates.store(dups, Ordering::Relaxed);
    ring.missing.store(missing, Ordering::Relaxed);
    ring.received.store(received, Ordering::Release);
    Ok(())
}
