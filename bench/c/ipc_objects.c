/* Make or remove N IPC objects of the six kinds, in turn, for timing `ls`.
 *
 *   ipc_objects create TAG N >IDS   POSIX names /TAG-msq-I, /TAG-shm-I,
 *                                   /TAG-sem-I; System V objects under free
 *                                   keys, their "kind id" lines on stdout
 *   ipc_objects remove TAG N <IDS   unlink the names, IPC_RMID the ids read
 *
 * System V objects are removed by the ids this program created, never by
 * key: a key skipped because it was taken belongs to someone else. Making
 * stops at the first object that cannot be made (queues_max allows 256
 * POSIX queues by default); removing passes over names that do not exist.
 * Exit 1 if an object could not be made or removed. */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <unistd.h>

static key_t next_key = 0;

/* A new System V object under the next free key: IPC_EXCL, skipping keys in use. */
static int sysv_create(int kind) {
    for (int tries = 0; tries < 100000; tries++) {
        key_t k = next_key++;
        int id = kind == 3   ? msgget(k, IPC_CREAT | IPC_EXCL | 0600)
                 : kind == 4 ? shmget(k, 4096, IPC_CREAT | IPC_EXCL | 0600)
                             : semget(k, 2, IPC_CREAT | IPC_EXCL | 0600);
        if (id >= 0 || errno != EEXIST) return id;
    }
    return -1;
}

static int posix(int create, int kind, const char *name) {
    if (kind == 0) {
        if (!create) return mq_unlink(name);
        struct mq_attr a = {.mq_maxmsg = 1, .mq_msgsize = 64};
        mqd_t q = mq_open(name, O_CREAT | O_EXCL | O_WRONLY, 0600, &a);
        return q == (mqd_t)-1 ? -1 : mq_close(q);
    }
    if (kind == 1) {
        if (!create) return shm_unlink(name);
        int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
        if (fd < 0) return -1;
        int r = ftruncate(fd, 4096);
        close(fd);
        return r;
    }
    if (!create) return sem_unlink(name);
    sem_t *s = sem_open(name, O_CREAT | O_EXCL, 0600, 1);
    return s == SEM_FAILED ? -1 : sem_close(s);
}

int main(int argc, char **argv) {
    if (argc != 4 || (strcmp(argv[1], "create") && strcmp(argv[1], "remove"))) {
        fprintf(stderr, "usage: ipc_objects create|remove TAG N\n");
        return 2;
    }
    int create = strcmp(argv[1], "create") == 0, n = atoi(argv[3]), bad = 0;
    static const char *kinds[] = {"msq", "shm", "sem"};
    next_key = 0x4c530000 | (getpid() & 0xff) << 8; /* "LS", then per run */
    for (int i = 0; i < n; i++) {
        int kind = i % 6;
        if (kind < 3) {
            char name[256];
            snprintf(name, sizeof name, "/%s-%s-%d", argv[2], kinds[kind], i);
            if (posix(create, kind, name) < 0 && (create || errno != ENOENT)) {
                perror(name);
                bad = 1;
            }
        } else if (create) {
            int id = sysv_create(kind);
            if (id < 0) { perror("System V object"); bad = 1; }
            else printf("%d %d\n", kind, id);
        }
        if (create && bad) break;
    }
    int kind, id;
    while (!create && scanf("%d %d", &kind, &id) == 2) {
        int r = kind == 3 ? msgctl(id, IPC_RMID, 0)
                : kind == 4 ? shmctl(id, IPC_RMID, 0)
                            : semctl(id, 0, IPC_RMID);
        if (r < 0) { perror("IPC_RMID"); bad = 1; }
    }
    return bad;
}
