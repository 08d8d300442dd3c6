/* Minimal C ping-pong baseline for `examples-ipc bench`: a parent and a
 * forked child bounce one SIZE-byte message COUNT times; prints ns per round
 * trip. No verification, no timing per round trip: the floor to compare with.
 *
 *   pingpong MECH COUNT SIZE PARENT_CPU CHILD_CPU   (CPU -1: no pinning)
 *   MECH: pipe vmsplice fifo unix unix-dgram tcp posix-msq sysv-msq shm-spin
 *         shm-futex shm-sem eventfd, or floor (one atomic word, no payload,
 *         a spin with a pause hint; SIZE is ignored)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/uio.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) { perror(what); exit(1); }

static void pin(int cpu) {
    if (cpu < 0) return;
    cpu_set_t s; CPU_ZERO(&s); CPU_SET(cpu, &s);
    if (sched_setaffinity(0, sizeof s, &s)) die("sched_setaffinity");
}

static void xread(int fd, char *b, size_t n) {
    while (n) { ssize_t r = read(fd, b, n); if (r <= 0) die("read"); b += r; n -= r; }
}
static void xwrite(int fd, const char *b, size_t n) {
    while (n) { ssize_t r = write(fd, b, n); if (r <= 0) die("write"); b += r; n -= r; }
}
static void xvmsplice(int fd, const char *b, size_t n) {
    while (n) {
        struct iovec v = { (void *)b, n };
        ssize_t r = vmsplice(fd, &v, 1, 0); if (r <= 0) die("vmsplice"); b += r; n -= r;
    }
}

struct slot { _Alignas(64) atomic_uint seq; _Alignas(64) char data[1 << 20]; };

static long futex(atomic_uint *w, int op, unsigned v) {
    return syscall(SYS_futex, w, op, v, NULL, NULL, 0);
}

int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: %s MECH COUNT SIZE PARENT_CPU CHILD_CPU\n", argv[0]); return 2; }
    const char *m = argv[1];
    long count = atol(argv[2]);
    size_t size = atol(argv[3]);
    int pcpu = atoi(argv[4]), ccpu = atoi(argv[5]);
    char *buf = calloc(1, size + sizeof(long));
    int down[2], up[2];            /* [0] read end, [1] write end */
    mqd_t mq_down = 0, mq_up = 0;
    int msq = -1;
    sem_t *s_down = NULL, *s_up = NULL;
    struct slot *sl = NULL;
    char name[64];

    if (!strcmp(m, "pipe")) {
        if (pipe(down) || pipe(up)) die("pipe");
    } else if (!strcmp(m, "fifo")) {
        char a[64], b[64];
        snprintf(a, sizeof a, "/tmp/pp-%d-a", getpid()); snprintf(b, sizeof b, "/tmp/pp-%d-b", getpid());
        if (mkfifo(a, 0600) || mkfifo(b, 0600)) die("mkfifo");
        if ((down[0] = open(a, O_RDONLY | O_NONBLOCK)) < 0 || (down[1] = open(a, O_WRONLY)) < 0) die("open");
        if ((up[0] = open(b, O_RDONLY | O_NONBLOCK)) < 0 || (up[1] = open(b, O_WRONLY)) < 0) die("open");
        fcntl(down[0], F_SETFL, 0); fcntl(up[0], F_SETFL, 0);
        unlink(a); unlink(b);
    } else if (!strcmp(m, "vmsplice")) {
        if (pipe(down) || pipe(up)) die("pipe");
    } else if (!strcmp(m, "unix") || !strcmp(m, "unix-dgram")) {
        int sv[2];
        if (socketpair(AF_UNIX, strcmp(m, "unix") ? SOCK_DGRAM : SOCK_STREAM, 0, sv)) die("socketpair");
        down[1] = up[0] = sv[0]; down[0] = up[1] = sv[1];
    } else if (!strcmp(m, "tcp")) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t al = sizeof a;
        int l = socket(AF_INET, SOCK_STREAM, 0), one = 1, c, s2;
        if (l < 0 || bind(l, (void *)&a, sizeof a) || listen(l, 1) || getsockname(l, (void *)&a, &al)) die("listen");
        if ((c = socket(AF_INET, SOCK_STREAM, 0)) < 0 || connect(c, (void *)&a, sizeof a)) die("connect");
        if ((s2 = accept(l, NULL, NULL)) < 0) die("accept");
        close(l);
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(s2, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        down[1] = up[0] = c; down[0] = up[1] = s2;
    } else if (!strcmp(m, "posix-msq")) {
        struct mq_attr at = { .mq_maxmsg = 10, .mq_msgsize = size };
        snprintf(name, sizeof name, "/pp-%d-a", getpid());
        if ((mq_down = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &at)) < 0) die("mq_open");
        mq_unlink(name);
        snprintf(name, sizeof name, "/pp-%d-b", getpid());
        if ((mq_up = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &at)) < 0) die("mq_open");
        mq_unlink(name);
    } else if (!strcmp(m, "sysv-msq")) {
        if ((msq = msgget(IPC_PRIVATE, IPC_CREAT | 0600)) < 0) die("msgget");
    } else {
        sl = mmap(NULL, 2 * sizeof *sl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (sl == MAP_FAILED) die("mmap");
        if (!strcmp(m, "shm-sem")) {
            snprintf(name, sizeof name, "/pp-%d-a", getpid());
            if ((s_down = sem_open(name, O_CREAT | O_EXCL, 0600, 0)) == SEM_FAILED) die("sem_open");
            sem_unlink(name);
            snprintf(name, sizeof name, "/pp-%d-b", getpid());
            if ((s_up = sem_open(name, O_CREAT | O_EXCL, 0600, 0)) == SEM_FAILED) die("sem_open");
            sem_unlink(name);
        } else if (!strcmp(m, "eventfd")) {
            if ((down[0] = down[1] = eventfd(0, EFD_SEMAPHORE)) < 0) die("eventfd");
            if ((up[0] = up[1] = eventfd(0, EFD_SEMAPHORE)) < 0) die("eventfd");
        } else if (strcmp(m, "shm-spin") && strcmp(m, "shm-futex") && strcmp(m, "floor")) {
            fprintf(stderr, "unknown mechanism %s\n", m); return 2;
        }
    }

    pin(pcpu);
    pid_t pid = fork();
    if (pid < 0) die("fork");
    int child = pid == 0;
    if (child) { prctl(PR_SET_PDEATHSIG, SIGKILL); pin(ccpu); }
    /* rx/tx for this side */
    int rfd = child ? down[0] : up[0], wfd = child ? up[1] : down[1];
    mqd_t mrx = child ? mq_down : mq_up, mtx = child ? mq_up : mq_down;
    long rtype = child ? 1 : 2, ttype = child ? 2 : 1;
    sem_t *srx = child ? s_down : s_up, *stx = child ? s_up : s_down;
    struct slot *rs = sl ? (child ? &sl[0] : &sl[1]) : NULL, *ts = sl ? (child ? &sl[1] : &sl[0]) : NULL;
    unsigned seen = 0, sent = 0;
    int kind = !strcmp(m, "shm-spin") ? 1 : !strcmp(m, "shm-futex") ? 2 : !strcmp(m, "shm-sem") ? 3
             : !strcmp(m, "eventfd") ? 4 : !strcmp(m, "posix-msq") ? 5 : !strcmp(m, "sysv-msq") ? 6
             : !strcmp(m, "unix-dgram") ? 7 : !strcmp(m, "vmsplice") ? 8 : !strcmp(m, "floor") ? 9 : 0;

#define SEND() do { switch (kind) { \
    case 0: xwrite(wfd, buf, size); break; \
    case 5: if (mq_send(mtx, buf, size, 0)) die("mq_send"); break; \
    case 6: *(long *)buf = ttype; if (msgsnd(msq, buf, size, 0)) die("msgsnd"); break; \
    case 7: if (send(wfd, buf, size, 0) != (ssize_t)size) die("send"); break; \
    case 8: xvmsplice(wfd, buf, size); break; \
    default: memcpy(ts->data, buf, size); atomic_store_explicit(&ts->seq, ++sent, memory_order_release); \
        if (kind == 2) futex(&ts->seq, FUTEX_WAKE, 1); \
        else if (kind == 3) sem_post(stx); \
        else if (kind == 4) { uint64_t one = 1; xwrite(wfd, (char *)&one, 8); } } } while (0)
#define RECV() do { switch (kind) { \
    case 0: case 8: xread(rfd, buf, size); break; \
    case 7: if (recv(rfd, buf, size, MSG_TRUNC) != (ssize_t)size) die("recv"); break; \
    case 5: if (mq_receive(mrx, buf, size, NULL) != (ssize_t)size) die("mq_receive"); break; \
    case 6: if (msgrcv(msq, buf, size, rtype, 0) != (ssize_t)size) die("msgrcv"); break; \
    default: ++seen; \
        if (kind == 1) while (atomic_load_explicit(&rs->seq, memory_order_acquire) != seen) __builtin_ia32_pause(); \
        else if (kind == 2) while (atomic_load_explicit(&rs->seq, memory_order_acquire) != seen) futex(&rs->seq, FUTEX_WAIT, seen - 1); \
        else if (kind == 3) { while (sem_wait(srx)) ; } \
        else { uint64_t v; xread(rfd, (char *)&v, 8); } \
        memcpy(buf, rs->data, size); } } while (0)

    long warm = count / 10 + 100;
    if (kind == 9) {
        /* The floor: one word, the parent writes odd numbers, the child the
         * next even one. */
        atomic_uint *w = &sl[0].seq;
        unsigned v = child ? 0 : 1;
        if (child) {
            for (long i = 0; i < warm + count; i++) {
                while (atomic_load_explicit(w, memory_order_acquire) != v + 1) __builtin_ia32_pause();
                v += 2;
                atomic_store_explicit(w, v, memory_order_release);
            }
            _exit(0);
        }
        struct timespec t0, t1;
        for (long i = 0; i < warm + count; i++) {
            if (i == warm) clock_gettime(CLOCK_MONOTONIC, &t0);
            atomic_store_explicit(w, v, memory_order_release);
            while (atomic_load_explicit(w, memory_order_acquire) != v + 1) __builtin_ia32_pause();
            v += 2;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        waitpid(pid, NULL, 0);
        printf("%s %.1f\n", m, ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / count);
        return 0;
    }
    if (child) {
        for (long i = 0; i < warm + count; i++) { RECV(); SEND(); }
        _exit(0);
    }
    for (long i = 0; i < warm; i++) { SEND(); RECV(); }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < count; i++) { SEND(); RECV(); }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    waitpid(pid, NULL, 0);
    if (msq >= 0) msgctl(msq, IPC_RMID, NULL);
    double ns = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / count;
    printf("%s %.1f\n", m, ns);
    return 0;
}
