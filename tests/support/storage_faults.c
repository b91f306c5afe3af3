/*
 * LD_PRELOAD shim for storage fault tests: power loss and a full disk.
 *
 * SYNC_LEDGER=<file>: for every successful fsync or fdatasync of a regular file,
 * one line "<size> <path>" is appended to <file>, where <size> is the file's size
 * when the sync began: everything below it was on disk when the call returned.
 * Bytes written after that are what a power cut may take, so a test cuts each
 * file back to its last recorded size to emulate one.
 *
 * DISK_FULL=<flag file> and DISK_FULL_DIR=<dir>: while the flag file exists,
 * writes and allocations of files under <dir> fail with ENOSPC, as on a full disk.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define REAL(name) static __typeof__(name) *real; if (real == NULL) real = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

static int ledger = -1;

static int path_of(int fd, char *path, size_t size) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, size - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    return 1;
}

static int disk_full(int fd) {
    const char *flag = getenv("DISK_FULL");
    const char *dir = getenv("DISK_FULL_DIR");
    char path[4096];
    if (flag == NULL || dir == NULL || access(flag, F_OK) != 0 || !path_of(fd, path, sizeof path)) return 0;
    size_t len = strlen(dir);
    if (strncmp(path, dir, len) != 0 || (path[len] != '/' && path[len] != 0)) return 0;
    errno = ENOSPC;
    return 1;
}

static void record(int fd, off_t size) {
    char path[4096], line[4200];
    if (!path_of(fd, path, sizeof path)) return;
    if (ledger < 0) {
        const char *name = getenv("SYNC_LEDGER");
        if (name == NULL) return;
        ledger = open(name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (ledger < 0) return;
    }
    int len = snprintf(line, sizeof line, "%lld %s\n", (long long)size, path);
    if (len > 0 && len < (int)sizeof line && write(ledger, line, (size_t)len) != len) {
        ledger = -1; /* the test reads a missing line as "not synced": it errs towards loss */
    }
}

static int synced(int fd, int (*sync_fd)(int)) {
    struct stat st;
    int regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    int rc = sync_fd(fd);
    if (rc == 0 && regular) record(fd, st.st_size);
    return rc;
}

int fdatasync(int fd) {
    REAL(fdatasync);
    return synced(fd, real);
}

int fsync(int fd) {
    REAL(fsync);
    return synced(fd, real);
}

ssize_t write(int fd, const void *buf, size_t count) {
    REAL(write);
    return disk_full(fd) ? -1 : real(fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    REAL(pwrite);
    return disk_full(fd) ? -1 : real(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t offset) {
    REAL(pwrite64);
    return disk_full(fd) ? -1 : real(fd, buf, count, offset);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
    REAL(writev);
    return disk_full(fd) ? -1 : real(fd, iov, iovcnt);
}

ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset) {
    REAL(pwritev);
    return disk_full(fd) ? -1 : real(fd, iov, iovcnt, offset);
}

int fallocate(int fd, int mode, off_t offset, off_t len) {
    REAL(fallocate);
    return disk_full(fd) ? -1 : real(fd, mode, offset, len);
}

int posix_fallocate(int fd, off_t offset, off_t len) {
    REAL(posix_fallocate);
    return disk_full(fd) ? ENOSPC : real(fd, offset, len);
}
