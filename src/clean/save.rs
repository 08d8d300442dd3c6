//! `clean --stale --save DIR`: each queue and segment saved to its own
//! snapshot file before it is removed. Semaphores hold no data to save.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow};
use serde::Serialize;

use crate::ls::{Object, key_hex};
use crate::object::{Kind, ObjectRef};
use crate::output::{bytes, escape_bytes, plural};
use crate::snapshot::file::AtomicFile;

/// One object saved: what, where, and how much.
#[derive(Serialize)]
pub struct Saved {
    kind: &'static str,
    mechanism: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "key_hex")]
    key: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<i32>,
    #[serde(serialize_with = "crate::record::path")]
    file: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<u64>,
    bytes: u64,
    #[serde(skip)]
    label: String,
}

impl fmt::Display for Saved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "saved {} {} to {}",
            self.mechanism,
            self.label,
            escape_bytes(self.file.as_os_str().as_encoded_bytes())
        )?;
        let size = bytes(self.bytes);
        match self.messages {
            Some(n) => write!(f, " ({}, {size})", plural(n, "message", "messages")),
            None => write!(f, " ({size})"),
        }
    }
}

/// The file `obj` is saved to in `dir`: the mechanism and the name (without
/// its '/'), or the key and id (IPC_PRIVATE objects share key 0).
pub fn file_name(obj: &Object) -> String {
    match (&obj.name, obj.key_hex(), obj.id) {
        (Some(name), _, _) => format!("{}-{}.jsonl", obj.kind, name.trim_start_matches('/')),
        (None, Some(key), Some(id)) => format!("{}-{key}-{id}.jsonl", obj.kind),
        _ => format!("{}.jsonl", obj.kind),
    }
}

/// Save `obj` (found at `target`) into `dir`: `Ok(None)` for a semaphore,
/// which holds nothing to save.
///
/// # Errors
/// The open, read or write error: the object must then be kept. An existing
/// file is not replaced (an earlier save of another object may be in it).
pub fn save(obj: &Object, target: &ObjectRef, dir: &Path) -> Result<Option<Saved>> {
    if matches!(obj.kind, Kind::PosixSem | Kind::SysvSem) {
        return Ok(None);
    }
    let file = dir.join(file_name(obj));
    if file.symlink_metadata().is_ok() {
        return Err(anyhow!(
            "{} exists",
            escape_bytes(file.as_os_str().as_encoded_bytes())
        ));
    }
    let out = AtomicFile::create_new(&file).with_context(|| {
        format!(
            "cannot create a file in {}",
            escape_bytes(dir.as_os_str().as_encoded_bytes())
        )
    })?;
    let saved = crate::snapshot::object::save(target, false, out, &|| false)?;
    let messages = matches!(obj.kind, Kind::PosixMsq | Kind::SysvMsq).then_some(saved.messages);
    let bytes = saved.bytes;
    Ok(Some(Saved {
        kind: "saved",
        mechanism: obj.kind,
        name: obj.name.clone(),
        key: obj.key,
        id: obj.key.and(obj.id),
        file,
        messages,
        bytes,
        label: obj.label(),
    }))
}
