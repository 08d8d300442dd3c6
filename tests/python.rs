//! Both directions with Python's `posix_ipc` and `sysv_ipc`, the modules
//! many of the tool's users write their programs with. `.ci/run` installs
//! them; without them these tests fail and say how to install them.

use std::process::{Command, Output};

use crate::common::{Cleanup, Obj, TempDir, assert_ok, key_hex, run, unique_key, unique_name};

/// Run `script` with python3 and return its output; it must succeed.
fn python(script: &str) -> String {
    let o: Output = Command::new("python3")
        .args(["-c", script])
        .output()
        .expect("cannot run python3");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !err.contains("No module named"),
        "{err}\nthe Python interop tests need posix_ipc and sysv_ipc: \
         python3 -m pip install posix_ipc sysv_ipc (.ci/run installs them)"
    );
    assert!(o.status.success(), "python3 failed: {err}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_posix_ipc_queue_saved_and_restored_reaches_posix_ipc_in_priority_order() {
    let name = unique_name("py-mq");
    let mut guard = Cleanup::new();
    guard.add(Obj::PosixMsq(name.clone()));
    let dir = TempDir::new("py-mq");
    let file = dir.file("q.jsonl");
    python(&format!(
        "import posix_ipc\n\
         q = posix_ipc.MessageQueue('{name}', posix_ipc.O_CREX, mode=0o600,\n\
             max_messages=4, max_message_size=128)\n\
         q.send(b'low', priority=1)\n\
         q.send(b'\\xff\\x00bin', priority=5)\n\
         q.send('mid', priority=3)\n"
    ));
    assert_ok(&run(&["posix", "msq", "-n", &name, "--save", &file]));
    assert_ok(&run(&["posix", "msq", "-n", &name, "--clean"]));
    let said = assert_ok(&run(&["posix", "msq", "--restore", &file]));
    assert!(
        said.contains("3 messages") && said.contains("created"),
        "{said}"
    );
    let got = python(&format!(
        "import posix_ipc\n\
         q = posix_ipc.MessageQueue('{name}')\n\
         print(q.max_messages, q.max_message_size, q.current_messages)\n\
         for _ in range(3):\n\
         \x20   m, p = q.receive(0)\n\
         \x20   print(p, m.hex())\n"
    ));
    assert_eq!(
        got,
        format!(
            "4 128 3\n5 {}\n3 {}\n1 {}\n",
            hex(b"\xff\x00bin"),
            hex(b"mid"),
            hex(b"low")
        )
    );
}

#[test]
fn a_posix_ipc_segment_is_dumped_and_written_by_the_tool() {
    let name = unique_name("py-shm");
    let mut guard = Cleanup::new();
    guard.add(Obj::PosixShm(name.clone()));
    // posix_ipc sizes a new segment with ftruncate: sparse, no pages yet.
    python(&format!(
        "import posix_ipc, mmap\n\
         s = posix_ipc.SharedMemory('{name}', posix_ipc.O_CREX, mode=0o600, size=4096)\n\
         m = mmap.mmap(s.fd, s.size)\n\
         m[:5] = b'hello'\n"
    ));
    let dump = assert_ok(&run(&[
        "posix", "shm", "-n", &name, "--dump", "--length", "16",
    ]));
    assert_eq!(
        dump,
        "00000000: 6865 6c6c 6f00 0000 0000 0000 0000 0000  hello...........\n"
    );
    assert_ok(&run(&["posix", "shm", "-n", &name, "-m", "world!"]));
    let got = python(&format!(
        "import posix_ipc, mmap\n\
         s = posix_ipc.SharedMemory('{name}')\n\
         m = mmap.mmap(s.fd, s.size)\n\
         print(m[:7].hex(), s.size)\n"
    ));
    assert_eq!(got, format!("{}00 4096\n", hex(b"world!")));
}

#[test]
fn sysv_ipc_receives_what_the_tool_sent_and_restored_by_type() {
    let key = unique_key();
    let k = key_hex(key);
    let mut guard = Cleanup::new();
    guard.add(Obj::SysvMsq(key));
    let dir = TempDir::new("py-sysv");
    let file = dir.file("q.jsonl");
    assert_ok(&run(&["sysv", "msq", "-k", &k, "-t", "7", "-m", "seven"]));
    assert_ok(&run(&["sysv", "msq", "-k", &k, "-t", "2", "-m", "two"]));
    assert_ok(&run(&["sysv", "msq", "-k", &k, "--save", &file]));
    assert_ok(&run(&["sysv", "msq", "-k", &k, "--clean"]));
    assert_ok(&run(&["sysv", "msq", "--restore", &file]));
    let got = python(&format!(
        "import sysv_ipc\n\
         q = sysv_ipc.MessageQueue({key})\n\
         print(q.current_messages)\n\
         m, t = q.receive(type=2, block=False)\n\
         print(t, m.decode())\n\
         m, t = q.receive(block=False)\n\
         print(t, m.decode())\n"
    ));
    assert_eq!(got, "2\n2 two\n7 seven\n");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
