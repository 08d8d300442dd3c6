//! Which kernel object: one identity for every command. A [`Kind`] is one
//! of the six families × mechanisms, its names are spelled here once, and
//! an [`ObjectRef`] is a kind with the name, key or id that finds the
//! object again. `ls`, `clean`, `tour`, `bench`, the demos and the tests'
//! clean-up all speak of objects through these.

use std::fmt;
use std::str::FromStr;

use crate::output::escape_bytes;
use crate::target::{IpcId, PosixName, SysvKey};

/// POSIX (named by a path-like name) or System V (found by key or id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Posix,
    Sysv,
}

/// What an object does: carry messages, share memory, count units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mech {
    Msq,
    Shm,
    Sem,
}

/// The six kinds of IPC object this tool knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    PosixMsq,
    PosixShm,
    PosixSem,
    SysvMsq,
    SysvShm,
    SysvSem,
}

impl Kind {
    /// Every kind, in the order `ls` lists them.
    pub const ALL: [Kind; 6] = [
        Kind::PosixMsq,
        Kind::PosixShm,
        Kind::PosixSem,
        Kind::SysvMsq,
        Kind::SysvShm,
        Kind::SysvSem,
    ];

    pub fn new(family: Family, mech: Mech) -> Kind {
        match (family, mech) {
            (Family::Posix, Mech::Msq) => Kind::PosixMsq,
            (Family::Posix, Mech::Shm) => Kind::PosixShm,
            (Family::Posix, Mech::Sem) => Kind::PosixSem,
            (Family::Sysv, Mech::Msq) => Kind::SysvMsq,
            (Family::Sysv, Mech::Shm) => Kind::SysvShm,
            (Family::Sysv, Mech::Sem) => Kind::SysvSem,
        }
    }

    /// The `mechanism` field of every JSON record: `posix-msq`, ... The
    /// only place these names are spelled.
    pub fn mechanism(self) -> &'static str {
        match self {
            Kind::PosixMsq => "posix-msq",
            Kind::PosixShm => "posix-shm",
            Kind::PosixSem => "posix-sem",
            Kind::SysvMsq => "sysv-msq",
            Kind::SysvShm => "sysv-shm",
            Kind::SysvSem => "sysv-sem",
        }
    }

    pub fn family(self) -> Family {
        match self {
            Kind::PosixMsq | Kind::PosixShm | Kind::PosixSem => Family::Posix,
            Kind::SysvMsq | Kind::SysvShm | Kind::SysvSem => Family::Sysv,
        }
    }

    pub fn mech(self) -> Mech {
        match self {
            Kind::PosixMsq | Kind::SysvMsq => Mech::Msq,
            Kind::PosixShm | Kind::SysvShm => Mech::Shm,
            Kind::PosixSem | Kind::SysvSem => Mech::Sem,
        }
    }

    pub fn is_posix(self) -> bool {
        self.family() == Family::Posix
    }

    /// The words of its command: `["posix", "msq"]`.
    pub fn words(self) -> [&'static str; 2] {
        let family = match self.family() {
            Family::Posix => "posix",
            Family::Sysv => "sysv",
        };
        let mech = match self.mech() {
            Mech::Msq => "msq",
            Mech::Shm => "shm",
            Mech::Sem => "sem",
        };
        [family, mech]
    }

    /// The object in words: "queue", "segment" or "semaphore".
    pub fn what(self) -> &'static str {
        match self.mech() {
            Mech::Msq => "queue",
            Mech::Shm => "segment",
            Mech::Sem => "semaphore",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mechanism())
    }
}

/// As its mechanism name: `"posix-msq"`.
impl serde::Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.mechanism())
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Kind, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.mechanism() == s)
            .ok_or_else(|| format!("'{s}' is not a kind of object (posix-msq, ..., sysv-sem)"))
    }
}

/// How an object is found again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addr {
    /// A POSIX object's name.
    Name(PosixName),
    /// A System V key.
    Key(SysvKey),
    /// A System V id (what `ipcrm -q ID` takes; also the only handle on an
    /// IPC_PRIVATE object).
    Id(IpcId),
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Name(name) => write!(f, "{name}"),
            Addr::Key(key) => write!(f, "key {key}"),
            Addr::Id(id) => write!(f, "id {id}"),
        }
    }
}

/// One kernel object: its kind and how to find it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    pub kind: Kind,
    pub addr: Addr,
}

impl ObjectRef {
    pub fn posix(kind: Kind, name: PosixName) -> ObjectRef {
        debug_assert!(kind.is_posix());
        ObjectRef {
            kind,
            addr: Addr::Name(name),
        }
    }

    pub fn sysv_key(kind: Kind, key: SysvKey) -> ObjectRef {
        debug_assert!(!kind.is_posix());
        ObjectRef {
            kind,
            addr: Addr::Key(key),
        }
    }

    pub fn sysv_id(kind: Kind, id: IpcId) -> ObjectRef {
        debug_assert!(!kind.is_posix());
        ObjectRef {
            kind,
            addr: Addr::Id(id),
        }
    }
}

/// An object as text names it: its name escaped (it may hold an ESC or a
/// newline), else its key, else `id N`; empty with none of them.
pub fn label(name: Option<&str>, key: Option<&str>, id: Option<impl fmt::Display>) -> String {
    match (name, key) {
        (Some(name), _) => escape_bytes(name.as_bytes()),
        (None, Some(key)) => key.to_string(),
        (None, None) => id.map(|id| format!("id {id}")).unwrap_or_default(),
    }
}

impl fmt::Display for ObjectRef {
    /// `posix-shm /name`, `sysv-msq key 0x000000c8`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_is_the_name_escaped_else_the_key_else_the_id() {
        assert_eq!(label(Some("/a\nb"), Some("0x1"), Some(3)), "/a\\x0ab");
        assert_eq!(label(None, Some("0x000000c8"), Some(3)), "0x000000c8");
        assert_eq!(label(None, None, Some(7)), "id 7");
        assert_eq!(label(None, None, None::<u64>), "");
    }

    #[test]
    fn names_are_spelled_once_and_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(kind.mechanism().parse::<Kind>(), Ok(kind));
            assert_eq!(Kind::new(kind.family(), kind.mech()), kind);
        }
        assert!("posix".parse::<Kind>().is_err());
    }
}
