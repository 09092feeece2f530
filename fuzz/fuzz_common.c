/* fuzz_common.c — scratch files for the path-taking parsers, and the libFuzzer driver's failure hook. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"

#define MAX_SCRATCH 4

static struct scratch {
    const char *tag;
    int fd;
    char path[256];
} scratch[MAX_SCRATCH];
static int nscratch;

void clk_fuzz_scratch_remove(void)
{
    for (int i = 0; i < nscratch; i++) {
        unlink(scratch[i].path);
        close(scratch[i].fd);
    }
    nscratch = 0;
}

static struct scratch *scratch_for(const char *tag)
{
    for (int i = 0; i < nscratch; i++)
        if (!strcmp(scratch[i].tag, tag))
            return &scratch[i];
    if (nscratch == MAX_SCRATCH)
        abort();
    struct scratch *s = &scratch[nscratch];
    /* rewritten once per input: tmpfs is many times faster than a disk's /tmp */
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(s->path, sizeof s->path, "%s/connleak-fuzz-%s-XXXXXX", dir, tag);
    s->fd = mkstemp(s->path);
    if (s->fd < 0) {
        fprintf(stderr, "fuzz: cannot create %s: %s\n", s->path, strerror(errno));
        abort();
    }
    s->tag = tag;
    static int registered;
    if (!registered++)
        atexit(clk_fuzz_scratch_remove);
    nscratch++;
    return s;
}

const char *clk_fuzz_scratch(const char *tag, const uint8_t *data, size_t size)
{
    struct scratch *s = scratch_for(tag);
    if (ftruncate(s->fd, 0) != 0)
        abort();
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(s->fd, data + done, size - done, (off_t)done);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            fprintf(stderr, "fuzz: cannot write %s: %s\n", s->path, strerror(errno));
            abort();
        }
        done += (size_t)n;
    }
    return s->path;
}

#ifdef CLK_LIBFUZZER
void clk_fuzz_fail(const char *what, const char *file, int line)
{
    fprintf(stderr, "fuzz: %s:%d: sanity check failed: %s\n", file, line, what);
    abort();
}
#endif
