//! Small OS helpers shared by the mechanisms.

use nix::sys::stat::{Mode, umask};

/// Clears the umask while it lives, so that `--mode` is applied exactly as
/// given: the process umask would otherwise silently remove bits the user
/// asked for. The tool is single-threaded where it creates objects.
pub struct UmaskGuard(Mode);

impl UmaskGuard {
    pub fn clear() -> Self {
        UmaskGuard(umask(Mode::empty()))
    }
}

impl Drop for UmaskGuard {
    fn drop(&mut self) {
        umask(self.0);
    }
}

/// User name for a uid, or the number when there is none.
pub fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

/// Group name for a gid, or the number when there is none.
pub fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(gid.into())
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name)
}

/// Seconds as the user wrote them: `3`, `0.25`.
pub fn secs(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    format!("{s}")
}

/// A number from a /proc file such as /proc/sys/fs/mqueue/msg_max.
pub fn read_proc_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Owner, group and permission bits of an object, under the field names
/// `--stat` and `ls` share.
pub fn insert_ownership(fields: &mut crate::output::Fields, uid: u32, gid: u32, mode: u32) {
    fields.insert("uid".into(), uid.into());
    fields.insert("owner".into(), user_name(uid).into());
    fields.insert("gid".into(), gid.into());
    fields.insert("group".into(), group_name(gid).into());
    fields.insert("perms".into(), format!("{:04o}", mode & 0o777).into());
}
