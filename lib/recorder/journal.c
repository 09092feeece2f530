/* journal.c — the per-process journal: a MAP_SHARED file of 64-byte slots, so SIGKILL loses nothing written. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host.h"

#define CHUNK_BYTES CONNLEAK_RAW_CHUNK
#define PER_CHUNK (CHUNK_BYTES / CONNLEAK_RAW_SLOT)
#define MAX_CHUNKS 16384u /* 16 GiB of journal; past that events are counted as lost */
#define CHUNK_DONE ((char *)1)
/* Disk blocks are reserved (fallocate) this far ahead of the slots in use, not a whole chunk:
 * a journal takes about its data on disk (a short process 16 KiB, not 1 MiB), and a full disk is
 * still an error at reservation (events counted as lost), never a SIGBUS at a write. The file's
 * size stays whole chunks (the rest a hole), as the CLI reads it. */
#define RESERVE_STEP (16u * 1024)

/* The journal's descriptor, parked out of the program's way (fd.c); the
 * program may still close it (closefrom, close_range), so it is checked
 * before each use and the file opened again by its name when it is gone. */
static int jfd = -1;
static struct clk_held jheld;
static char jname[64];
static uint64_t next_slot;              /* atomic: next free slot index */
static char *chunks[MAX_CHUNKS];        /* atomic pointers; CHUNK_DONE once fully written and unmapped */
static uint32_t committed[MAX_CHUNKS];  /* atomic: slots finished per chunk */
/* The header's page, mapped for the journal's whole life: when the journal is
 * full, the count of lost events still reaches the file (header->lost is the
 * only count of them). */
static struct connleak_raw_header *header;

static void count_lost(void)
{
    struct connleak_raw_header *h = __atomic_load_n(&header, __ATOMIC_ACQUIRE);
    if (h)
        __atomic_fetch_add(&h->lost, 1, __ATOMIC_RELAXED);
}

static pthread_mutex_t map_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t chunks_seen;            /* under map_mu: one past the highest chunk ever mapped */
static uint64_t reserved_end;           /* atomic, written under map_mu: bytes with blocks reserved (UINT64_MAX: no fallocate) */
uint32_t clk_journal_generation;
int clk_journal_forked;                 /* this journal belongs to a fork child that has not exec'd */        /* bumped per new journal (fork); intern.c re-emits per generation */

int clk_journal_active(void)
{
    return __atomic_load_n(&jfd, __ATOMIC_ACQUIRE) >= 0;
}

static int open_run_dir(void);

/* Under map_mu: our descriptor is gone (the program closed it, maybe reused
 * the number): the same file again, by its name in the run directory, or
 * nothing (the events are then counted as lost). Never the program's file. */
static void reopen(void)
{
    int dfd = open_run_dir();
    int fd = dfd < 0 ? -1 : openat(dfd, jname, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (dfd >= 0)
        close(dfd);
    struct clk_held h;
    clk_held_set(&h, fd);
    if (fd >= 0 && (h.dev != jheld.dev || h.ino != jheld.ino)) {
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        return;
    jheld.fd = clk_fd_park(fd);
    __atomic_store_n(&jfd, jheld.fd, __ATOMIC_RELEASE);
}

static char *map_chunk(uint64_t c)
{
    pthread_mutex_lock(&map_mu);
    char *p = __atomic_load_n(&chunks[c], __ATOMIC_ACQUIRE);
    if (!p && !clk_held_ok(&jheld))
        reopen();
    if (!p) {
        off_t need = (off_t)(c + 1) * CHUNK_BYTES;
        struct stat st;
        /* blocks reserved up front: a full disk (or tmpfs) is then an error
         * here, and the events are counted as lost, not a SIGBUS in the
         * program at its next write into the mapping */
        struct rlimit fsize;
        int fd = jheld.fd;
        if (fd < 0 || fstat(fd, &st) != 0)
            p = NULL;
        else if (st.st_size < need &&
                 ((getrlimit(RLIMIT_FSIZE, &fsize) == 0 && fsize.rlim_cur != RLIM_INFINITY &&
                   (rlim_t)need > fsize.rlim_cur) || /* growing past it would raise SIGXFSZ */
                  ftruncate(fd, need) != 0))
            p = NULL;
        else {
            void *m = mmap(NULL, CHUNK_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)c * CHUNK_BYTES);
            p = m == MAP_FAILED ? NULL : m;
        }
        if (p) {
            __atomic_store_n(&chunks[c], p, __ATOMIC_RELEASE);
            if (c + 1 > chunks_seen)
                chunks_seen = c + 1;
        }
    }
    pthread_mutex_unlock(&map_mu);
    return p;
}

/* Blocks for the slots up to `end` bytes, RESERVE_STEP at a time; -1 when the disk is full. */
static int reserve(uint64_t end)
{
    int rc = 0;
    pthread_mutex_lock(&map_mu);
    uint64_t from = __atomic_load_n(&reserved_end, __ATOMIC_RELAXED);
    if (end > from) {
        if (!clk_held_ok(&jheld))
            reopen();
        uint64_t to = (end + RESERVE_STEP - 1) / RESERVE_STEP * RESERVE_STEP;
        if (jheld.fd < 0)
            rc = -1;
        else if (fallocate(jheld.fd, FALLOC_FL_KEEP_SIZE, (off_t)from, (off_t)(to - from)) == 0)
            __atomic_store_n(&reserved_end, to, __ATOMIC_RELEASE);
        else if (errno == EOPNOTSUPP || errno == ENOSYS) /* a plain sparse file, as before */
            __atomic_store_n(&reserved_end, UINT64_MAX, __ATOMIC_RELEASE);
        else
            rc = -1;
    }
    pthread_mutex_unlock(&map_mu);
    return rc;
}

struct connleak_raw_record *clk_journal_slot(uint64_t index)
{
    uint64_t c = index / PER_CHUNK;
    char *p = __atomic_load_n(&chunks[c], __ATOMIC_ACQUIRE);
    if (!p)
        p = map_chunk(c);
    if (!p || p == CHUNK_DONE)
        return NULL;
    uint64_t end = (index + 1) * CONNLEAK_RAW_SLOT;
    if (end > __atomic_load_n(&reserved_end, __ATOMIC_ACQUIRE) && reserve(end) != 0)
        return NULL;
    return (struct connleak_raw_record *)(p + (index % PER_CHUNK) * CONNLEAK_RAW_SLOT);
}

/* Counts a slot as finished; the last one of a chunk unmaps it, which keeps the
 * host's resident memory flat however long the run. */
static void slot_done(uint64_t index)
{
    uint64_t c = index / PER_CHUNK;
    if (__atomic_add_fetch(&committed[c], 1, __ATOMIC_ACQ_REL) == PER_CHUNK) {
        char *p = __atomic_exchange_n(&chunks[c], CHUNK_DONE, __ATOMIC_ACQ_REL);
        if (p && p != CHUNK_DONE)
            munmap(p, CHUNK_BYTES);
    }
}

static int start_lazily(void);
/* Direct mode: the journal is set up at the first write (start_lazily), so a
 * process that never meets a database (a shell, the tools a script runs) never
 * sizes, reserves or maps one: only its unnamed file is opened at start, to
 * take a descriptor number out of the program's way while that can be done
 * (fd.c). lazy_forked: that journal is a fork child's. */
static int lazy, lazy_forked;
static struct clk_held lazy_file = {.fd = -1};

uint64_t clk_journal_reserve(uint32_t nextra)
{
    if (!clk_journal_active() && (!__atomic_load_n(&lazy, __ATOMIC_ACQUIRE) || start_lazily() != 0))
        return 0;
    uint64_t i = __atomic_fetch_add(&next_slot, 1 + nextra, __ATOMIC_RELAXED);
    if (i + nextra >= (uint64_t)MAX_CHUNKS * PER_CHUNK) {
        count_lost();
        return 0;
    }
    return i;
}

void clk_journal_publish(uint64_t index, struct connleak_raw_record *dst, uint8_t type)
{
    if (dst)
        __atomic_store_n(&dst->type, type, __ATOMIC_RELEASE);
    else
        count_lost();
    slot_done(index);
}

void clk_journal_commit(uint64_t index, struct connleak_raw_record *rec, uint8_t type)
{
    if (!index)
        return;
    struct connleak_raw_record *dst = clk_journal_slot(index);
    if (dst) {
        rec->type = 0;
        memcpy(dst, rec, sizeof *dst);
    }
    clk_journal_publish(index, dst, type);
}

void clk_journal_blob(uint8_t type, uint32_t id, const void *data, uint32_t len)
{
    uint32_t nextra = (len + CONNLEAK_RAW_CONT_PAYLOAD - 1) / CONNLEAK_RAW_CONT_PAYLOAD;
    uint64_t head = clk_journal_reserve(nextra);
    if (!head)
        return;
    const unsigned char *src = data;
    for (uint32_t k = 0; k < nextra; k++) {
        uint64_t idx = head + 1 + k;
        struct connleak_raw_record *dst = clk_journal_slot(idx);
        if (dst) {
            uint32_t off = k * CONNLEAK_RAW_CONT_PAYLOAD;
            uint32_t n = len - off < CONNLEAK_RAW_CONT_PAYLOAD ? len - off : CONNLEAK_RAW_CONT_PAYLOAD;
            memcpy(dst->u.bytes, src + off, n);
            __atomic_store_n(&dst->type, (uint8_t)CONNLEAK_REC_CONT, __ATOMIC_RELEASE);
        }
        slot_done(idx);
    }
    struct connleak_raw_record rec = {0};
    rec.u.blob.id = id;
    rec.u.blob.len = len;
    rec.u.blob.slots = nextra;
    clk_journal_commit(head, &rec, type);
}

/* The run directory, checked each time a journal is created there: a directory
 * (not a symlink to one) of this effective user that others cannot write to.
 * A run directory in a shared place (/tmp) could otherwise be someone else's,
 * who could then replace our journals, or a link sending them elsewhere. The
 * journal is created relative to it, so a name swapped meanwhile changes nothing. */
static int open_run_dir(void)
{
    /* O_NOFOLLOW does not hold for "link/": the trailing slashes go first */
    char dir[sizeof clk_opts.run_dir];
    size_t n = strlen(clk_opts.run_dir);
    while (n > 1 && clk_opts.run_dir[n - 1] == '/')
        n--;
    memcpy(dir, clk_opts.run_dir, n);
    dir[n] = 0;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    struct stat st;
    if (fstat(dfd, &st) != 0 || st.st_uid != geteuid() || (st.st_mode & S_IWOTH)) {
        close(dfd);
        errno = EPERM;
        return -1;
    }
    return dfd;
}

static int create_file(void)
{
    int dfd = open_run_dir();
    if (dfd < 0)
        return -1;
    char name[64];
    int fd = -1;
    for (int k = 0; k < 1000 && fd < 0; k++) {
        snprintf(name, sizeof name, "%d-%d%s", (int)getpid(), k, CONNLEAK_RAW_SUFFIX);
        fd = openat(dfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd >= 0)
        memcpy(jname, name, sizeof jname);
    int saved = errno;
    close(dfd);
    errno = saved;
    return fd;
}

int clk_journal_private;

/* Direct mode's journal: an unnamed file in $TMPDIR (else /tmp) that vanishes
 * with its last descriptor, so a process that ends any way at all (_exit,
 * SIGKILL, exec) leaves nothing behind; a filesystem without O_TMPFILE gets a
 * file unlinked as soon as it is made. Never reopened by name. */
static int create_private(void)
{
    const char *env = secure_getenv("TMPDIR");
    const char *dirs[2] = {env && env[0] == '/' ? env : NULL, "/tmp"};
    for (int i = 0; i < 2; i++) {
        if (!dirs[i] || (i && dirs[0] && !strcmp(dirs[0], dirs[1])))
            continue;
        int fd = open(dirs[i], O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
            char name[sizeof clk_opts.run_dir + 32];
            if (snprintf(name, sizeof name, "%s/.connleak-journal-XXXXXX", dirs[i]) < (int)sizeof name &&
                (fd = mkostemp(name, O_CLOEXEC)) >= 0)
                unlink(name);
        }
        if (fd >= 0) {
            jname[0] = 0;
            return fd;
        }
    }
    return -1;
}

int clk_journal_fd(void)
{
    return clk_journal_active() && clk_held_ok(&jheld) ? jheld.fd : -1;
}

static void reset_state(void)
{
    /* only the chunks ever mapped: touching all of chunks[] and committed[] (192 KiB) costs 48 page faults */
    for (uint64_t c = 0; c < chunks_seen; c++) {
        if (chunks[c] && chunks[c] != CHUNK_DONE)
            munmap(chunks[c], CHUNK_BYTES);
        chunks[c] = NULL;
        committed[c] = 0;
    }
    chunks_seen = 0;
    reserved_end = 0;
    next_slot = 1; /* slot 0 is the header (a fork child's copy of its parent's is unmapped already) */
}

static char *read_small_file(const char *path, char *buf, size_t cap, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0)
        return NULL;
    buf[n] = 0;
    *len = (size_t)n;
    return buf;
}

static int start_now(int forked);

int clk_journal_start(int forked)
{
    if (!clk_opts.run_dir[0] && clk_journal_private) {
        int fd = create_private();
        clk_held_set(&lazy_file, fd >= 0 ? clk_fd_park(fd) : -1);
        lazy_forked = forked;
        __atomic_store_n(&lazy, 1, __ATOMIC_RELEASE);
        return 0;
    }
    return start_now(forked);
}

/* Taken by the first writes of a direct-mode process, which hold none of our
 * locks (tracker events take theirs after reserving, notes before any).
 * Not taken around fork: a child starts with it unlocked. */
static pthread_mutex_t lazy_mu = PTHREAD_MUTEX_INITIALIZER;

static int start_lazily(void)
{
    if (getpid() != clk_owner_pid) /* a vfork child: its parent's memory, and its parent's journal to make */
        return -1;
    pthread_mutex_lock(&lazy_mu);
    if (__atomic_load_n(&lazy, __ATOMIC_ACQUIRE) && !clk_journal_active()) {
        start_now(lazy_forked);
        __atomic_store_n(&lazy, 0, __ATOMIC_RELEASE); /* once: a file that could not be made is not tried per event */
    }
    pthread_mutex_unlock(&lazy_mu);
    return clk_journal_active() ? 0 : -1;
}

static int start_now(int forked)
{
    if (!clk_opts.run_dir[0] && !clk_journal_private)
        return -1;
    int fd;
    if (clk_opts.run_dir[0])
        fd = create_file();
    else if (lazy_file.fd >= 0 && clk_held_ok(&lazy_file)) /* opened at start (the program may have closed it) */
        fd = lazy_file.fd;
    else
        fd = create_private();
    lazy_file.fd = -1;
    if (fd < 0 && !clk_opts.run_dir[0])
        return -1; /* direct mode: the report at exit is then the library's own, unsymbolized */
    if (fd < 0) {
        if (errno == EPERM || errno == ELOOP || errno == ENOTDIR)
            clk_warn("connleak: %s is not a private directory of this user (owned by another, writable by "
                     "others, or a symlink): no journal written there; findings are printed at exit",
                     clk_opts.run_dir);
        else
            clk_warn("connleak: cannot create a journal in %s: %s; findings are printed at exit", clk_opts.run_dir,
                     strerror(errno));
        return -1;
    }
    fd = clk_fd_park(fd);
    clk_held_set(&jheld, fd);
    clk_owner_pid = getpid();
    reset_state();
    __atomic_add_fetch(&clk_journal_generation, 1, __ATOMIC_ACQ_REL);
    clk_intern_new_journal();
    __atomic_store_n(&jfd, fd, __ATOMIC_RELEASE);

    struct connleak_raw_header h = {0};
    h.version = CONNLEAK_RAW_VERSION;
    h.slot_size = CONNLEAK_RAW_SLOT;
    h.pid = (int32_t)getpid();
    h.ppid = (int32_t)getppid();
    h.forked = (uint32_t)forked;
    clk_journal_forked = forked;
    h.start_ns = clk_now_ns(1);
    h.stack_depth = (uint32_t)clk_opts.stack_depth;
    h.run_id = clk_opts.run_id;
    const char *exe = clk_exe_path();
    if (exe[0])
        h.exe = clk_intern_string(exe, strlen(exe));
    char cmd[4096], clean[4096];
    size_t clen;
    if (read_small_file("/proc/self/cmdline", cmd, sizeof cmd, &clen)) {
        /* each argument without its passwords (psql postgresql://u:secret@h ...) */
        size_t out = 0;
        const char *prev = NULL;
        for (size_t at = 0; at < clen && out < sizeof clean;) {
            size_t n = strnlen(cmd + at, clen - at); /* each argument ends with its NUL (cmd[clen] too) */
            out += clk_redact_arg(cmd + at, prev, clean + out, sizeof clean - out) + 1; /* keeps the separator */
            prev = cmd + at;
            at += n + 1;
        }
        h.cmdline = clk_intern_string(clean, out > sizeof clean ? sizeof clean : out);
    }
    if (!clk_journal_slot(0)) /* chunk 0, its blocks reserved */
        return -1;
    void *m = mmap(NULL, CONNLEAK_RAW_SLOT, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return -1;
    struct connleak_raw_header *dst = m;
    memcpy(dst, &h, sizeof h);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    memcpy(dst->magic, CONNLEAK_RAW_MAGIC, sizeof dst->magic);
    __atomic_store_n(&header, dst, __ATOMIC_RELEASE);
    slot_done(0);
    return 0;
}

void clk_journal_prepare_fork(void)
{
    pthread_mutex_lock(&map_mu);
}

void clk_journal_after_fork_parent(void)
{
    pthread_mutex_unlock(&map_mu);
}

/* The child owns copies of the parent's shared mappings: writing there would
 * write into the parent's journal, so drop them and start a journal of its own. */
void clk_journal_after_fork_child(void)
{
    pthread_mutex_unlock(&map_mu); /* taken by this thread in prepare */
    pthread_mutex_init(&lazy_mu, NULL); /* another thread of the parent may have held it */
    int fd = __atomic_exchange_n(&jfd, -1, __ATOMIC_ACQ_REL);
    struct connleak_raw_header *h = __atomic_exchange_n(&header, NULL, __ATOMIC_ACQ_REL);
    if (h)
        munmap(h, CONNLEAK_RAW_SLOT); /* the parent's: never to be written from here */
    if (fd >= 0 && clk_held_ok(&jheld)) /* else the number is no longer ours to close */
        close(fd);
    if (fd >= 0)
        jheld.fd = -1;
    int pending = __atomic_load_n(&lazy, __ATOMIC_ACQUIRE);
    if (pending) {
        /* the parent had set up no journal yet: its unnamed file is the parent's, the child opens its own */
        if (lazy_file.fd >= 0 && clk_held_ok(&lazy_file))
            close(lazy_file.fd);
        lazy_file.fd = -1;
    }
    if (fd < 0 && !pending)
        return;
    /* direct mode: each process reports its own findings at exit, follow_children or not */
    if ((clk_opts.follow_children || clk_journal_private) && clk_journal_start(1) != 0)
        clk_journal_fall_back();
}

/* No journal where `connleak run` asked for one (refused or unwritable
 * directory, no descriptor left): the findings are printed at exit instead of
 * lost, and a leak then fails the run as it would have with a journal: the
 * process exits with the run's status for leaks, as LeakSanitizer does
 * (23, CONNLEAK_OPTIONS=exitcode=N to change), unless the options set one. A
 * run directory set by hand, without the CLI's run id, keeps the program's
 * status (exitcode= still applies). */
void clk_journal_fall_back(void)
{
    clk_opts.report = 1;
    if (clk_opts.run_id && !clk_opts_exitcode_given)
        clk_opts.exitcode = 23;
    clk_report_keep_stderr();
}

/* Exit handlers ran: the CLI tells clean exits from crashes by this record. */
void clk_journal_exit(void)
{
    /* events lost are already counted in the header */
    struct connleak_raw_record rec = {0};
    rec.u.ev.time_ns = clk_now_ns(0);
    clk_journal_commit(clk_journal_reserve(0), &rec, CONNLEAK_REC_EXIT);
}
