//! System V IPC: one file per mechanism, and what the three share: how an
//! object is found (key or id), `--clean` and `--stat` over any kind
//! (`ipc::sysv::Sysv<K>`), and the hint for a system-wide limit.

pub mod msq;
pub mod sem;
pub mod shm;

use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;

use crate::ipc::Remove;
use crate::ipc::sysv::{Sysv, SysvKind};
use crate::ipc::sysv_msq::Msq;
use crate::ipc::sysv_sem::Sem;
use crate::ipc::sysv_shm::Shm;
use crate::object::{Addr, Kind, ObjectRef};
use crate::output::{Out, or_unknown};
use crate::record::RemovedId;
use crate::record::stat::{StatBody, SysvHead, SysvStat};

/// Turn the errno of a lookup (msgget/shmget/semget without IPC_CREAT, or
/// *ctl on an id) into the contract's "no such ..." error, exit 1.
fn no_such(errno: Errno, what: &str, addr: &Addr) -> anyhow::Error {
    match (errno, addr) {
        (Errno::ENOENT, Addr::Key(_)) => anyhow!("no such {what}"),
        // An id never used, or used by a removed object: EINVAL (or EIDRM).
        (Errno::EINVAL | Errno::EIDRM, Addr::Id(_)) => anyhow!("no such {what}"),
        (e, _) => e.into(),
    }
}

/// The handle of the object at `addr`, by key (it must exist) or by id
/// (taken as given: only a later call shows whether it exists).
fn handle<K: SysvKind>(addr: &Addr) -> Result<Sysv<K>> {
    let what = K::KIND.what();
    match addr {
        Addr::Key(key) => Sysv::<K>::open_existing(key.raw()).map_err(|e| no_such(e, what, addr)),
        Addr::Id(id) => Ok(Sysv::<K>::with_id(id.0)),
        Addr::Name(_) => bail!("a System V object has a key or an id, not a name"),
    }
}

/// The object at `addr` with its IPC_STAT, for `--stat`, or the
/// contract's "no such ...".
pub fn find<K: SysvKind>(addr: &Addr) -> Result<(Sysv<K>, K::Stat)> {
    let what = K::KIND.what();
    let found = handle::<K>(addr).and_then(|obj| {
        let ds = obj.stat().map_err(|e| no_such(e, what, addr))?;
        Ok((obj, ds))
    });
    found.with_context(|| format!("cannot stat {what} ({addr})"))
}

/// `--stat` of a System V object: the `ipc_perm` head of `ds`, then `body`.
pub fn print_stat<K: SysvKind>(
    out: &mut Out,
    ds: &K::Stat,
    body: impl StatBody,
) -> Result<ExitCode> {
    out.stat(&SysvStat {
        head: SysvHead::new(K::KIND, K::perm(ds)),
        body,
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `--clean` of a System V object: IPC_RMID, and its `removed` line.
pub fn clean(obj: &ObjectRef, out: &mut Out) -> Result<ExitCode> {
    match obj.kind {
        Kind::SysvMsq => remove::<Msq>(&obj.addr, out),
        Kind::SysvShm => remove::<Shm>(&obj.addr, out),
        Kind::SysvSem => remove::<Sem>(&obj.addr, out),
        // Named so that a new kind is a compile error here, not a run-time one.
        kind @ (Kind::PosixMsq | Kind::PosixShm | Kind::PosixSem) => {
            bail!("{kind} is not a System V kind")
        }
    }
}

/// `--stat` of a System V object.
pub fn stat(obj: &ObjectRef, out: &mut Out) -> Result<ExitCode> {
    match obj.kind {
        Kind::SysvMsq => msq::stat(&obj.addr, out),
        Kind::SysvShm => shm::stat(&obj.addr, out),
        Kind::SysvSem => sem::stat(&obj.addr, out),
        // Named so that a new kind is a compile error here, not a run-time one.
        kind @ (Kind::PosixMsq | Kind::PosixShm | Kind::PosixSem) => {
            bail!("{kind} is not a System V kind")
        }
    }
}

fn remove<K: SysvKind>(addr: &Addr, out: &mut Out) -> Result<ExitCode> {
    let what = K::KIND.what();
    let context = || format!("cannot remove {what} ({addr})");
    let obj = handle::<K>(addr).with_context(context)?;
    obj.remove()
        .map_err(|e| no_such(e, what, addr))
        .with_context(context)?;
    out.line(&RemovedId {
        mechanism: K::KIND,
        id: obj.id(),
        key: match addr {
            Addr::Key(key) => Some(*key),
            _ => None,
        },
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Hint for EINVAL/ENOSPC from a get call with IPC_CREAT, naming the limit.
pub fn limit_hint(what: &str, file: &str) -> String {
    let path = format!("/proc/sys/kernel/{file}");
    let value = or_unknown(crate::sys::read_proc_u64(&path));
    format!("the system-wide {what} limit is reached ({path} is {value}); `ipcs` shows what exists")
}
