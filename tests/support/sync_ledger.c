/*
 * LD_PRELOAD shim for power-loss tests: records what each fsync/fdatasync made durable.
 *
 * For every successful fsync or fdatasync of a regular file, one line
 * "<size> <path>" is appended to the file named by $SYNC_LEDGER, where <size> is
 * the file's size when the sync began: everything below it was on disk when the
 * call returned. Bytes written after that are what a power cut may take, so a
 * test cuts each file back to its last recorded size to emulate one.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int ledger = -1;

static void record(int fd, off_t size) {
    char link[64], path[4096], line[4200];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return;
    path[n] = 0;
    if (ledger < 0) {
        const char *name = getenv("SYNC_LEDGER");
        if (name == NULL) return;
        ledger = open(name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (ledger < 0) return;
    }
    int len = snprintf(line, sizeof line, "%lld %s\n", (long long)size, path);
    if (len > 0 && len < (int)sizeof line && write(ledger, line, (size_t)len) != len) {
        ledger = -1; /* the test reads an incomplete ledger as "not synced": it errs towards loss */
    }
}

static int synced(int fd, int (*real)(int)) {
    struct stat st;
    int regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    int rc = real(fd);
    if (rc == 0 && regular) record(fd, st.st_size);
    return rc;
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return synced(fd, real);
}

int fsync(int fd) {
    static int (*real)(int);
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return synced(fd, real);
}
