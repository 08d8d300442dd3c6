//! Every IPC namespace on the host, found through /proc: the processes in
//! each, its mount namespace and /dev/shm, and the container it belongs to
//! when its cgroup path names one.
//!
//! One pass over /proc reads one link per process (`/proc/PID/ns/ipc`,
//! `ipc:[INODE]`) and groups the pids by inode. A few more reads follow for
//! one representative process per namespace (the smallest pid: in a
//! container, as a rule its init). A process this user may not inspect is
//! noted with the reason, never an error: the rest is still listed.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::os::unix::fs::MetadataExt;

use nix::errno::Errno;

use crate::ipc::namespace::{self, NsKind};
use crate::ipc::process::Pid;

/// The identity of a /dev/shm: (st_dev, st_ino) of the directory as a
/// process in the namespace sees it. Two namespaces with the same identity
/// share their POSIX shm and semaphores.
pub type ShmId = (u64, u64);

/// One IPC namespace and what is known of it.
#[derive(Debug, Clone)]
pub struct IpcNamespace {
    /// The namespace's inode, as in `ipc:[INODE]` and `lsns`.
    pub inode: u64,
    /// The processes in it, smallest pid first.
    pub pids: Vec<i32>,
    /// Whether it is the namespace this process runs in.
    pub current: bool,
    /// The mount namespace of the representative process.
    pub mnt_inode: Option<u64>,
    /// Its /dev/shm, through /proc/PID/root/dev/shm of the representative.
    pub shm: Option<ShmId>,
    /// The container, when the representative's cgroup path names one.
    pub container: Option<Container>,
}

impl IpcNamespace {
    /// The process through which the namespace is read and shown.
    pub fn representative(&self) -> Option<i32> {
        self.pids.first().copied()
    }
}

/// A process whose namespace could not be read, and why (EACCES or EPERM:
/// another user's process, without root or CAP_SYS_PTRACE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable {
    pub pid: i32,
    pub errno: Errno,
}

/// What one walk over /proc found.
#[derive(Debug, Clone, Default)]
pub struct Namespaces {
    /// The current namespace first, then by inode.
    pub list: Vec<IpcNamespace>,
    /// Processes whose IPC namespace this user may not read.
    pub unreadable: Vec<Unreadable>,
}

impl Namespaces {
    /// One line on the processes whose namespace could not be read, or
    /// none. As root the cause is not rights this user could gain (another
    /// user namespace, ptrace rules), so it suggests root only to others.
    pub fn unreadable_note(&self) -> Option<String> {
        let first = self.unreadable.first()?;
        let n = self.unreadable.len();
        let hint = if nix::unistd::geteuid().is_root() {
            "root may not read it either (another user namespace, or ptrace rules)"
        } else {
            "run as root to list every namespace"
        };
        Some(format!(
            "could not read the IPC namespace of {} ({}): {hint}",
            crate::output::plural(n, "process", "processes"),
            crate::error::errno_text(first.errno)
        ))
    }

    /// The IPC namespace of every process found, to count a process as a
    /// user only of objects in its own namespace.
    pub fn by_pid(&self) -> HashMap<i32, u64> {
        self.list
            .iter()
            .flat_map(|ns| ns.pids.iter().map(|&pid| (pid, ns.inode)))
            .collect()
    }

    pub fn get(&self, inode: u64) -> Option<&IpcNamespace> {
        self.list.iter().find(|ns| ns.inode == inode)
    }

    /// Whether the namespace `inode` is the one that lists its /dev/shm:
    /// the first in [`Namespaces::list`] order with that /dev/shm, so a
    /// /dev/shm shared by several namespaces is listed once (under the
    /// current namespace when it is one of them). A namespace whose /dev/shm
    /// could not be identified lists its own.
    pub fn lists_shm(&self, inode: u64) -> bool {
        let Some(ns) = self.get(inode) else {
            return false;
        };
        let Some(shm) = ns.shm else {
            return true;
        };
        self.list
            .iter()
            .find(|other| other.shm == Some(shm))
            .is_some_and(|first| first.inode == inode)
    }
}

/// Walk /proc once: every process's IPC namespace, grouped. Never fails: a
/// process that exits meanwhile is passed over, one that may not be read is
/// in [`Namespaces::unreadable`].
pub fn discover() -> Namespaces {
    let current = namespace::inode(nix::unistd::getpid(), NsKind::Ipc).ok();
    let Ok(dir) = fs::read_dir("/proc") else {
        return Namespaces::default();
    };
    let pids = dir
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok());
    let (groups, unreadable) = group(pids, |pid| {
        namespace::inode(Pid::from_raw(pid), NsKind::Ipc)
    });
    let mut list: Vec<IpcNamespace> = groups
        .into_iter()
        .map(|(inode, pids)| describe(inode, pids, current == Some(inode)))
        .collect();
    list.sort_by_key(|ns| (!ns.current, ns.inode));
    Namespaces { list, unreadable }
}

/// As [`discover`], keeping only the namespace `only` when given (it then
/// lists its own /dev/shm, shared or not).
pub fn discover_only(only: Option<u64>) -> Namespaces {
    let mut found = discover();
    if let Some(inode) = only {
        found.list.retain(|ns| ns.inode == inode);
    }
    found
}

/// Pids grouped by the namespace `ipc_of` reads for them, each group and
/// the unreadable sorted by pid.
fn group(
    pids: impl Iterator<Item = i32>,
    ipc_of: impl Fn(i32) -> Result<u64, Errno>,
) -> (HashMap<u64, Vec<i32>>, Vec<Unreadable>) {
    let mut groups: HashMap<u64, Vec<i32>> = HashMap::new();
    let mut unreadable = Vec::new();
    for pid in pids {
        match ipc_of(pid) {
            Ok(inode) => groups.entry(inode).or_default().push(pid),
            // Exited since the directory was read (a zombie has no namespaces).
            Err(Errno::ENOENT | Errno::ESRCH) => {}
            Err(errno) => unreadable.push(Unreadable { pid, errno }),
        }
    }
    for pids in groups.values_mut() {
        pids.sort_unstable();
    }
    unreadable.sort_unstable_by_key(|u| u.pid);
    (groups, unreadable)
}

/// The mount namespace, /dev/shm and container of a namespace, read through
/// the first of its processes that answers (one may exit meanwhile).
fn describe(inode: u64, pids: Vec<i32>, current: bool) -> IpcNamespace {
    let mut ns = IpcNamespace {
        inode,
        pids,
        current,
        mnt_inode: None,
        shm: None,
        container: None,
    };
    for &pid in &ns.pids {
        let Ok(mnt) = namespace::inode(Pid::from_raw(pid), NsKind::Mnt) else {
            continue;
        };
        ns.mnt_inode = Some(mnt);
        ns.shm = fs::metadata(format!("/proc/{pid}/root/dev/shm"))
            .ok()
            .map(|m| (m.dev(), m.ino()));
        ns.container = fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .ok()
            .and_then(|text| container_from_cgroup(&text));
        break;
    }
    ns
}

/// The software that runs a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Docker,
    Containerd,
    CriO,
    Podman,
    /// A Kubernetes pod's container whose runtime the path does not say
    /// (the cgroupfs driver: `/kubepods/<qos>/pod<uid>/<id>`).
    Kubernetes,
    Nspawn,
    Lxc,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Podman => "podman",
            Runtime::Kubernetes => "kubernetes",
            Runtime::Nspawn => "nspawn",
            Runtime::Lxc => "lxc",
        }
    }
}

/// A container named by a cgroup path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub runtime: Runtime,
    /// The full id (64 hex digits) or, for nspawn and LXC, the name.
    pub id: String,
    /// The Kubernetes pod's uid, when the path names one.
    pub pod: Option<String>,
}

impl Container {
    /// The id as `docker ps` prints it (12 hex digits); a name as it is.
    pub fn short_id(&self) -> &str {
        if is_container_id(&self.id) {
            &self.id[..12]
        } else {
            &self.id
        }
    }
}

/// `docker 3f2a9c1b7d4e`, `nspawn web`.
impl fmt::Display for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.runtime.as_str(), self.short_id())
    }
}

/// The container a process runs in, from the text of /proc/PID/cgroup
/// (`hierarchy:controllers:path` lines, cgroup v1 or v2). The deepest
/// component that names a container wins: docker inside an nspawn machine
/// is the docker container.
pub fn container_from_cgroup(text: &str) -> Option<Container> {
    text.lines()
        .filter_map(|line| line.splitn(3, ':').nth(2))
        .find_map(container_from_path)
}

fn container_from_path(path: &str) -> Option<Container> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let pod = parts.iter().find_map(|p| pod_uid(p));
    let in_kubepods = parts.iter().any(|p| p.starts_with("kubepods"));
    let found = (0..parts.len()).rev().find_map(|i| {
        let parent = i.checked_sub(1).map(|j| parts[j]);
        from_component(parts[i], parent, in_kubepods)
    });
    found.map(|(runtime, id)| Container { runtime, id, pod })
}

/// One path component, with the one above it.
fn from_component(
    part: &str,
    parent: Option<&str>,
    in_kubepods: bool,
) -> Option<(Runtime, String)> {
    let unit = part.strip_suffix(".scope").unwrap_or(part);
    // systemd's scopes (`docker-<id>.scope`) and podman's cgroupfs
    // directories (`libpod-<id>`). A conmon scope (`crio-conmon-<id>`,
    // `libpod-conmon-<id>`) is the monitor on the host, not the container:
    // its rest is not an id.
    for (prefix, runtime) in [
        ("docker-", Runtime::Docker),
        ("cri-containerd-", Runtime::Containerd),
        ("crio-", Runtime::CriO),
        ("libpod-", Runtime::Podman),
    ] {
        if let Some(id) = unit.strip_prefix(prefix)
            && is_container_id(id)
        {
            return Some((runtime, id.to_string()));
        }
    }
    if part.ends_with(".scope")
        && let Some(name) = unit.strip_prefix("machine-")
    {
        return Some((Runtime::Nspawn, unescape_unit(name)));
    }
    // LXC 4 and later: `lxc.payload.<name>`; LXC 3: `lxc.payload/<name>`;
    // before: `lxc/<name>`. `lxc.monitor.<name>` is the monitor.
    if let Some(name) = part.strip_prefix("lxc.payload.") {
        return Some((Runtime::Lxc, name.to_string()));
    }
    if matches!(parent, Some("lxc" | "lxc.payload")) {
        return Some((Runtime::Lxc, part.to_string()));
    }
    if is_container_id(part) {
        // The cgroupfs drivers: `/docker/<id>`, `/kubepods/.../pod<uid>/<id>`.
        if parent == Some("docker") {
            return Some((Runtime::Docker, part.to_string()));
        }
        if in_kubepods {
            return Some((Runtime::Kubernetes, part.to_string()));
        }
    }
    None
}

/// A container id as the runtimes make them: 64 lowercase hex digits.
fn is_container_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The pod uid in `pod<uid>` (cgroupfs) or `kubepods-<qos>-pod<uid>.slice`
/// (systemd, which writes the uid's dashes as underscores).
fn pod_uid(part: &str) -> Option<String> {
    let unit = part.strip_suffix(".slice").unwrap_or(part);
    let uid = match unit.rfind("-pod") {
        Some(at) if unit.starts_with("kubepods") => &unit[at + 4..],
        _ => unit.strip_prefix("pod")?,
    };
    let uid = uid.replace('_', "-");
    let hex = uid.bytes().filter(|b| *b != b'-').count();
    (hex == 32 && uid.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit())).then_some(uid)
}

/// systemd's unit-name escaping undone: `\x2d` is `-` (systemd-escape(1)).
fn unescape_unit(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && bytes.get(i + 1) == Some(&b'x')
            && let Some(byte) = s
                .get(i + 2..i + 4)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f2a9c1b7d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddeef";

    fn parse(text: &str) -> Option<(Runtime, String, Option<String>)> {
        container_from_cgroup(text).map(|c| (c.runtime, c.id, c.pod))
    }

    #[test]
    fn docker_with_either_cgroup_driver() {
        let systemd = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(parse(&systemd), Some((Runtime::Docker, ID.into(), None)));
        // cgroup v1, the cgroupfs driver: every hierarchy names it.
        let v1 = format!(
            "12:pids:/docker/{ID}\n11:memory:/docker/{ID}\n1:name=systemd:/docker/{ID}\n0::/\n"
        );
        assert_eq!(parse(&v1), Some((Runtime::Docker, ID.into(), None)));
        let c = container_from_cgroup(&v1).unwrap();
        assert_eq!(c.short_id(), "3f2a9c1b7d4e");
        assert_eq!(c.to_string(), "docker 3f2a9c1b7d4e");
    }

    #[test]
    fn docker_in_docker_is_the_inner_container() {
        let inner = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let text = format!("0::/docker/{ID}/docker/{inner}\n");
        assert_eq!(parse(&text), Some((Runtime::Docker, inner.into(), None)));
    }

    #[test]
    fn kubernetes_pods_by_runtime() {
        let uid = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";
        let slice = uid.replace('-', "_");
        let containerd = format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{slice}.slice/cri-containerd-{ID}.scope\n"
        );
        assert_eq!(
            parse(&containerd),
            Some((Runtime::Containerd, ID.into(), Some(uid.into())))
        );
        let crio = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{slice}.slice/crio-{ID}.scope\n"
        );
        assert_eq!(
            parse(&crio),
            Some((Runtime::CriO, ID.into(), Some(uid.into())))
        );
        // A guaranteed pod's slice has no QoS part.
        let guaranteed = format!("0::/kubepods.slice/kubepods-pod{slice}.slice/crio-{ID}.scope\n");
        assert_eq!(
            parse(&guaranteed),
            Some((Runtime::CriO, ID.into(), Some(uid.into())))
        );
        // The cgroupfs driver does not say which runtime.
        let cgroupfs = format!("0::/kubepods/besteffort/pod{uid}/{ID}\n");
        assert_eq!(
            parse(&cgroupfs),
            Some((Runtime::Kubernetes, ID.into(), Some(uid.into())))
        );
    }

    #[test]
    fn podman_rootful_and_rootless() {
        for text in [
            format!("0::/machine.slice/libpod-{ID}.scope/container\n"),
            format!(
                "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope\n"
            ),
            // The cgroupfs driver.
            format!("0::/libpod_parent/libpod-{ID}\n"),
        ] {
            assert_eq!(
                parse(&text),
                Some((Runtime::Podman, ID.into(), None)),
                "{text}"
            );
        }
    }

    #[test]
    fn monitors_are_not_containers() {
        for text in [
            format!("0::/machine.slice/libpod-conmon-{ID}.scope\n"),
            format!("0::/system.slice/crio-conmon-{ID}.scope\n"),
            "0::/lxc.monitor.web1\n".to_string(),
        ] {
            assert_eq!(parse(&text), None, "{text}");
        }
    }

    #[test]
    fn nspawn_machines_are_unescaped() {
        let text = r"0::/machine.slice/machine-build\x2dbox.scope/payload";
        assert_eq!(
            parse(text),
            Some((Runtime::Nspawn, "build-box".into(), None))
        );
        let c = container_from_cgroup(text).unwrap();
        assert_eq!(c.short_id(), "build-box");
        assert_eq!(c.to_string(), "nspawn build-box");
    }

    #[test]
    fn lxc_old_and_new_layouts() {
        assert_eq!(
            parse("0::/lxc.payload.web1/init.scope\n"),
            Some((Runtime::Lxc, "web1".into(), None))
        );
        assert_eq!(
            parse("4:memory:/lxc/web1\n"),
            Some((Runtime::Lxc, "web1".into(), None))
        );
        assert_eq!(
            parse("0::/lxc.payload/web1\n"),
            Some((Runtime::Lxc, "web1".into(), None))
        );
    }

    #[test]
    fn host_processes_name_no_container() {
        for text in [
            "0::/init.scope\n",
            "0::/user.slice/user-0.slice/session-3.scope\n",
            "0::/system.slice/docker.service\n",
            "0::/\n",
            "12:pids:/\n0::/system.slice/sshd.service\n",
            // Not 64 hex digits: not an id.
            "0::/docker/not-an-id\n",
            "0::/system.slice/docker-3f2a9c1b7d4e.scope\n",
            "",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn unit_names_unescape_only_whole_escapes() {
        assert_eq!(unescape_unit(r"a\x2db\x20c"), "a-b c");
        assert_eq!(unescape_unit(r"end\x2"), r"end\x2");
        assert_eq!(unescape_unit(r"odd\xzz"), r"odd\xzz");
    }

    /// A process in an IPC namespace of its own, killed and reaped at the
    /// end of the test.
    struct Unshared(std::process::Child);

    impl Unshared {
        /// `unshare ARGS sh -c 'SETUP && echo ready && exec sleep 600'`,
        /// returned once it is in its namespaces (its ready line).
        fn start(args: &[&str], setup: &str) -> Unshared {
            use std::io::BufRead;
            let script = format!("{setup} && echo ready && exec sleep 600");
            let mut child = std::process::Command::new("unshare")
                .args(args)
                .args(["sh", "-c", &script])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("unshare (util-linux) runs");
            let out = child.stdout.take().expect("piped");
            let mut line = String::new();
            let unshared = Unshared(child);
            std::io::BufReader::new(out)
                .read_line(&mut line)
                .expect("read the ready line");
            assert_eq!(line, "ready\n", "unshare {args:?} did not start");
            unshared
        }

        fn pid(&self) -> i32 {
            self.0.id() as i32
        }
    }

    impl Drop for Unshared {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn discovery_finds_our_namespace_with_our_pid() {
        let found = discover();
        let me = std::process::id() as i32;
        let ours = namespace::inode(Pid::from_raw(me), NsKind::Ipc).unwrap();
        let first = &found.list[0];
        assert!(first.current, "the current namespace comes first");
        assert_eq!(first.inode, ours);
        assert!(first.pids.contains(&me));
        assert_eq!(first.representative(), first.pids.first().copied());
        assert!(found.unreadable.iter().all(|u| u.pid != me));
        assert!(first.pids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(found.list.iter().filter(|ns| ns.current).count(), 1);
        assert_eq!(found.by_pid().get(&me), Some(&ours));
        let mnt = namespace::inode(Pid::from_raw(first.pids[0]), NsKind::Mnt).ok();
        assert_eq!(first.mnt_inode, mnt);
        assert!(found.lists_shm(ours));
    }

    #[test]
    fn a_namespace_sharing_our_dev_shm_is_told_apart_but_lists_none() {
        let child = Unshared::start(&["--ipc"], "true");
        let found = discover();
        let theirs = namespace::inode(Pid::from_raw(child.pid()), NsKind::Ipc).unwrap();
        let ns = found.get(theirs).expect("the new namespace is found");
        assert!(!ns.current);
        assert_eq!(ns.pids, [child.pid()]);
        let ours = &found.list[0];
        assert_ne!(ns.inode, ours.inode);
        // Same mount namespace, same /dev/shm: its POSIX objects are ours.
        assert_eq!(
            ns.mnt_inode,
            Some(namespace::inode(Pid::from_raw(child.pid()), NsKind::Mnt).unwrap())
        );
        assert_eq!(ns.shm, Some(own_shm()));
        assert!(!found.lists_shm(ns.inode));
        assert_eq!(ns.container, None);
    }

    #[test]
    fn a_namespace_with_its_own_dev_shm_lists_it() {
        let child = Unshared::start(
            &["--ipc", "--mount", "--propagation", "private"],
            "mount -t tmpfs -o size=64k none /dev/shm",
        );
        let found = discover();
        let theirs = namespace::inode(Pid::from_raw(child.pid()), NsKind::Ipc).unwrap();
        let ns = found.get(theirs).expect("the new namespace is found");
        assert_ne!(ns.mnt_inode, found.list[0].mnt_inode);
        assert!(ns.shm.is_some());
        assert_ne!(ns.shm, Some(own_shm()));
        assert!(found.lists_shm(ns.inode));
    }

    fn own_shm() -> ShmId {
        let m = fs::metadata("/dev/shm").unwrap();
        (m.dev(), m.ino())
    }

    #[test]
    fn refused_processes_are_noted_and_exited_ones_passed_over() {
        let (groups, unreadable) = group([30, 7, 12, 5, 9, 40].into_iter(), |pid| match pid {
            7 | 30 => Ok(1),
            12 => Ok(2),
            5 => Err(Errno::EACCES),
            40 => Err(Errno::EPERM),
            _ => Err(Errno::ENOENT),
        });
        assert_eq!(groups[&1], [7, 30]);
        assert_eq!(groups[&2], [12]);
        assert_eq!(groups.len(), 2);
        assert_eq!(
            unreadable,
            [
                Unreadable {
                    pid: 5,
                    errno: Errno::EACCES
                },
                Unreadable {
                    pid: 40,
                    errno: Errno::EPERM
                },
            ]
        );
    }
}
