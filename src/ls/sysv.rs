//! System V objects from /proc/sysvipc/{msg,shm,sem}, completed by the
//! few fields /proc does not show: a queue's qbytes (msgctl IPC_STAT) and a
//! set's values, last pids and waiters (semctl GETALL, GETPID, GETNCNT,
//! GETZCNT). Those need read permission; without it they are null and the
//! object is counted as not readable.

use std::fs;

use nix::errno::Errno;
use serde_json::{Value, json};

use super::{Kind, Object, Scan, time};

/// The columns of one /proc/sysvipc line by header name.
struct Row<'a> {
    header: &'a [&'a str],
    cols: Vec<&'a str>,
}

impl Row<'_> {
    fn get(&self, name: &str) -> Option<i64> {
        let i = self.header.iter().position(|h| *h == name)?;
        self.cols.get(i)?.parse().ok()
    }
}

fn read_table(path: &str, scan: &mut Scan, mut each: impl FnMut(&Row, &mut Scan)) {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            scan.notes.push(format!("cannot read {path}: {e}"));
            return;
        }
    };
    let mut lines = text.lines();
    let Some(header) = lines.next() else { return };
    let header: Vec<&str> = header.split_ascii_whitespace().collect();
    for l in lines {
        let row = Row {
            header: &header,
            cols: l.split_ascii_whitespace().collect(),
        };
        each(&row, scan);
    }
}

/// Key, id, owners and perms: the fields every System V object shares.
fn common(kind: Kind, row: &Row) -> Option<Object> {
    let mut obj = Object::new(kind);
    obj.key = Some(row.get("key")? as i32);
    obj.id = Some(i32::try_from(row.get(kind.id_column())?).ok()?);
    // /proc/sysvipc prints perms in octal ("%4o").
    let i = row.header.iter().position(|h| *h == "perms")?;
    let perms = u32::from_str_radix(row.cols.get(i)?, 8).ok()?;
    obj.set_owner(
        u32::try_from(row.get("uid")?).ok()?,
        u32::try_from(row.get("gid")?).ok()?,
        perms,
    );
    obj.cuid = u32::try_from(row.get("cuid")?).ok();
    obj.cgid = u32::try_from(row.get("cgid")?).ok();
    Some(obj)
}

pub fn scan_msg(scan: &mut Scan) {
    read_table("/proc/sysvipc/msg", scan, |row, scan| {
        let Some(mut obj) = common(Kind::SysvMsq, row) else {
            return;
        };
        let id = obj.id.unwrap_or(-1);
        let qbytes = match SysvIds::msg_qbytes(id) {
            Ok(q) => json!(q),
            Err(_) => {
                scan.unreadable += 1;
                obj.note = Some("not readable by this user: qbytes unknown".into());
                Value::Null
            }
        };
        let f = &mut obj.fields;
        f.insert("qnum".into(), json!(row.get("qnum")));
        f.insert("qbytes".into(), qbytes);
        f.insert("cbytes".into(), json!(row.get("cbytes")));
        f.insert("lspid".into(), json!(row.get("lspid")));
        f.insert("lrpid".into(), json!(row.get("lrpid")));
        f.insert("stime".into(), time(row.get("stime").unwrap_or(0)));
        f.insert("rtime".into(), time(row.get("rtime").unwrap_or(0)));
        f.insert("ctime".into(), time(row.get("ctime").unwrap_or(0)));
        obj.size = row.get("cbytes").and_then(|b| u64::try_from(b).ok());
        obj.pids = vec![row.get("lspid").unwrap_or(0), row.get("lrpid").unwrap_or(0)];
        scan.objects.push(obj);
    });
}

pub fn scan_shm(scan: &mut Scan) {
    read_table("/proc/sysvipc/shm", scan, |row, scan| {
        let Some(mut obj) = common(Kind::SysvShm, row) else {
            return;
        };
        let f = &mut obj.fields;
        f.insert("size".into(), json!(row.get("size")));
        f.insert("nattch".into(), json!(row.get("nattch")));
        f.insert("cpid".into(), json!(row.get("cpid")));
        f.insert("lpid".into(), json!(row.get("lpid")));
        f.insert("atime".into(), time(row.get("atime").unwrap_or(0)));
        f.insert("dtime".into(), time(row.get("dtime").unwrap_or(0)));
        f.insert("ctime".into(), time(row.get("ctime").unwrap_or(0)));
        f.insert("rss".into(), json!(row.get("rss")));
        f.insert("swap".into(), json!(row.get("swap")));
        obj.size = row.get("size").and_then(|b| u64::try_from(b).ok());
        obj.nattch = row.get("nattch").unwrap_or(0);
        obj.pids = vec![row.get("cpid").unwrap_or(0), row.get("lpid").unwrap_or(0)];
        scan.objects.push(obj);
    });
}

pub fn scan_sem(scan: &mut Scan) {
    read_table("/proc/sysvipc/sem", scan, |row, scan| {
        let Some(mut obj) = common(Kind::SysvSem, row) else {
            return;
        };
        let id = obj.id.unwrap_or(-1);
        let nsems = row.get("nsems").unwrap_or(0);
        let detail = usize::try_from(nsems)
            .ok()
            .map(|n| SysvIds::sem_detail(id, n));
        let f = &mut obj.fields;
        f.insert("nsems".into(), json!(nsems));
        match detail {
            Some(Ok(d)) => {
                f.insert("values".into(), json!(d.values));
                f.insert("pids".into(), json!(d.pids));
                f.insert("waiters".into(), json!(d.waiters));
                obj.pids = d.pids.iter().map(|p| i64::from(*p)).collect();
                obj.waiters = d.waiters;
            }
            _ => {
                scan.unreadable += 1;
                obj.note = Some("not readable by this user: values unknown".into());
                // The note makes the verdict unknown: never called orphaned.
                for k in ["values", "pids", "waiters"] {
                    f.insert(k.into(), Value::Null);
                }
            }
        }
        f.insert("otime".into(), time(row.get("otime").unwrap_or(0)));
        f.insert("ctime".into(), time(row.get("ctime").unwrap_or(0)));
        scan.objects.push(obj);
    });
}

struct SemDetail {
    values: Vec<u16>,
    pids: Vec<i32>,
    waiters: u64,
}

/// msgctl/semctl by id: no handle to close, so the calls live here.
struct SysvIds;

impl SysvIds {
    /// `msgctl(id, IPC_STAT)`: the queue's byte limit.
    fn msg_qbytes(id: i32) -> Result<u64, Errno> {
        // SAFETY: msqid_ds is plain old data; all-zero is a valid value.
        let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: ds is a valid, writable msqid_ds for IPC_STAT to fill.
        Errno::result(unsafe { libc::msgctl(id, libc::IPC_STAT, &mut ds) })?;
        Ok(ds.msg_qbytes as u64)
    }

    /// `semctl(GETALL)`, then GETPID, GETNCNT and GETZCNT per semaphore.
    fn sem_detail(id: i32, nsems: usize) -> Result<SemDetail, Errno> {
        let mut values = vec![0u16; nsems.max(1)];
        // SAFETY: GETALL writes nsems unsigned shorts to the array passed as
        // the semun argument; the array has at least nsems elements.
        Errno::result(unsafe { libc::semctl(id, 0, libc::GETALL, values.as_mut_ptr()) })?;
        values.truncate(nsems);
        let mut pids = Vec::with_capacity(nsems);
        let mut waiters = 0u64;
        for i in 0..nsems as libc::c_int {
            // SAFETY: GETPID, GETNCNT and GETZCNT read no semun argument.
            pids.push(Errno::result(unsafe { libc::semctl(id, i, libc::GETPID) })?);
            // SAFETY: as above.
            let n = Errno::result(unsafe { libc::semctl(id, i, libc::GETNCNT) })?;
            // SAFETY: as above.
            let z = Errno::result(unsafe { libc::semctl(id, i, libc::GETZCNT) })?;
            waiters += u64::try_from(n).unwrap_or(0) + u64::try_from(z).unwrap_or(0);
        }
        Ok(SemDetail {
            values,
            pids,
            waiters,
        })
    }
}
