//! System V semaphore set: `semget`, `semop`, `semtimedop`, `semctl`.
//!
//! The libc crate declares semctl (variadic) but not semtimedop, which glibc
//! has had since 2.3.3; it is declared below.

use std::time::{Duration, Instant};

use nix::errno::Errno;

use crate::object::Kind;

use super::sysv::{Perm, Sysv, SysvKind, get_by};
use super::{Creation, Id, Key, OpenError, Opened, cvt};

/// SEMVMX on Linux: the largest value a System V semaphore holds.
pub const SEMVMX: u32 = 32767;

unsafe extern "C" {
    /// glibc: `int semtimedop(int, struct sembuf *, size_t, const struct timespec *)`.
    fn semtimedop(
        semid: libc::c_int,
        sops: *mut libc::sembuf,
        nsops: libc::size_t,
        timeout: *const libc::timespec,
    ) -> libc::c_int;
}

/// The fourth argument of semctl. glibc reads it with `va_arg(ap, union
/// semun)`, so it is passed as that union, not as a bare int or pointer
/// (which differ from the union on some ABIs).
#[repr(C)]
#[derive(Clone, Copy)]
union Semun {
    val: libc::c_int,
    buf: *mut libc::semid_ds,
    array: *mut libc::c_ushort,
}

/// The System V semaphore kind.
#[derive(Debug, Clone, Copy)]
pub struct Sem;

/// A System V semaphore set, by id; the tool's own sets have one semaphore.
pub type SemSet = Sysv<Sem>;

/// A set's `semid_ds`, as plain values.
#[derive(Debug, Clone, Copy)]
pub struct SemStat {
    pub perm: Perm,
    /// Semaphores in the set.
    pub nsems: u64,
    /// Last semop, and last change (creation, SETVAL); 0 for never.
    pub otime: i64,
    pub ctime: i64,
}

/// One semaphore of a set: what `ipcs -s -i` prints for it, and `--stat
/// --json` as `{"semnum":0,"value":1,"ncount":0,"zcount":0,"pid":123}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Semaphore {
    pub semnum: u32,
    pub value: u16,
    /// Processes waiting for the value to increase (GETNCNT).
    pub ncount: i32,
    /// Processes waiting for the value to become zero (GETZCNT).
    pub zcount: i32,
    /// The last process that operated on it (GETPID), 0 if none.
    pub pid: i32,
}

impl Semaphore {
    /// `{"semnum":0,"value":1,"ncount":0,"zcount":0,"pid":123}`
    pub fn to_json(self) -> serde_json::Value {
        // Integers only: serializing cannot fail.
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The `sem_flg` of one operation: IPC_NOWAIT (fail with EAGAIN instead of
/// waiting) and SEM_UNDO (the kernel reverts it when the process exits).
pub fn op_flags(nowait: bool, undo: bool) -> i16 {
    let mut f = 0;
    if nowait {
        f |= libc::IPC_NOWAIT;
    }
    if undo {
        f |= libc::SEM_UNDO;
    }
    f as i16
}

impl SemSet {
    /// `semget(key, nsems, flags)` by `creation`: `IPC_CREAT|IPC_EXCL|mode`
    /// creates a set of one semaphore with value 0 (see [`SemSet::init`]),
    /// `0` opens an existing set of any size.
    ///
    /// # Errors
    /// EEXIST (`CreateNew`) or ENOENT (`OpenOnly`); EACCES; ENOSPC when
    /// semmni sets or semmns semaphores exist already.
    ///
    /// # References
    /// [semget(2)](https://man7.org/linux/man-pages/man2/semget.2.html)
    pub fn open(
        key: Key,
        creation: Creation,
        mode: u32,
    ) -> Result<Opened<SemSet>, OpenError<Errno>> {
        // An existing set is opened at any size (0).
        get_by(creation, mode, |flags| {
            let nsems = if flags == 0 { 0 } else { 1 };
            semget(key, nsems, flags).map(Sysv::with_id)
        })
    }

    /// `semctl(GETVAL)` of semaphore 0.
    ///
    /// # Errors
    /// EACCES without read permission; EINVAL or EIDRM when the set is gone.
    ///
    /// # References
    /// [semctl(2)](https://man7.org/linux/man-pages/man2/semctl.2.html)
    pub fn value(&self) -> Result<i32, Errno> {
        // SAFETY: GETVAL reads no fourth argument.
        cvt(unsafe { libc::semctl(self.id(), 0, libc::GETVAL) })
    }

    /// `semctl(GETALL)`: every value of the set, `nsems` long, where
    /// `nsems` is the set's `sem_nsems` (IPC_STAT).
    fn values(&self, nsems: usize) -> Result<Vec<u16>, Errno> {
        // One element at least, so the pointer is never dangling.
        let mut values = vec![0 as libc::c_ushort; nsems.max(1)];
        let arg = Semun {
            array: values.as_mut_ptr(),
        };
        // SAFETY: GETALL writes sem_nsems unsigned shorts through the union's
        // array; `values` has at least that many (nsems comes from IPC_STAT
        // of this id, and a set never changes its size).
        cvt(unsafe { libc::semctl(self.id(), 0, libc::GETALL, arg) })?;
        values.truncate(nsems);
        Ok(values)
    }

    /// `semctl(cmd)` for semaphore `num`, for the commands that read no
    /// fourth argument and return a count or pid: GETNCNT, GETZCNT, GETPID.
    fn per_semaphore(&self, num: u32, cmd: libc::c_int) -> Result<i32, Errno> {
        let num = libc::c_int::try_from(num).map_err(|_| Errno::EINVAL)?;
        // SAFETY: GETNCNT, GETZCNT and GETPID read no fourth argument.
        cvt(unsafe { libc::semctl(self.id(), num, cmd) })
    }

    /// Every semaphore of the set as `ipcs -s -i` shows it: IPC_STAT for
    /// the size, `semctl(GETALL)` for the values, then GETNCNT, GETZCNT and
    /// GETPID of each. Reads only: takes no unit and maps nothing.
    ///
    /// # Errors
    /// EACCES without read permission; EINVAL or EIDRM when the set is gone.
    ///
    /// # References
    /// [semctl(2)](https://man7.org/linux/man-pages/man2/semctl.2.html)
    pub fn semaphores(&self) -> Result<Vec<Semaphore>, Errno> {
        let nsems = usize::try_from(self.stat()?.nsems).map_err(|_| Errno::EOVERFLOW)?;
        let values = self.values(nsems)?;
        (0u32..)
            .zip(values)
            .map(|(semnum, value)| {
                Ok(Semaphore {
                    semnum,
                    value,
                    ncount: self.per_semaphore(semnum, libc::GETNCNT)?,
                    zcount: self.per_semaphore(semnum, libc::GETZCNT)?,
                    pid: self.per_semaphore(semnum, libc::GETPID)?,
                })
            })
            .collect()
    }

    /// `semctl(SETVAL)` of semaphore 0.
    ///
    /// # Errors
    /// ERANGE above SEMVMX; EPERM without write permission; EINVAL or
    /// EIDRM when the set is gone.
    ///
    /// # References
    /// [semctl(2)](https://man7.org/linux/man-pages/man2/semctl.2.html)
    pub fn set_value(&self, value: u32) -> Result<(), Errno> {
        let arg = Semun {
            val: libc::c_int::try_from(value).map_err(|_| Errno::ERANGE)?,
        };
        // SAFETY: SETVAL reads the union's val.
        cvt(unsafe { libc::semctl(self.id(), 0, libc::SETVAL, arg) })?;
        Ok(())
    }

    /// `semop`, or `semtimedop` with a relative `timeout`, of `ops`
    /// (sem_num, sem_op, sem_flg; see [`op_flags`]) applied atomically.
    ///
    /// # Errors
    /// EAGAIN when IPC_NOWAIT found the value too low or the timeout
    /// passed; EINTR when a signal handler ran (never restarted, signal(7));
    /// ERANGE above SEMVMX; EIDRM or EINVAL when the set was removed.
    ///
    /// # References
    /// [semop(2)](https://man7.org/linux/man-pages/man2/semop.2.html)
    pub fn op(&self, ops: &[(u16, i16, i16)], timeout: Option<Duration>) -> Result<(), Errno> {
        let mut sops: Vec<libc::sembuf> = ops
            .iter()
            .map(|&(sem_num, sem_op, sem_flg)| libc::sembuf {
                sem_num,
                sem_op,
                sem_flg,
            })
            .collect();
        let ret = match timeout {
            Some(t) => {
                let ts = libc::timespec {
                    tv_sec: t.as_secs() as libc::time_t,
                    tv_nsec: t.subsec_nanos() as libc::c_long,
                };
                // SAFETY: sops holds sops.len() sembufs and ts is a valid
                // relative timeout; both outlive the call.
                unsafe { semtimedop(self.id(), sops.as_mut_ptr(), sops.len(), &ts) }
            }
            // SAFETY: sops holds sops.len() sembufs that outlive the call.
            None => unsafe { libc::semop(self.id(), sops.as_mut_ptr(), sops.len()) },
        };
        cvt(ret)?;
        Ok(())
    }

    /// The creator's half of the classic initialisation race: semget and
    /// SETVAL are two calls, so another process may see the new set between
    /// them, with value 0. The creator sets `value`, then performs one semop
    /// that leaves the value unchanged (-1 then +1, or +1 then -1 at 0),
    /// which makes `sem_otime` non-zero: the sign that the set is ready,
    /// which [`SemSet::wait_ready`] waits for.
    ///
    /// # Errors
    /// As for [`SemSet::set_value`] and [`SemSet::op`]; the caller removes
    /// a set it could not initialise.
    ///
    /// # References
    /// [semctl(2)](https://man7.org/linux/man-pages/man2/semctl.2.html),
    /// [semop(2)](https://man7.org/linux/man-pages/man2/semop.2.html)
    pub fn init(&self, value: u32) -> Result<(), Errno> {
        // -1 then +1 needs a unit, +1 then -1 needs room below SEMVMX; one
        // of the two always works, even if a process that does not wait
        // for sem_otime changed the value meanwhile.
        let nowait = op_flags(true, false);
        self.set_value(value)?;
        self.op(&[(0, -1, nowait), (0, 1, nowait)], None)
            .or_else(|_| self.op(&[(0, 1, nowait), (0, -1, nowait)], None))
    }

    /// An opener's half: wait until the set is initialised, briefly and
    /// boundedly, polling IPC_STAT every 10 ms.
    ///
    /// Ready means `sem_otime != 0` (a creator following [`SemSet::init`]
    /// has done its semop). `ipcmk -S`, Python's `sysv_ipc` and many C
    /// programs never do that semop, so their sets keep `sem_otime == 0`
    /// until first used; they must still work. So the wait ends as soon as
    /// `sem_otime` is set, or once the set was last changed (`sem_ctime`:
    /// creation or SETVAL) `max` ago or more, which no creator in
    /// mid-initialisation can be; the whole wait is capped at `max`.
    ///
    /// # Errors
    /// The IPC_STAT errno: EACCES, or EINVAL/EIDRM when the set is gone.
    ///
    /// # References
    /// [semget(2)](https://man7.org/linux/man-pages/man2/semget.2.html) (the
    /// initialisation race, under NOTES)
    pub fn wait_ready(&self, max: Duration) -> Result<(), Errno> {
        let start = Instant::now();
        loop {
            let stat = self.stat()?;
            if stat.otime != 0 {
                return Ok(());
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let age = now.saturating_sub(stat.ctime);
            if age > max.as_secs() as i64 || start.elapsed() >= max {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// `semget(key, nsems, flags)`
fn semget(key: Key, nsems: libc::c_int, flags: libc::c_int) -> Result<Id, Errno> {
    // SAFETY: semget takes plain integers and touches no memory of ours.
    cvt(unsafe { libc::semget(key, nsems, flags) })
}

impl SysvKind for Sem {
    type Stat = SemStat;
    type Raw = libc::semid_ds;
    const KIND: Kind = Kind::SysvSem;

    fn get_existing(key: Key) -> Result<Id, Errno> {
        semget(key, 0, 0)
    }

    unsafe fn ctl(id: Id, cmd: libc::c_int, buf: *mut libc::semid_ds) -> libc::c_int {
        // SAFETY: the caller passes a null or valid buf for cmd; semctl
        // takes it in the union, as the man page asks.
        unsafe { libc::semctl(id, 0, cmd, Semun { buf }) }
    }

    fn from_raw(ds: &libc::semid_ds, id: Id) -> SemStat {
        #[allow(
            clippy::useless_conversion,
            reason = "c_ulong is u32 on 32-bit targets"
        )]
        SemStat {
            perm: Perm::from_raw(&ds.sem_perm, id),
            nsems: u64::from(ds.sem_nsems),
            otime: ds.sem_otime,
            ctime: ds.sem_ctime,
        }
    }

    fn perm(stat: &SemStat) -> &Perm {
        &stat.perm
    }
}
