//! `--dump`: a segment's bytes as `xxd` prints them, and `--diff`: which
//! byte ranges changed between two reads.
//!
//! The rendering is byte-for-byte `xxd`'s default (and `xxd -o BASE`'s
//! when the dump starts at an offset): the offset as at least 8 hex
//! digits and a colon, 16 bytes per line in groups of 2, the hex column
//! padded to full width, two spaces, then the bytes as ASCII with `.` for
//! anything outside 0x20..=0x7e. Its output is plain ASCII, so a segment's
//! bytes can never put escape sequences on the terminal.

use std::fmt;
use std::io;

/// Bytes per line, as xxd.
pub const WIDTH: usize = 16;

/// One line of a dump: up to [`WIDTH`] bytes and the offset of the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HexLine<'a> {
    pub offset: u64,
    pub bytes: &'a [u8],
}

/// The lines of `bytes`, the first at offset `base`.
pub fn lines(bytes: &[u8], base: u64) -> impl Iterator<Item = HexLine<'_>> {
    bytes
        .chunks(WIDTH)
        .enumerate()
        .map(move |(i, chunk)| HexLine {
            offset: base.wrapping_add((i * WIDTH) as u64),
            bytes: chunk,
        })
}

/// The ASCII column's character for a byte.
fn shown(b: u8) -> char {
    if (0x20..=0x7e).contains(&b) {
        b as char
    } else {
        '.'
    }
}

impl HexLine<'_> {
    /// The bytes as lowercase hex, no separators: for `--json`.
    pub fn hex(&self) -> String {
        self.bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The ASCII column.
    pub fn ascii(&self) -> String {
        self.bytes.iter().copied().map(shown).collect()
    }
}

impl fmt::Display for HexLine<'_> {
    /// `00000010: 7320 6973 2061 2074 6573 7400 01ff 7e20  s is a test...~ `
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}: ", self.offset)?;
        for i in 0..WIDTH {
            match self.bytes.get(i) {
                Some(b) => write!(f, "{b:02x}")?,
                None => f.write_str("  ")?,
            }
            if i % 2 == 1 {
                f.write_str(" ")?;
            }
        }
        f.write_str(" ")?;
        for &b in self.bytes {
            write!(f, "{}", shown(b))?;
        }
        Ok(())
    }
}

/// Write the dump of `bytes` (first offset `base`), one line each.
///
/// # Errors
/// The write error of `out`.
pub fn write(out: &mut impl io::Write, bytes: &[u8], base: u64) -> io::Result<()> {
    for line in lines(bytes, base) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// The dump as one string.
pub fn render(bytes: &[u8], base: u64) -> String {
    let mut s = String::with_capacity(bytes.len().div_ceil(WIDTH) * 68);
    for line in lines(bytes, base) {
        use fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = writeln!(s, "{line}");
    }
    s
}

/// The byte ranges `start..end` where `new` differs from `old`, in order;
/// runs of changed bytes less than `gap` apart are merged into one range
/// (`gap` 1: only adjacent ones). Bytes only one of them has (the segment
/// grew or shrank) count as changed.
///
/// Merging happens during the scan: a segment whose every other byte
/// changed would otherwise hold one range per changed byte, 16 bytes of
/// memory for each of its bytes.
pub fn changed_ranges(old: &[u8], new: &[u8], gap: usize) -> Vec<(usize, usize)> {
    // Equal 64-byte blocks are skipped with one comparison each, so a
    // large segment with a small change costs about a memcmp.
    const BLOCK: usize = 64;
    let gap = gap.max(1);
    let common = old.len().min(new.len());
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut push = |start: usize, stop: usize| match ranges.last_mut() {
        Some((_, end)) if start - *end < gap => *end = stop,
        _ => ranges.push((start, stop)),
    };
    let mut at = 0;
    while at < common {
        let end = (at + BLOCK).min(common);
        if old[at..end] != new[at..end] {
            for i in at..end {
                if old[i] != new[i] {
                    push(i, i + 1);
                }
            }
        }
        at = end;
    }
    let longer = old.len().max(new.len());
    if longer > common {
        push(common, longer);
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte value, a short last line, and text.
    fn sample() -> Vec<u8> {
        let mut v: Vec<u8> = (0..=255).collect();
        v.extend_from_slice(b"hello\nworld, this is a test\x00\x01\xff~ \x7f");
        v
    }

    #[test]
    fn lines_look_like_xxd() {
        let text = b"hello\nworld, this is a test\x00\x01\xff~ \x7f";
        assert_eq!(
            render(text, 0),
            "00000000: 6865 6c6c 6f0a 776f 726c 642c 2074 6869  hello.world, thi\n\
             00000010: 7320 6973 2061 2074 6573 7400 01ff 7e20  s is a test...~ \n\
             00000020: 7f                                       .\n"
        );
        assert_eq!(
            render(b"abc", 1 << 32),
            "100000000: 6162 63                                  abc\n"
        );
        assert_eq!(render(b"", 0), "");
        let mut out = Vec::new();
        write(&mut out, &sample(), 3).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), render(&sample(), 3));
        let line = lines(b"A\x00", 7).next().unwrap();
        assert_eq!(
            (line.offset, line.hex(), line.ascii()),
            (7, "4100".into(), "A.".into())
        );
    }

    /// The real xxd, when it is installed, agrees byte for byte.
    #[test]
    fn equals_xxd_when_present() {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let bytes = sample();
        for base in [0u64, 5, 0xffff_fff0] {
            let child = Command::new("xxd")
                .args(["-o", &base.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn();
            let Ok(mut child) = child else {
                return; // No xxd here: the fixed strings above are the test.
            };
            child.stdin.take().unwrap().write_all(&bytes).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success());
            assert_eq!(String::from_utf8(out.stdout).unwrap(), render(&bytes, base));
        }
    }

    #[test]
    fn changed_runs_are_merged() {
        let old = vec![0u8; 300];
        let mut new = old.clone();
        new[3] = 1;
        new[4] = 1;
        new[6] = 1;
        new[100..170].fill(9);
        assert_eq!(changed_ranges(&old, &new, 1), [(3, 5), (6, 7), (100, 170)]);
        assert_eq!(changed_ranges(&old, &new, 4), [(3, 7), (100, 170)]);
        assert_eq!(changed_ranges(&old, &old, 1), []);
        // Every other byte: one range, not one per byte.
        let alternate: Vec<u8> = (0..300).map(|i| (i % 2) as u8).collect();
        assert_eq!(changed_ranges(&old, &alternate, 2), [(1, 300)]);
        // Grown or shrunk: the tail is a change, joined to a run before it.
        let mut longer = old.clone();
        longer.extend_from_slice(&[0, 0]);
        assert_eq!(changed_ranges(&old, &longer, 1), [(300, 302)]);
        assert_eq!(changed_ranges(&longer, &old, 1), [(300, 302)]);
        new[299] = 5;
        assert_eq!(changed_ranges(&new, &longer, 1)[3], (299, 302));
        assert_eq!(changed_ranges(b"", b"ab", 1), [(0, 2)]);
    }
}
