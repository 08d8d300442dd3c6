/* One-way POSIX queue baseline for the `posix msq` client -> server path:
 *   msq_oneway recv NAME COUNT   creates NAME (10 x 8192), receives COUNT
 *                                messages, writes each as a line to stdout
 *                                (stdio-buffered: a kill loses up to 4 KiB)
 *   msq_oneway recv-lines ...    the same, one write(2) per line before the
 *                                next receive, the guarantee examples-ipc gives
 *   msq_oneway send NAME COUNT   sends {"count":i} for i = 1..COUNT
 * The receiver prints "msgs/s" on stderr, timed from its first message. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s send|recv|recv-lines NAME COUNT\n", argv[0]); return 2; }
    long count = atol(argv[3]);
    char buf[8192];
    int lines = !strcmp(argv[1], "recv-lines");
    if (lines) setvbuf(stdout, NULL, _IOLBF, 0);
    if (lines || !strcmp(argv[1], "recv")) {
        struct mq_attr at = { .mq_maxmsg = 10, .mq_msgsize = 8192 };
        mqd_t q = mq_open(argv[2], O_RDONLY | O_CREAT, 0600, &at);
        if (q < 0) { perror("mq_open"); return 1; }
        struct timespec t0, t1;
        for (long i = 0; i < count; i++) {
            ssize_t n = mq_receive(q, buf, sizeof buf, NULL);
            if (n < 0) { perror("mq_receive"); return 1; }
            if (i == 0) clock_gettime(CLOCK_MONOTONIC, &t0);
            fwrite(buf, 1, n, stdout);
            fputc('\n', stdout);
        }
        fflush(stdout);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
        fprintf(stderr, "%.0f msgs/s\n", (count - 1) / s);
        mq_unlink(argv[2]);
    } else {
        mqd_t q = mq_open(argv[2], O_WRONLY);
        if (q < 0) { perror("mq_open"); return 1; }
        for (long i = 1; i <= count; i++) {
            int n = snprintf(buf, sizeof buf, "{\"count\":%ld}", i);
            if (mq_send(q, buf, n, 0)) { perror("mq_send"); return 1; }
        }
    }
    return 0;
}
