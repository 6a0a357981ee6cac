/* A container's file watcher, in the test image (static, no libc needed in
 * the image): inotify on one directory, one line per event,
 * "<CLOCK_MONOTONIC seconds> <name> <KIND|KIND>", the format of the guest's
 * own listener (tests/vm/test_watch.py). "ready" once the watch is set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

static const struct { unsigned mask; const char *name; } KINDS[] = {
    {IN_MODIFY, "MODIFY"}, {IN_ATTRIB, "ATTRIB"}, {IN_CLOSE_WRITE, "CLOSE_WRITE"},
    {IN_MOVED_TO, "MOVED_TO"}, {IN_CREATE, "CREATE"}, {IN_DELETE, "DELETE"}, {IN_ISDIR, "ISDIR"},
};

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: inotify-watch DIR\n");
        return 2;
    }
    int fd = inotify_init1(IN_CLOEXEC);
    if (fd < 0 || inotify_add_watch(fd, argv[1], IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_TO |
                                                 IN_CREATE | IN_DELETE) < 0) {
        perror(argv[1]);
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready\n");
    char buf[65536] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) {
            perror("read");
            return 1;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *e = (const struct inotify_event *)p;
            char kinds[128] = "";
            for (size_t i = 0; i < sizeof KINDS / sizeof KINDS[0]; i++) {
                if (e->mask & KINDS[i].mask) {
                    if (kinds[0])
                        strcat(kinds, "|");
                    strcat(kinds, KINDS[i].name);
                }
            }
            printf("%ld.%03ld %s %s\n", (long)ts.tv_sec, ts.tv_nsec / 1000000, e->len ? e->name : ".",
                   kinds[0] ? kinds : "OTHER");
            p += sizeof *e + e->len;
        }
    }
}
