//! `man --dir`: one page per command, each one rendering without a warning
//! and naming only pages that exist.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::common::*;

/// The roff source as a reader sees the words: `\-` is `-`, fonts dropped.
fn plain(roff: &str) -> String {
    roff.replace("\\-", "-")
        .replace("\\fB", "")
        .replace("\\fI", "")
        .replace("\\fR", "")
        .replace("\\fP", "")
}

/// The `.SH` headings of a page, in order.
fn sections(roff: &str) -> Vec<String> {
    roff.lines()
        .filter_map(|l| l.strip_prefix(".SH "))
        .map(|h| h.trim_matches('"').to_string())
        .collect()
}

/// The text of one section.
fn section<'a>(roff: &'a str, name: &str) -> &'a str {
    // roff quotes a heading with a space: `.SH "SEE ALSO"`.
    let heads = [format!(".SH {name}\n"), format!(".SH \"{name}\"\n")];
    let Some((start, head)) = heads
        .iter()
        .find_map(|h| roff.find(h.as_str()).map(|i| (i, h)))
    else {
        return "";
    };
    let body = &roff[start + head.len()..];
    &body[..body.find("\n.SH ").unwrap_or(body.len())]
}

/// Every `name(section)` reference in a text.
fn references(text: &str) -> Vec<(String, String)> {
    let mut refs = Vec::new();
    for (i, _) in text.match_indices('(') {
        let name: String = text[..i]
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let rest = &text[i + 1..];
        let Some(end) = rest.find(')') else { continue };
        let sect = &rest[..end];
        if !name.is_empty() && sect.len() == 1 && sect.chars().all(|c| c.is_ascii_digit()) {
            refs.push((name, sect.to_string()));
        }
    }
    refs
}

fn groff_warnings(page: &Path) -> String {
    let o = Command::new("groff")
        .args(["-man", "-ww", "-Tutf8"])
        .arg(page)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("groff is needed (.ci/run installs groff-base)");
    assert!(o.status.success(), "{}: groff failed", page.display());
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn man_dir_writes_a_page_per_command_that_renders_cleanly() {
    let dir = TempDir::new("man");
    // A directory that does not exist yet is made, as install -D would.
    let target = dir.0.join("man1");
    let out = assert_ok(&run(&["man", "--dir", target.to_str().unwrap()]));
    let files: BTreeSet<String> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        out.starts_with(&format!("wrote {} man pages to ", files.len())),
        "{out}"
    );
    for page in [
        "examples-ipc.1",
        "examples-ipc-posix.1",
        "examples-ipc-posix-msq.1",
        "examples-ipc-posix-shm.1",
        "examples-ipc-posix-sem.1",
        "examples-ipc-sysv.1",
        "examples-ipc-sysv-msq.1",
        "examples-ipc-sysv-shm.1",
        "examples-ipc-sysv-sem.1",
        "examples-ipc-ls.1",
        "examples-ipc-clean.1",
        "examples-ipc-limits.1",
        "examples-ipc-bench.1",
        "examples-ipc-tour.1",
        "examples-ipc-fifo.1",
        "examples-ipc-pipe.1",
        "examples-ipc-completions.1",
        "examples-ipc-man.1",
        "examples-ipc-demo.1",
        "examples-ipc-demo-race.1",
        "examples-ipc-demo-memfd.1",
    ] {
        assert!(files.contains(page), "{page} missing: {files:?}");
    }
    assert!(!files.iter().any(|f| f.contains("help")), "{files:?}");

    for file in &files {
        check_page(&target, &files, file);
    }

    // FILES where a file applies.
    let page = |name: &str| plain(&std::fs::read_to_string(target.join(name)).unwrap());
    let files_of = |name: &str| {
        let text = page(name);
        let roff = text.clone();
        section(&roff, "FILES").to_string()
    };
    assert!(files_of("examples-ipc-posix-msq.1").contains("/dev/mqueue"));
    assert!(files_of("examples-ipc-posix-msq.1").contains("/proc/sys/fs/mqueue/"));
    assert!(files_of("examples-ipc-posix-shm.1").contains("/dev/shm"));
    assert!(files_of("examples-ipc-sysv-sem.1").contains("/proc/sysvipc/sem"));
    let ls = files_of("examples-ipc-ls.1");
    for f in [
        "/dev/shm",
        "/dev/mqueue",
        "/proc/sysvipc/msg",
        "/proc/sysvipc/shm",
        "/proc/sysvipc/sem",
    ] {
        assert!(ls.contains(f), "ls FILES lacks {f}: {ls}");
    }
    assert_eq!(files_of("examples-ipc-pipe.1"), "");
    // A mechanism's page names its modes and that no flag means client.
    let msq = page("examples-ipc-posix-msq.1");
    let modes = section(&msq, "MODES");
    assert!(modes.contains("with none, the client runs"), "{modes}");
    assert!(modes.contains("--server") && modes.contains("--clean") && modes.contains("--stat"));
    assert!(section(&msq, "EXAMPLES").contains("examples-ipc posix msq -s"));

    // The top page names each channel's overview, not its system calls.
    let top = page("examples-ipc.1");
    let see_also = section(&top, "SEE ALSO");
    for name in ["fifo(7)", "unix(7)", "pipe(7)"] {
        assert!(see_also.contains(name), "{name}: {see_also}");
    }
    assert!(!see_also.contains("bind(2)"), "{see_also}");

    // `man` alone still prints the top page, the same one.
    let top = assert_ok(&run(&["man"]));
    assert_eq!(
        top,
        std::fs::read_to_string(target.join("examples-ipc.1")).unwrap()
    );
}

/// One written page renders cleanly, has the sections every page has, and
/// names only pages that exist: ours that were written, or the system's.
fn check_page(target: &Path, files: &BTreeSet<String>, file: &str) {
    let system: BTreeSet<&str> = [
        "ipcs(1)",
        "lsipc(1)",
        "ipcrm(1)",
        "mq_overview(7)",
        "shm_overview(7)",
        "sem_overview(7)",
        "sysvipc(7)",
        "fifo(7)",
        "pipe(7)",
        "mkfifo(3)",
        "unix(7)",
        "bind(2)",
        "connect(2)",
        "recv(2)",
        "memfd_create(2)",
    ]
    .into();
    let path = target.join(file);
    let warnings = groff_warnings(&path);
    assert!(warnings.is_empty(), "{file}: {warnings}");
    let roff = std::fs::read_to_string(&path).unwrap();
    let heads = sections(&roff);
    for needed in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "EXAMPLES",
        "EXIT STATUS",
        "SEE ALSO",
    ] {
        assert!(
            heads.iter().any(|h| h == needed),
            "{file}: no {needed}: {heads:?}"
        );
    }
    // Every reference to one of our pages names a page that was
    // written; every other one is a page of the system.
    let text = plain(&roff);
    for (name, sect) in references(&text) {
        let r = format!("{name}({sect})");
        if name.starts_with("examples-ipc") {
            assert!(
                files.contains(&format!("{name}.{sect}")),
                "{file} names {r}, which was not written"
            );
        }
    }
    let see_also = plain(section(&roff, "SEE ALSO"));
    let refs = references(&see_also);
    assert!(!refs.is_empty(), "{file}: empty SEE ALSO");
    for (name, sect) in refs {
        let r = format!("{name}({sect})");
        assert!(
            name.starts_with("examples-ipc") || system.contains(r.as_str()),
            "{file}: SEE ALSO names {r}"
        );
    }
    for must in ["ipcs(1)", "lsipc(1)", "mq_overview(7)"] {
        assert!(see_also.contains(must), "{file}: SEE ALSO lacks {must}");
    }
}

#[test]
fn man_dir_that_cannot_be_written_fails_with_its_path() {
    let dir = TempDir::new("man-bad");
    let file = dir.0.join("a-file");
    std::fs::write(&file, "").unwrap();
    let o = run(&["man", "--dir", file.to_str().unwrap()]);
    let err = assert_fails(&o, 1, "cannot create directory");
    assert!(err.contains("a-file"), "{err}");
    // The errno as everywhere: strerror's text and the name, not `(os error 17)`.
    assert!(err.trim_end().ends_with(": File exists (EEXIST)"), "{err}");
    assert!(o.stdout.is_empty());
}
