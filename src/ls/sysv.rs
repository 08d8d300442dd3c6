//! System V objects from /proc/sysvipc/{msg,shm,sem}, completed by the
//! few fields /proc does not show: a queue's qbytes (msgctl IPC_STAT) and,
//! for each semaphore of a set, its value, waiters and last pid (semctl
//! GETALL, GETNCNT, GETZCNT, GETPID, through the semaphore handle). Those
//! need read permission; without it they are null and the object is
//! counted as not readable.

use nix::errno::Errno;

use super::record::{Creator, SysvMsq, SysvSem, SysvShm, Time};
use super::{Fields, Kind, Object, Scan};
use crate::ipc::sysv_msq::SysvQueue;
use crate::ipc::sysv_sem::SemSet;
use crate::procfs::{Row, Table, read_sysvipc, sysvipc_path};

fn read_table(file: &str, scan: &mut Scan, mut each: impl FnMut(&Row, &mut Scan)) {
    let text = match read_sysvipc(file) {
        Ok(t) => t,
        Err(e) => {
            scan.notes
                .push(format!("cannot read {}: {e}", sysvipc_path(file)));
            return;
        }
    };
    for row in Table::parse(&text).rows() {
        each(&row, scan);
    }
}

/// A time column: seconds since the epoch, 0 for never (or missing).
fn time(row: &Row, column: &str) -> Time {
    Time(row.get(column).unwrap_or(0))
}

/// The id column's name in `ipcs` style.
fn id_column(kind: Kind) -> &'static str {
    match kind {
        Kind::SysvMsq => "msqid",
        Kind::SysvShm => "shmid",
        _ => "semid",
    }
}

/// Key, id, owners and perms: the fields every System V object shares.
fn common(row: &Row, fields: Fields) -> Option<Object> {
    let mut obj = Object::new(fields);
    obj.key = Some(row.get("key")? as i32);
    obj.id = Some(i32::try_from(row.get(id_column(obj.kind))?).ok()?);
    // /proc/sysvipc prints perms in octal ("%4o").
    let perms = u32::from_str_radix(row.text("perms")?, 8).ok()?;
    obj.set_owner(
        u32::try_from(row.get("uid")?).ok()?,
        u32::try_from(row.get("gid")?).ok()?,
        perms,
    );
    obj.creator = Some(Creator {
        cuid: u32::try_from(row.get("cuid")?).ok(),
        cgid: u32::try_from(row.get("cgid")?).ok(),
    });
    Some(obj)
}

pub fn scan_msg(scan: &mut Scan) {
    read_table("msg", scan, |row, scan| {
        let fields = SysvMsq {
            qnum: row.get("qnum"),
            qbytes: None,
            cbytes: row.get("cbytes"),
            lspid: row.get("lspid"),
            lrpid: row.get("lrpid"),
            stime: time(row, "stime"),
            rtime: time(row, "rtime"),
            ctime: time(row, "ctime"),
        };
        let Some(mut obj) = common(row, Fields::SysvMsq(fields)) else {
            return;
        };
        let qbytes = SysvQueue::with_id(obj.id.unwrap_or(-1)).stat();
        match (&mut obj.fields, qbytes) {
            (Fields::SysvMsq(q), Ok(stat)) => q.qbytes = Some(stat.qbytes),
            _ => {
                scan.unreadable += 1;
                obj.note = Some("not readable by this user: qbytes unknown".into());
            }
        }
        scan.objects.push(obj);
    });
}

pub fn scan_shm(scan: &mut Scan) {
    read_table("shm", scan, |row, scan| {
        let fields = SysvShm {
            size: row.get("size"),
            nattch: row.get("nattch"),
            cpid: row.get("cpid"),
            lpid: row.get("lpid"),
            atime: time(row, "atime"),
            dtime: time(row, "dtime"),
            ctime: time(row, "ctime"),
            rss: row.get("rss"),
            swap: row.get("swap"),
            // SHM_DEST, which /proc/sysvipc/shm prints with the mode.
            removed: row
                .text("perms")
                .and_then(|p| u32::from_str_radix(p, 8).ok())
                .is_some_and(|mode| mode & 0o1000 != 0),
        };
        if let Some(obj) = common(row, Fields::SysvShm(fields)) {
            scan.objects.push(obj);
        }
    });
}

pub fn scan_sem(scan: &mut Scan) {
    read_table("sem", scan, |row, scan| {
        let fields = SysvSem {
            nsems: row.get("nsems").unwrap_or(0),
            values: None,
            pids: None,
            waiters: None,
            otime: time(row, "otime"),
            ctime: time(row, "ctime"),
            sems: None,
        };
        let Some(mut obj) = common(row, Fields::SysvSem(fields)) else {
            return;
        };
        let sems = SemSet::with_id(obj.id.unwrap_or(-1)).semaphores();
        match (&mut obj.fields, sems) {
            (Fields::SysvSem(set), Ok(sems)) => {
                let waiters = sems
                    .iter()
                    .map(|s| {
                        u64::try_from(s.ncount).unwrap_or(0) + u64::try_from(s.zcount).unwrap_or(0)
                    })
                    .sum();
                set.values = Some(sems.iter().map(|s| s.value).collect());
                set.pids = Some(sems.iter().map(|s| s.pid).collect());
                set.waiters = Some(waiters);
                set.sems = Some(sems);
            }
            // One set that is gone or closed to this user leaves its
            // values null; the listing goes on. The note makes the
            // verdict unknown: never called orphaned.
            (_, Err(Errno::EINVAL | Errno::EIDRM)) => {
                obj.note = Some("removed while being listed".into());
            }
            _ => {
                scan.unreadable += 1;
                obj.note = Some("not readable by this user: values unknown".into());
            }
        }
        scan.objects.push(obj);
    });
}
