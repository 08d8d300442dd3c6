//! Which objects `ls` and `clean --stale` look at.

use anyhow::Result;

use super::{Kind, Object};
use crate::error::usage;
use crate::object::Mech;
use crate::target::{PosixName, PosixPrefix, SysvKey};

/// The selection options as the user gave them.
#[derive(Debug, Default)]
pub struct Selection {
    pub posix: bool,
    pub sysv: bool,
    pub mech: Option<Mech>,
    /// A user name or uid.
    pub owner: Option<String>,
    pub names: Vec<PosixName>,
    pub prefix: Option<PosixPrefix>,
    pub key: Option<SysvKey>,
}

/// Which objects a command looks at, resolved from a [`Selection`].
#[derive(Debug, Clone)]
pub struct Select {
    posix: bool,
    sysv: bool,
    mech: Option<Mech>,
    owner: Option<u32>,
    /// Exact POSIX names, each with its leading '/'.
    names: Vec<String>,
    prefix: Option<String>,
    key: Option<i32>,
}

impl Select {
    /// # Errors
    /// A usage error for an `owner` that is neither a uid nor a user.
    pub fn resolve(s: Selection) -> Result<Select> {
        let owner = match &s.owner {
            None => None,
            Some(o) => Some(match o.parse::<u32>() {
                Ok(uid) => uid,
                Err(_) => match nix::unistd::User::from_name(o) {
                    Ok(Some(u)) => u.uid.as_raw(),
                    _ => return Err(usage(format!("--owner {o}: no such user"))),
                },
            }),
        };
        let names: Vec<String> = s.names.iter().map(|n| n.as_str().to_string()).collect();
        let prefix = s.prefix.as_ref().map(|p| p.as_str().to_string());
        let by_name = !names.is_empty() || prefix.is_some();
        // --name/--prefix select POSIX objects and --key System V ones; given
        // alone, each also narrows the family (System V objects have no
        // names, POSIX ones no keys).
        let (mut posix, mut sysv) = match (s.posix, s.sysv) {
            (false, false) => (true, true),
            (p, s) => (p, s),
        };
        if by_name && s.key.is_none() {
            sysv = false;
        }
        if s.key.is_some() && !by_name {
            posix = false;
        }
        Ok(Select {
            posix,
            sysv,
            mech: s.mech,
            owner,
            names,
            prefix,
            key: s.key.map(SysvKey::raw),
        })
    }

    pub(super) fn wants(&self, kind: Kind) -> bool {
        (if kind.is_posix() {
            self.posix
        } else {
            self.sysv
        }) && self.mech.is_none_or(|m| m == kind.mech())
    }

    /// A POSIX object's name (as ls shows it) inside the selection: equal
    /// to one --name or starting with --prefix; any when neither is given.
    fn name_matches(&self, name: Option<&str>) -> bool {
        if self.names.is_empty() && self.prefix.is_none() {
            return true;
        }
        name.is_some_and(|name| {
            self.names.iter().any(|n| n == name)
                || self.prefix.as_deref().is_some_and(|p| name.starts_with(p))
        })
    }

    pub(super) fn matches(&self, obj: &Object) -> bool {
        if !self.wants(obj.kind) || self.owner.is_some_and(|uid| uid != obj.uid) {
            return false;
        }
        if obj.kind.is_posix() {
            self.name_matches(obj.name.as_deref())
        } else {
            self.key.is_none_or(|k| obj.key == Some(k))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_exactly_and_prefixes_by_prefix() {
        let select = |names: &[&str], prefix: Option<&str>| Select {
            posix: true,
            sysv: false,
            mech: None,
            owner: None,
            names: names.iter().map(|n| n.to_string()).collect(),
            prefix: prefix.map(str::to_string),
            key: None,
        };
        let s = select(&["/a"], None);
        assert!(s.name_matches(Some("/a")));
        assert!(!s.name_matches(Some("/ab")));
        assert!(!s.name_matches(Some("/")));
        assert!(!s.name_matches(None));
        let s = select(&["/a", "/c"], Some("/b"));
        for name in ["/a", "/c", "/b", "/bc"] {
            assert!(s.name_matches(Some(name)), "{name}");
        }
        for name in ["/ab", "/cb", "/", ""] {
            assert!(!s.name_matches(Some(name)), "{name}");
        }
        // No --name and no --prefix: names do not narrow.
        assert!(select(&[], None).name_matches(Some("/anything")));
    }
}
