//! The attributes a POSIX queue may be created with: the kernel's limits
//! on them (the mqueue sysctls, the hard ceilings, CAP_SYS_RESOURCE) and
//! what a queue costs against RLIMIT_MSGQUEUE. `posix msq` names the limit
//! that refused a queue with these; `limits` shows them.

use crate::sys::read_proc_u64;

/// The kernel's ceilings, which no sysctl raises (ipc/mqueue.c).
pub const HARD_MSGMAX: u64 = 65536;
pub const HARD_MSGSIZEMAX: u64 = 16 * 1024 * 1024;

/// The largest attributes `mq_open(O_CREAT)` accepts from this process
/// (ipc/mqueue.c, `mqueue_get_inode`): /proc/sys/fs/mqueue/msg_max and
/// msgsize_max, or HARD_MSGMAX and HARD_MSGSIZEMAX for a process with
/// CAP_SYS_RESOURCE. Beyond them the kernel says EINVAL.
#[derive(Debug, Clone, Copy)]
pub struct AttrLimits {
    pub msg_max: Option<u64>,
    pub msgsize_max: Option<u64>,
    pub cap_sys_resource: bool,
}

/// Which limit refuses a queue's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverLimit {
    MsgMax,
    MsgsizeMax,
    HardMsgmax,
    HardMsgsizemax,
}

impl OverLimit {
    /// The name `limits --json` gives it.
    pub fn name(self) -> &'static str {
        match self {
            OverLimit::MsgMax => "msg_max",
            OverLimit::MsgsizeMax => "msgsize_max",
            OverLimit::HardMsgmax => "hard_msgmax",
            OverLimit::HardMsgsizemax => "hard_msgsizemax",
        }
    }
}

/// Who asked for a queue's attributes, as a refusal names them: the
/// command line (`--max-msgs 20`), or a snapshot's header that a restore
/// creates the queue with (`the file's maxmsg 20`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskedBy {
    Flags,
    File,
}

impl AskedBy {
    /// The words for the message count and the message size.
    pub fn names(self) -> [&'static str; 2] {
        match self {
            AskedBy::Flags => ["--max-msgs", "--msg-size"],
            AskedBy::File => ["the file's maxmsg", "the file's msgsize"],
        }
    }
}

impl AttrLimits {
    /// The limits of this process, read now.
    pub fn here() -> AttrLimits {
        let proc = |f: &str| read_proc_u64(&format!("/proc/sys/fs/mqueue/{f}"));
        AttrLimits {
            msg_max: proc("msg_max"),
            msgsize_max: proc("msgsize_max"),
            cap_sys_resource: crate::sys::has_cap_sys_resource(),
        }
    }

    /// The attributes `mq_open` gives a queue when it gets none: the smaller
    /// of msg_default and msg_max, and of msgsize_default and msgsize_max
    /// (mq_overview(7)).
    pub fn defaults(&self, msg_default: Option<u64>, msgsize_default: Option<u64>) -> (u64, u64) {
        let pick = |default: Option<u64>, max: Option<u64>, fallback: u64| match (default, max) {
            (Some(d), Some(m)) => d.min(m),
            (d, m) => d.or(m).unwrap_or(fallback),
        };
        (
            pick(msg_default, self.msg_max, 10),
            pick(msgsize_default, self.msgsize_max, 8192),
        )
    }

    /// Why the kernel refuses a queue of `max_msgs` x `msg_size` from this
    /// process with EINVAL; None when the attributes are within its limits
    /// (or a limit could not be read).
    pub fn refusal(&self, max_msgs: u32, msg_size: u32) -> Option<(OverLimit, String)> {
        self.refusal_of(AskedBy::Flags, max_msgs, msg_size)
    }

    /// [`AttrLimits::refusal`], naming the attributes as `by` gave them.
    pub fn refusal_of(
        &self,
        by: AskedBy,
        max_msgs: u32,
        msg_size: u32,
    ) -> Option<(OverLimit, String)> {
        let [count_word, size_word] = by.names();
        // Each attribute with its hard limit (compiled into the kernel) and
        // its sysctl; every hard limit is checked before any sysctl.
        let attrs = [
            Checked {
                flag: count_word,
                value: u64::from(max_msgs),
                hard: (OverLimit::HardMsgmax, HARD_MSGMAX, "messages (HARD_MSGMAX)"),
                sysctl: (OverLimit::MsgMax, self.msg_max, "msg_max"),
            },
            Checked {
                flag: size_word,
                value: u64::from(msg_size),
                hard: (
                    OverLimit::HardMsgsizemax,
                    HARD_MSGSIZEMAX,
                    "bytes (HARD_MSGSIZEMAX)",
                ),
                sysctl: (OverLimit::MsgsizeMax, self.msgsize_max, "msgsize_max"),
            },
        ];
        for a in &attrs {
            let (over, hard, unit) = a.hard;
            if a.value > hard {
                let text = format!(
                    "{} {} is above the kernel's hard limit of {hard} {unit}",
                    a.flag, a.value
                );
                return Some((over, text));
            }
        }
        if self.cap_sys_resource {
            return None;
        }
        for a in &attrs {
            let (over, max, name) = a.sysctl;
            if let Some(m) = max.filter(|m| a.value > *m) {
                // Without the capability the sysctl is this process's limit,
                // and the hint says what would lift it: not uid 0, the
                // capability.
                let text = format!(
                    "{} {} is above /proc/sys/fs/mqueue/{name} ({m}), this process's limit: \
                     it lacks CAP_SYS_RESOURCE, which would allow up to {} (being root is not \
                     enough)",
                    a.flag, a.value, a.hard.1
                );
                return Some((over, text));
            }
        }
        None
    }
}

/// one attribute of `AttrLimits::refusal`: its flag and value, and the hard
/// limit and the sysctl (`None`: unread) it must stay within.
struct Checked {
    flag: &'static str,
    value: u64,
    hard: (OverLimit, u64, &'static str),
    sysctl: (OverLimit, Option<u64>, &'static str),
}

/// What a queue charges against RLIMIT_MSGQUEUE, as mq_overview(7) gives it.
pub fn queue_cost(max_msgs: u32, msg_size: u32) -> u64 {
    const POINTER: u64 = size_of::<usize>() as u64;
    // struct posix_msg_tree_node: an rb_node (3 words) and a list_head (2) plus the priority.
    const TREE_NODE: u64 = 6 * POINTER;
    // struct msg_msg: a list_head (2 words), m_type, m_ts, next and security.
    // The kernel charges the struct, not a pointer to it: a limit of 50000
    // bytes takes 10 x 4904 but refuses 10 x 4905 (x86_64, 6.x).
    const MSG_MSG: u64 = 6 * POINTER;
    const MQ_PRIO_MAX: u64 = 32768;
    let n = u64::from(max_msgs);
    n * MSG_MSG + n.min(MQ_PRIO_MAX) * TREE_NODE + n * u64::from(msg_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYSCTL: AttrLimits = AttrLimits {
        msg_max: Some(10),
        msgsize_max: Some(8192),
        cap_sys_resource: false,
    };
    const CAPABLE: AttrLimits = AttrLimits {
        cap_sys_resource: true,
        ..SYSCTL
    };

    #[test]
    fn the_sysctls_bind_a_process_without_cap_sys_resource() {
        assert_eq!(SYSCTL.refusal(10, 8192), None);
        let (limit, why) = SYSCTL.refusal(11, 8192).unwrap();
        assert_eq!(limit, OverLimit::MsgMax);
        assert!(
            why.contains("msg_max (10)")
                && why.contains("CAP_SYS_RESOURCE")
                && why.contains("65536")
        );
        assert!(!why.contains("root may"), "{why}");
        assert_eq!(SYSCTL.refusal(1, 8193).unwrap().0, OverLimit::MsgsizeMax);
        // The hard limits come first: no capability lifts them.
        assert_eq!(
            SYSCTL.refusal(100_000, 8192).unwrap().0,
            OverLimit::HardMsgmax
        );
    }

    #[test]
    fn cap_sys_resource_allows_up_to_the_hard_limits() {
        assert_eq!(CAPABLE.refusal(11, 8193), None);
        assert_eq!(CAPABLE.refusal(HARD_MSGMAX as u32, 16 << 20), None);
        assert_eq!(
            CAPABLE.refusal(HARD_MSGMAX as u32 + 1, 1).unwrap().0,
            OverLimit::HardMsgmax
        );
        assert_eq!(
            CAPABLE.refusal(1, (16 << 20) + 1).unwrap().0,
            OverLimit::HardMsgsizemax
        );
    }

    #[test]
    fn defaults_are_capped_by_the_maxima() {
        assert_eq!(SYSCTL.defaults(Some(10), Some(8192)), (10, 8192));
        let small = AttrLimits {
            msg_max: Some(5),
            msgsize_max: Some(1024),
            ..SYSCTL
        };
        assert_eq!(small.defaults(Some(10), Some(8192)), (5, 1024));
        assert_eq!(small.defaults(None, None), (5, 1024));
    }

    #[test]
    fn cost_of_default_queue() {
        // 10 messages of 8192 bytes dominate; the overhead is per message.
        assert!(queue_cost(10, 8192) > 81920);
        assert!(queue_cost(10, 8192) < 81920 + 10 * 128);
    }

    #[test]
    fn cost_matches_the_kernel() {
        // Measured with prlimit --msgqueue=50000: 10 x 4904 fits, 10 x 4905 does not.
        if size_of::<usize>() == 8 {
            assert!(queue_cost(10, 4904) <= 50000);
            assert!(queue_cost(10, 4905) > 50000);
        }
    }
}
