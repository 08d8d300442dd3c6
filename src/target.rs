//! Names, keys, ids and other values parsed from the command line. Every
//! check lives in a `FromStr`, so clap refuses bad input with exit 2 before
//! anything touches the kernel.

use std::fmt;
use std::num::IntErrorKind;
use std::str::FromStr;
use std::time::Duration;

/// NAME_MAX on Linux: the longest file name in /dev/shm or /dev/mqueue.
pub const NAME_MAX: usize = 255;

/// A POSIX IPC name: one leading '/', then 1..=NAME_MAX bytes without '/' or NUL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PosixName(String);

impl PosixName {
    /// The name with its leading '/', as mq_open, shm_open and sem_open take it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name without its leading '/': the file name under /dev/shm or /dev/mqueue.
    pub fn file_name(&self) -> &str {
        &self.0[1..]
    }
}

/// For text: escaped, since a name may hold any byte but '/' and NUL (an
/// ESC, a newline). JSON takes the exact `as_str()`.
impl fmt::Display for PosixName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::output::Escaped(&self.0).fmt(f)
    }
}

impl FromStr for PosixName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bare = component(s, "name")?;
        if bare == "." || bare == ".." {
            return Err(format!("'{s}' is not a valid object name"));
        }
        Ok(PosixName(format!("/{bare}")))
    }
}

/// The checks a name and a prefix share: `s` without its optional leading
/// '/' must be one non-empty path component of at most NAME_MAX bytes.
fn component<'a>(s: &'a str, noun: &str) -> Result<&'a str, String> {
    let bare = s.strip_prefix('/').unwrap_or(s);
    if bare.is_empty() {
        return Err(format!("a {noun} needs at least one character after '/'"));
    }
    if bare.contains('/') {
        return Err(format!(
            "'{s}' has a '/' after the first character; POSIX IPC names are one path component"
        ));
    }
    if bare.contains('\0') {
        return Err(format!("a {noun} cannot contain a NUL byte"));
    }
    if bare.len() > NAME_MAX {
        return Err(format!(
            "the {noun} is {} bytes long; the limit is NAME_MAX ({NAME_MAX})",
            bare.len()
        ));
    }
    Ok(bare)
}

/// The start of POSIX IPC names, for `--prefix`: one leading '/', then at
/// least one byte, so that no prefix selects every object. A '.' is allowed
/// (`/.` selects hidden names); a '/' is not, as no name could match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosixPrefix(String);

impl PosixPrefix {
    /// The prefix with its leading '/'.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PosixPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PosixPrefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bare = component(s, "prefix")?;
        Ok(PosixPrefix(format!("/{bare}")))
    }
}

/// A System V IPC key: any non-zero 32-bit value. `key_t` is a signed int,
/// but ipcs prints keys as unsigned hex, so both spellings are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SysvKey(pub crate::ipc::Key);

impl SysvKey {
    pub fn raw(self) -> crate::ipc::Key {
        self.0
    }
}

impl fmt::Display for SysvKey {
    /// As ipcs prints it: `0x` and eight hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::ipc::sysv::key_hex(self.0))
    }
}

impl FromStr for SysvKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let value: i64 = if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            i64::from_str_radix(hex, 16)
                .map_err(|_| format!("'{s}' is not a hex key (0x1 to 0xffffffff)"))?
        } else {
            t.parse::<i64>()
                .map_err(|_| format!("'{s}' is not a key: give a decimal or 0x hex number"))?
        };
        if value == 0 {
            return Err(
                "key 0 is IPC_PRIVATE: an object made with it cannot be found again".into(),
            );
        }
        if !(i64::from(i32::MIN)..=i64::from(u32::MAX)).contains(&value) {
            return Err(format!("key '{s}' does not fit in 32 bits"));
        }
        // Wrapping is the point: 0xffffffff and -1 name the same key_t.
        Ok(SysvKey(value as u32 as i32))
    }
}

/// A System V object id as ipcs prints it (msqid, shmid, semid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpcId(pub crate::ipc::Id);

impl fmt::Display for IpcId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for IpcId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse::<crate::ipc::Id>()
            .ok()
            .filter(|id| *id >= 0)
            .map(IpcId)
            .ok_or_else(|| {
                format!(
                    "'{s}' is not an id: give a number from 0 to {}",
                    crate::ipc::Id::MAX
                )
            })
    }
}

/// A non-negative number of seconds, fractions allowed (`0.25`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seconds(pub Duration);

impl Seconds {
    pub fn duration(self) -> Duration {
        self.0
    }
}

/// As the user would write it: `1`, `0.25` (the parser's defaults show so).
impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_secs_f64())
    }
}

impl FromStr for Seconds {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let secs: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("'{s}' is not a number of seconds"))?;
        if !secs.is_finite() || secs < 0.0 {
            return Err(format!("'{s}' is not a non-negative number of seconds"));
        }
        // A year is far beyond any sensible wait and keeps Duration arithmetic safe.
        if secs > 365.0 * 24.0 * 3600.0 {
            return Err(format!("'{s}' seconds is more than a year"));
        }
        Ok(Seconds(Duration::from_secs_f64(secs)))
    }
}

/// An unsigned integer type a [`ranged`] option holds.
pub trait Whole: Copy + Into<u64> + TryFrom<u64> + Send + Sync + 'static {
    const MAX: Self;
}

impl Whole for u32 {
    const MAX: Self = u32::MAX;
}

impl Whole for u64 {
    const MAX: Self = u64::MAX;
}

/// The value parser of a whole-number option from `min` to `max`. clap's own
/// `value_parser!(u32).range(..)` would say `40000 is not in 0..32768`, Rust
/// syntax; this says `must be between 0 and 32767`, and clap still wraps it
/// as `invalid value '40000' for '--priority <P>': ...` with exit 2. A
/// range open at the top (`max` is the type's largest value) is `at least`.
pub fn ranged<T: Whole>(min: T, max: T) -> impl Fn(&str) -> Result<T, String> + Clone {
    let (lo, hi) = (min.into(), max.into());
    move |s: &str| {
        let open_top = hi == T::MAX.into();
        // What a value on either side of the range must be. A range open at
        // the top names only the side that was crossed.
        let must = |too_large: bool| match (open_top, too_large) {
            (false, _) => format!("must be between {lo} and {hi}"),
            (true, false) => format!("must be at least {lo}"),
            (true, true) => format!("must be at most {hi}"),
        };
        // i128 holds every u64 and its negatives: an integer too long for it
        // is out of range as well, anything else is not a number.
        let value = match s.parse::<i128>() {
            Ok(v) => v,
            Err(e) if *e.kind() == IntErrorKind::PosOverflow => return Err(must(true)),
            Err(e) if *e.kind() == IntErrorKind::NegOverflow => return Err(must(false)),
            Err(_) if !open_top => {
                return Err(format!("must be a whole number between {lo} and {hi}"));
            }
            Err(_) if lo > 0 => return Err(format!("must be a whole number, at least {lo}")),
            Err(_) => return Err("must be a whole number".into()),
        };
        if value < i128::from(lo) {
            return Err(must(false));
        }
        u64::try_from(value)
            .ok()
            .filter(|v| *v <= hi)
            .and_then(|v| T::try_from(v).ok())
            .ok_or_else(|| must(true))
    }
}

/// Permission bits in octal, at most 0777.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl FileMode {
    pub fn bits(self) -> u32 {
        self.0
    }
}

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl FromStr for FileMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.trim().trim_start_matches("0o");
        u32::from_str_radix(digits, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .map(FileMode)
            .ok_or_else(|| format!("'{s}' is not an octal mode from 0 to 0777"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!("test".parse::<PosixName>().unwrap().as_str(), "/test");
        assert_eq!("/test".parse::<PosixName>().unwrap().file_name(), "test");
        for bad in ["", "/", "/a/b", "a/b", "//", "/.", "/.."] {
            assert!(bad.parse::<PosixName>().is_err(), "{bad}");
        }
        assert!("x".repeat(255).parse::<PosixName>().is_ok());
        assert!("x".repeat(256).parse::<PosixName>().is_err());
        let odd = "/a\x1b[31m\nb\u{9b}é".parse::<PosixName>().unwrap();
        assert_eq!(odd.to_string(), "/a\\x1b[31m\\x0ab\\xc2\\x9bé");
        assert_eq!(odd.as_str(), "/a\x1b[31m\nb\u{9b}é");
    }

    #[test]
    fn prefixes() {
        assert_eq!("a".parse::<PosixPrefix>().unwrap().as_str(), "/a");
        assert_eq!("/a".parse::<PosixPrefix>().unwrap().as_str(), "/a");
        assert_eq!("/.".parse::<PosixPrefix>().unwrap().as_str(), "/.");
        for bad in ["", "/", "//", "/a/", "a/b", "/a\0"] {
            let err = bad.parse::<PosixPrefix>().unwrap_err();
            assert!(
                err.contains("prefix") || err.contains("path component"),
                "{bad}: {err}"
            );
        }
        assert!("x".repeat(256).parse::<PosixPrefix>().is_err());
    }

    #[test]
    fn keys() {
        assert_eq!("200".parse::<SysvKey>().unwrap().raw(), 200);
        assert_eq!("-1".parse::<SysvKey>().unwrap().raw(), -1);
        assert_eq!("0xffffffff".parse::<SysvKey>().unwrap().raw(), -1);
        assert_eq!(
            "0x8badf00d".parse::<SysvKey>().unwrap().to_string(),
            "0x8badf00d"
        );
        assert_eq!("4294967295".parse::<SysvKey>().unwrap().raw(), -1);
        for bad in [
            "0",
            "0x0",
            "0x100000000",
            "4294967296",
            "-2147483649",
            "x",
            "0x",
            "",
        ] {
            assert!(bad.parse::<SysvKey>().is_err(), "{bad}");
        }
    }

    #[test]
    fn seconds_and_modes() {
        assert_eq!(
            "0.25".parse::<Seconds>().unwrap().0,
            Duration::from_millis(250)
        );
        assert!("-1".parse::<Seconds>().is_err());
        assert!("nan".parse::<Seconds>().is_err());
        assert!("inf".parse::<Seconds>().is_err());
        assert_eq!("0644".parse::<FileMode>().unwrap().0, 0o644);
        assert!("0800".parse::<FileMode>().is_err());
        assert!("01777".parse::<FileMode>().is_err());
    }

    #[test]
    fn ranged_values_say_what_they_must_be() {
        let priority = ranged::<u32>(0, 32767);
        assert_eq!(priority("0"), Ok(0));
        assert_eq!(priority("32767"), Ok(32767));
        assert_eq!(
            priority("32768").unwrap_err(),
            "must be between 0 and 32767"
        );
        assert_eq!(priority("-1").unwrap_err(), "must be between 0 and 32767");
        let huge = "9".repeat(60);
        assert_eq!(priority(&huge).unwrap_err(), "must be between 0 and 32767");
        for junk in ["", "x", "1.5", "0x10", " 5"] {
            assert_eq!(
                priority(junk).unwrap_err(),
                "must be a whole number between 0 and 32767",
                "{junk:?}"
            );
        }
        let at_least = ranged::<u32>(1, u32::MAX);
        assert_eq!(at_least("0").unwrap_err(), "must be at least 1");
        assert_eq!(at_least("4294967295"), Ok(u32::MAX));
        assert_eq!(
            at_least("4294967296").unwrap_err(),
            "must be at most 4294967295"
        );
        assert_eq!(
            at_least("x").unwrap_err(),
            "must be a whole number, at least 1"
        );
        let any = ranged::<u64>(0, u64::MAX);
        assert_eq!(any("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            any("18446744073709551616").unwrap_err(),
            "must be at most 18446744073709551615"
        );
        assert_eq!(any("x").unwrap_err(), "must be a whole number");
        // No Rust range syntax, whatever the input.
        for input in ["-5", "0", "99999999999", "x"] {
            for parse in [&priority, &at_least] {
                if let Err(e) = parse(input) {
                    assert!(!e.contains(".."), "{input}: {e}");
                }
            }
        }
    }
}
