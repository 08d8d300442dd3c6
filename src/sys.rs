//! Small OS helpers shared by the mechanisms.

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

/// CAP_SYS_RESOURCE, linux/capability.h.
const CAP_SYS_RESOURCE: u32 = 24;

/// Inode of the initial user namespace (PROC_USER_INIT_INO, linux/proc_ns.h).
const PROC_USER_INIT_INO: u64 = 0xEFFF_FFFD;

/// Whether the kernel's `capable(CAP_SYS_RESOURCE)` holds for this process:
/// it lets a process past the mqueue sysctls msg_max, msgsize_max and
/// queues_max (ipc/mqueue.c).
///
/// It is the capability, not uid 0, that counts: root in a container
/// usually runs without it. `capable()` asks the initial user namespace, so
/// the bit in CapEff (/proc/self/status) counts only there: a container's
/// root that has the bit in its own user namespace is still refused.
pub fn has_cap_sys_resource() -> bool {
    let in_init_userns = std::fs::metadata("/proc/self/ns/user")
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m) == PROC_USER_INIT_INO)
        // No /proc/self/ns (very old kernels): no user namespaces to speak of.
        .unwrap_or(true);
    in_init_userns
        && std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| cap_eff_has(&s, CAP_SYS_RESOURCE))
            .unwrap_or(false)
}

/// Bit `cap` of the CapEff line of a /proc/PID/status text, None without one.
fn cap_eff_has(status: &str, cap: u32) -> Option<bool> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    let set = u64::from_str_radix(hex.trim(), 16).ok()?;
    Some(set >> cap & 1 == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_bits_from_status() {
        let with = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        let without = "CapEff:\t000001fffeffffff\nCapBnd:\t000001ffffffffff\n";
        assert_eq!(cap_eff_has(with, CAP_SYS_RESOURCE), Some(true));
        assert_eq!(cap_eff_has(without, CAP_SYS_RESOURCE), Some(false));
        assert_eq!(cap_eff_has(without, 23), Some(true));
        assert_eq!(cap_eff_has("Name:\tx\n", CAP_SYS_RESOURCE), None);
        assert_eq!(cap_eff_has("CapEff:\tzz\n", CAP_SYS_RESOURCE), None);
    }
}
