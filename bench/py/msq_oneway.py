"""Python posix_ipc baseline: same as bench/c/msq_oneway.c."""
import sys, time, posix_ipc
mode, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "recv":
    q = posix_ipc.MessageQueue(name, posix_ipc.O_CREAT, mode=0o600, max_messages=10, max_message_size=8192)
    out = sys.stdout.buffer
    for i in range(count):
        msg, _ = q.receive()
        if i == 0:
            t0 = time.monotonic()
        out.write(msg + b"\n")
    out.flush()
    print(f"{(count - 1) / (time.monotonic() - t0):.0f} msgs/s", file=sys.stderr)
    q.unlink()
else:
    q = posix_ipc.MessageQueue(name)
    for i in range(1, count + 1):
        q.send(b'{"count":%d}' % i)
