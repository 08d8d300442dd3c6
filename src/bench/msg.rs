//! The bench's messages: word 0 is the sequence number, word 1 the
//! checksum of everything after it, and the receiver checks both, so a
//! mechanism that loses, reorders, tears or hands back a message fails the
//! run instead of reporting a fast number.

use anyhow::{Result, anyhow, bail};

/// Sequence numbers of the control messages (never reached by a run).
pub(super) const STOP: u64 = u64::MAX;
pub(super) const SYNC: u64 = u64::MAX - 1;

/// Word 0 is the sequence number, word 1 the checksum of everything else.
pub(super) fn seq_of(msg: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&msg[..8]);
    u64::from_ne_bytes(w)
}

pub(super) fn checksum_of(msg: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&msg[8..16]);
    u64::from_ne_bytes(w)
}

/// Fletcher-style sums over the 64-bit words after the checksum word: any
/// single changed or moved word changes them. Returns (a, b, words).
fn body_sums(msg: &[u8]) -> (u64, u64, u64) {
    let (mut a, mut b, mut n) = (0u64, 0u64, 0u64);
    let mut words = msg[16..].chunks_exact(8);
    for chunk in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        a = a.wrapping_add(u64::from_ne_bytes(w));
        b = b.wrapping_add(a);
        n += 1;
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        a = a.wrapping_add(u64::from_ne_bytes(w));
        b = b.wrapping_add(a);
        n += 1;
    }
    (a, b, n)
}

/// The checksum of a body with sums `sums`. It leaves out word 0, which is
/// compared exactly, so a reply that only changes the sequence number keeps
/// its checksum and can go out before the body was verified.
fn finish((a, b, n): (u64, u64, u64)) -> u64 {
    (a ^ 0x243f_6a88_85a3_08d3).wrapping_add(n) ^ b.rotate_left(29)
}

#[cfg(test)]
fn checksum(msg: &[u8]) -> u64 {
    finish(body_sums(msg))
}

/// A payload that is not all zeros, so a mechanism that loses bytes shows.
pub(super) fn fill(msg: &mut [u8]) {
    for (i, b) in msg.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(7);
    }
}

/// The reference the O(1) `Stamper` must agree with (unit tests).
#[cfg(test)]
/// Write the sequence number (also into the payload, so it changes every
/// message) and the checksum.
fn stamp(msg: &mut [u8], seq: u64) {
    msg[..8].copy_from_slice(&seq.to_ne_bytes());
    if msg.len() >= 24 {
        msg[16..24].copy_from_slice(&seq.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_ne_bytes());
    }
    let sum = checksum(msg);
    msg[8..16].copy_from_slice(&sum.to_ne_bytes());
}

/// Check the sequence number and the checksum; returns the body sums.
pub(super) fn verify(msg: &[u8], want: u64) -> Result<(u64, u64, u64)> {
    let seq = seq_of(msg);
    if seq != want {
        bail!("sequence number {seq:#x}, expected {want:#x}");
    }
    let sums = body_sums(msg);
    if finish(sums) != checksum_of(msg) {
        return Err(anyhow!("checksum mismatch: the data was corrupted"));
    }
    Ok(sums)
}

/// Write the sequence number alone (the checksum does not cover it).
pub(super) fn set_seq(msg: &mut [u8], seq: u64) {
    msg[..8].copy_from_slice(&seq.to_ne_bytes());
}

/// The sender's side of `stamp` in O(1): only word 0 and word 2 change
/// between messages, so the body sums follow from those of the message with
/// word 2 zero. Word 2 is the first body word, part of every prefix sum.
pub(super) struct Stamper {
    base: (u64, u64, u64),
}

impl Stamper {
    pub(super) fn new(msg: &mut [u8]) -> Stamper {
        if msg.len() >= 24 {
            msg[16..24].fill(0);
        }
        Stamper {
            base: body_sums(msg),
        }
    }

    pub(super) fn stamp(&self, msg: &mut [u8], seq: u64) {
        let (a, b, n) = self.base;
        let sums = if msg.len() >= 24 {
            let w2 = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            msg[16..24].copy_from_slice(&w2.to_ne_bytes());
            (a.wrapping_add(w2), b.wrapping_add(w2.wrapping_mul(n)), n)
        } else {
            self.base
        };
        set_seq(msg, seq);
        msg[8..16].copy_from_slice(&finish(sums).to_ne_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_stamps_match_the_reference() {
        for size in [16, 17, 23, 24, 64, 100, 4096] {
            let mut fast = vec![0u8; size];
            fill(&mut fast);
            let stamper = Stamper::new(&mut fast);
            let mut slow = fast.clone();
            for seq in [0, 1, 2, 12345, SYNC, STOP] {
                stamper.stamp(&mut fast, seq);
                stamp(&mut slow, seq);
                assert_eq!(fast, slow, "size {size} seq {seq}");
                verify(&fast, seq).expect("valid");
                set_seq(&mut fast, !seq);
                assert_eq!(checksum(&fast), checksum_of(&fast));
                assert!(verify(&fast, !seq).is_ok());
            }
        }
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let mut msg = vec![0u8; 64];
        fill(&mut msg);
        Stamper::new(&mut msg).stamp(&mut msg, 7);
        for i in 0..msg.len() {
            for bit in 0..8 {
                let mut bad = msg.clone();
                bad[i] ^= 1 << bit;
                assert!(verify(&bad, 7).is_err(), "flip at byte {i} bit {bit}");
            }
        }
    }
}
