//! `socket`: a datagram server that outlives its clients and leaves its
//! socket file, the next server that takes a stale one over, and the paths
//! it must refuse.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::Path;

use crate::common::*;

fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// A socket file without a server: bound, then closed without unlinking.
fn stale_socket(path: &Path) {
    drop(UnixDatagram::bind(path).expect("bind a test socket"));
}

#[test]
fn two_clients_in_turn_then_the_socket_stays() {
    let dir = TempDir::new("sock-two");
    let p = &dir.file("s.sock");
    let mut server = Server::start(&["socket", "-s", "--path", p, "-c", "5", "--timeout", "20"]);
    assert_eq!(
        untimed(&server.seen_out[0]),
        format!("socket {p}: created; waiting for messages")
    );
    let meta = std::fs::symlink_metadata(p).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    assert_ok(&run(&["socket", "--path", p, "-c", "3", "--interval", "0"]));
    for i in 1..=3 {
        assert_eq!(untimed(&server.next_out()), format!(r#"{{"count":{i}}}"#));
    }
    // The first client is gone: the server goes on. One datagram is one
    // message, newline and tab included.
    let out = assert_ok(&run(&[
        "socket",
        "--path",
        p,
        "-m",
        "two\nlines\tand a tab",
    ]));
    assert_eq!(untimed(out.trim_end()), r"sent two\x0alines\x09and a tab");
    assert_eq!(untimed(&server.next_out()), r"two\x0alines\x09and a tab");
    assert_ok(&run(&["socket", "--path", p, "-m", "last"]));
    let (status, out, err) = server.finish();
    assert!(status.success(), "{out:?} {err:?}");
    assert_eq!(untimed(out.last().unwrap()), "last");
    assert_eq!(out.len(), 6, "each datagram exactly once: {out:?}");
    assert!(is_socket(Path::new(p)), "the server leaves its socket");
    assert_ok(&run(&["socket", "--clean", "--path", p]));
}

#[test]
fn json_lines_then_sigterm_leaves_the_socket_to_take_over() {
    let dir = TempDir::new("sock-json");
    let p = &dir.file("s.sock");
    let mut server = Server::start(&["--json", "socket", "-s", "--path", p]);
    let start: serde_json::Value = serde_json::from_str(&server.seen_out[0]).unwrap();
    assert_eq!(start["kind"], "start");
    assert_eq!(start["mechanism"], "socket");
    assert_eq!(start["path"], p.as_str());
    assert_ok(&run(&["socket", "--path", p, "-c", "2", "--interval", "0"]));
    assert_ok(&run(&["socket", "--path", p, "-m", "a\nb"]));
    for want in [
        serde_json::json!({"count": 1}),
        serde_json::json!({"count": 2}),
    ] {
        let line: serde_json::Value = serde_json::from_str(&server.next_out()).unwrap();
        assert_eq!(line["kind"], "message");
        assert_eq!(line["payload"], want);
    }
    let line: serde_json::Value = serde_json::from_str(&server.next_out()).unwrap();
    // JSON text escapes control characters as text lines do.
    assert_eq!(line["text"], r"a\x0ab");
    assert_eq!(line["size"], 3);
    server.signal(libc::SIGTERM);
    let (status, out, _) = server.finish();
    assert_eq!(status.code(), Some(0));
    assert!(out.last().unwrap().contains("canceled"), "{out:?}");
    assert!(
        is_socket(Path::new(p)),
        "SIGTERM leaves the socket in place"
    );

    // The next server takes the stale socket over: a new one, `created`,
    // and a start record with the same fields as before.
    let server = Server::start(&["--json", "socket", "-s", "--path", p, "-c", "1"]);
    let again: serde_json::Value = serde_json::from_str(&server.seen_out[0]).unwrap();
    assert_eq!(again["created"], true);
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&again), keys(&start));
    assert_ok(&run(&["socket", "--path", p, "-m", "after"]));
    let (status, out, _) = server.finish();
    assert!(status.success(), "{out:?}");
    let line: serde_json::Value = serde_json::from_str(&out[1]).unwrap();
    assert_eq!(line["text"], "after");
    let out = assert_ok(&run(&["socket", "--clean", "--path", p]));
    assert_eq!(out, format!("removed socket {p}\n"));
    assert!(!Path::new(p).exists());
}

#[test]
fn a_datagram_above_the_buffer_is_shown_cut() {
    let dir = TempDir::new("sock-cut");
    let p = &dir.file("s.sock");
    let server = Server::start(&["socket", "-s", "--path", p, "-c", "1", "--timeout", "20"]);
    assert_ok(&run(&["socket", "--path", p, "-m", &"x".repeat(70_000)]));
    let (status, out, _) = server.finish();
    assert!(status.success());
    let line = untimed(&out[1]);
    assert!(
        line.starts_with("(cut: 70000 bytes, the first 65536 shown) xxx"),
        "{}",
        &line[..80]
    );
    assert_eq!(
        line.len(),
        "(cut: 70000 bytes, the first 65536 shown) ".len() + 65_536
    );
}

#[test]
fn refuses_a_regular_file_and_leaves_it() {
    let dir = TempDir::new("sock-reg");
    let p = &dir.file("reg");
    std::fs::write(p, "precious").unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o640)).unwrap();
    let refusal = format!("{p} is a regular file, not a socket");
    for args in [
        &["socket", "-s", "--path", p][..],
        &["socket", "--clean", "--path", p],
        &["socket", "--path", p, "-c", "1"],
    ] {
        let err = assert_fails(&run(args), 1, &refusal);
        assert!(err.contains("hint: choose another path"), "{err}");
    }
    assert_eq!(std::fs::read_to_string(p).unwrap(), "precious");
    let mode = std::fs::metadata(p).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640);
}

#[test]
fn refuses_a_symlink_even_to_a_socket() {
    let dir = TempDir::new("sock-link");
    let target = dir.0.join("target.sock");
    let link = dir.file("link.sock");
    stale_socket(&target);
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for args in [
        &["socket", "-s", "--path", &link][..],
        &["socket", "--clean", "--path", &link],
        &["socket", "--path", &link, "-c", "1"],
    ] {
        assert_fails(&run(args), 1, "is a symbolic link, not a socket");
    }
    let meta = std::fs::symlink_metadata(&link).unwrap();
    assert!(meta.file_type().is_symlink());
    assert!(is_socket(&target));
}

#[test]
fn a_live_server_is_not_taken_over() {
    let dir = TempDir::new("sock-live");
    let p = &dir.file("s.sock");
    let server = Server::start(&["socket", "-s", "--path", p, "-c", "1", "--timeout", "20"]);
    let err = assert_fails(
        &run(&["socket", "-s", "--path", p, "-c", "1"]),
        1,
        "another server is reading it",
    );
    assert!(err.contains(&format!("cannot serve socket {p}")), "{err}");
    // The refused server removed nothing: the first one still gets messages.
    assert!(is_socket(Path::new(p)));
    assert_ok(&run(&["socket", "--path", p, "-m", "still here"]));
    let (status, out, _) = server.finish();
    assert!(status.success());
    assert_eq!(untimed(&out[1]), "still here");
}

#[test]
fn a_stale_socket_is_taken_over_then_cleaned() {
    let dir = TempDir::new("sock-stale");
    let p = &dir.file("s.sock");
    stale_socket(Path::new(p));
    let err = assert_fails(
        &run(&["socket", "--path", p, "-c", "1"]),
        1,
        "no server is reading it",
    );
    assert!(err.contains("hint: start the server first"), "{err}");
    assert!(is_socket(Path::new(p)), "a client leaves it");

    let server = Server::start(&["socket", "-s", "--path", p, "-c", "1", "--timeout", "20"]);
    assert_eq!(
        untimed(&server.seen_out[0]),
        format!("socket {p}: replaced a stale socket; waiting for messages")
    );
    let mode = std::fs::symlink_metadata(p).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "its own socket, with --mode");
    assert_ok(&run(&["socket", "--path", p, "-m", "served"]));
    let (status, out, err) = server.finish();
    assert!(status.success(), "{out:?} {err:?}");
    assert_eq!(untimed(&out[1]), "served");
    assert!(is_socket(Path::new(p)));

    let out = assert_ok(&run(&["socket", "--clean", "--path", p]));
    assert_eq!(out, format!("removed socket {p}\n"));
    assert!(!Path::new(p).exists());
    let err = assert_fails(
        &run(&["socket", "--clean", "--path", p]),
        1,
        "no such socket",
    );
    assert_eq!(
        err,
        format!("error: cannot remove socket {p}: no such socket\n")
    );
}

/// std refuses a path longer than `sun_path` with an error that has no
/// errno: it used to read `Input/output error (EIO)`.
#[test]
fn a_path_longer_than_a_socket_address_is_refused_by_its_length() {
    let dir = TempDir::new("sock-long");
    let p = &dir.file(&"s".repeat(110));
    let o = run(&["socket", "-s", "--path", p, "-c", "1"]);
    let err = assert_fails(&o, 1, "a socket's address holds at most 107");
    assert!(err.contains(&p.len().to_string()), "{err}");
    assert!(err.contains("hint: choose a shorter path"), "{err}");
    assert!(!Path::new(p).exists());
}

#[test]
fn client_without_a_socket_creates_nothing() {
    let dir = TempDir::new("sock-none");
    let p = &dir.file("s.sock");
    let err = assert_fails(
        &run(&["socket", "--path", p, "-c", "1"]),
        1,
        "no such socket",
    );
    assert!(
        err.contains(&format!("examples-ipc socket -s --path {p}")),
        "{err}"
    );
    assert!(!Path::new(p).exists());
    // Options of another mode: a usage error, before anything is made.
    assert_fails(
        &run(&["socket", "-s", "--path", p, "-m", "x"]),
        2,
        "--message",
    );
    assert_fails(&run(&["socket", "--clean", "--path", p, "-c", "1"]), 2, "");
    assert!(!Path::new(p).exists());
}

#[test]
fn removed_under_the_server_ends_it() {
    let dir = TempDir::new("sock-rm");
    let p = &dir.file("s.sock");
    let server = Server::start(&["socket", "-s", "--path", p, "--timeout", "20"]);
    assert_ok(&run(&["socket", "--clean", "--path", p]));
    server.fails_with(&format!("socket {p} was removed under the server (unlink)"));
}

#[test]
fn replaced_under_the_server_ends_it_and_the_new_one_stays() {
    let dir = TempDir::new("sock-swap");
    let p = &dir.file("s.sock");
    let server = Server::start(&["socket", "-s", "--path", p, "--timeout", "20"]);
    std::fs::remove_file(p).unwrap();
    // Another socket file at the same path: not the server's to remove.
    stale_socket(Path::new(p));
    server.fails_with("was removed under the server");
    assert!(is_socket(Path::new(p)));
}

#[test]
fn tour_runs_the_socket_step_and_removes_its_socket() {
    let o = run(&["tour", "--only", "socket"]);
    let out = assert_ok(&o);
    assert!(out.contains("== Unix datagram socket: "), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("  server | ") && l.ends_with(" a second writer")),
        "{out}"
    );
    let socket = out
        .lines()
        .find_map(|l| l.strip_prefix("  removed socket "))
        .expect("the tour removes its socket");
    assert!(!Path::new(socket).exists(), "{socket}");
}
