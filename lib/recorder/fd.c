/* fd.c — the recorder's own descriptors, kept out of the program's numbers and limit. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <libunwind.h>

#include "host.h"

__thread int clk_fd_setup __attribute__((tls_model("initial-exec")));

/* Never parked above this: the kernel's descriptor table grows to the highest
 * number in use, and every fork copies it. */
#define FD_TOP_MAX 65536
/* Room for the few descriptors parked while setting up (journal, libunwind's pipe, stderr's copy). */
#define FD_BAND 8

int clk_fd_park(int fd)
{
    if (fd < 0)
        return fd;
    int saved = errno;
    struct rlimit rl;
    int to = -1;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > (rlim_t)fd) {
        rlim_t soft = rl.rlim_cur;
        /* above the soft limit: the program allocates below it and never meets
         * ours. Raising it for an instant is done only while a process is set
         * up (one thread of ours, before the program's code runs), where no
         * other thread can take a number past it or change the limit meanwhile */
        if (clk_fd_setup && soft <= FD_TOP_MAX && rl.rlim_max != RLIM_INFINITY && rl.rlim_max >= soft + FD_BAND) {
            struct rlimit up = {soft + FD_BAND, rl.rlim_max};
            if (setrlimit(RLIMIT_NOFILE, &up) == 0) {
                to = fcntl(fd, F_DUPFD_CLOEXEC, (int)soft);
                setrlimit(RLIMIT_NOFILE, &rl);
            }
        }
        /* else the highest free number under it: taken only by a program that
         * uses nearly all of its limit */
        long top = soft > FD_TOP_MAX ? FD_TOP_MAX : (long)soft;
        for (long t = top - 1; to < 0 && t > fd && t >= top - 4 * FD_BAND; t--) {
            to = fcntl(fd, F_DUPFD_CLOEXEC, (int)t);
            if (to < 0 && errno != EMFILE)
                break;
        }
    }
    if (to > fd) {
        close(fd);
        fd = to;
    } else {
        if (to >= 0)
            close(to);
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    errno = saved;
    return fd;
}

void clk_held_set(struct clk_held *h, int fd)
{
    struct stat st;
    int saved = errno;
    if (fd >= 0 && fstat(fd, &st) == 0) {
        h->fd = fd;
        h->dev = st.st_dev;
        h->ino = st.st_ino;
    } else {
        h->fd = -1;
    }
    errno = saved;
}

int clk_held_ok(const struct clk_held *h)
{
    struct stat st;
    int saved = errno;
    int ok = h->fd >= 0 && fstat(h->fd, &st) == 0 && st.st_dev == h->dev && st.st_ino == h->ino;
    errno = saved;
    return ok;
}

/* ---- libunwind's pipe ----
 * libunwind checks memory before reading it by writing a byte of it into a
 * pipe it opens on its first walk (and again when the pipe was closed): two
 * low descriptors, taken inside the recorder's start-up, that the program
 * would otherwise find missing. Its pipe2 calls come here and are parked. */

#ifndef CLK_LINKABLE
static uintptr_t unw_lo, unw_hi;
static int (*real_pipe2)(int[2], int);

static int (*resolve_pipe2(void))(int[2], int)
{
    int (*fn)(int[2], int) = __atomic_load_n(&real_pipe2, __ATOMIC_ACQUIRE);
    if (!fn && (fn = (int (*)(int[2], int))dlsym(RTLD_NEXT, "pipe2")))
        __atomic_store_n(&real_pipe2, fn, __ATOMIC_RELEASE);
    return fn;
}

struct find_obj {
    uintptr_t addr, lo, hi;
};

static int find_obj_cb(struct dl_phdr_info *info, size_t size, void *p)
{
    (void)size;
    struct find_obj *f = p;
    uint64_t lo, hi;
    clk_phdr_bounds(info, &lo, &hi);
    if (f->addr >= lo && f->addr < hi) {
        f->lo = (uintptr_t)lo;
        f->hi = (uintptr_t)hi;
        return 1;
    }
    return 0;
}

void clk_fd_init(void)
{
    resolve_pipe2(); /* now, not inside a walk */
    struct find_obj f = {(uintptr_t)(void *)&unw_backtrace, 0, 0};
    if (dl_iterate_phdr(find_obj_cb, &f)) {
        __atomic_store_n(&unw_lo, f.lo, __ATOMIC_RELAXED);
        __atomic_store_n(&unw_hi, f.hi, __ATOMIC_RELEASE);
    }
}

__attribute__((visibility("default"))) int pipe2(int fds[2], int flags)
{
    int (*fn)(int[2], int) = resolve_pipe2();
    int rc = fn ? fn(fds, flags) : (int)syscall(SYS_pipe2, fds, flags);
    uintptr_t ra = (uintptr_t)__builtin_extract_return_addr(__builtin_return_address(0));
    uintptr_t hi = __atomic_load_n(&unw_hi, __ATOMIC_ACQUIRE);
    if (rc == 0 && ra >= __atomic_load_n(&unw_lo, __ATOMIC_RELAXED) && ra < hi) {
        fds[0] = clk_fd_park(fds[0]);
        fds[1] = clk_fd_park(fds[1]);
    }
    return rc;
}
#else
/* The linkable library interposes nothing: libunwind's pipe stays where it opens. */
void clk_fd_init(void)
{
}
#endif
