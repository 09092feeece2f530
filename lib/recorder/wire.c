/* wire.c — PostgreSQL connections of clients that speak the protocol themselves (asyncpg, pgjdbc, node-postgres), recognised on their sockets.
 *
 * A stream socket the program connects (AF_INET, AF_INET6, AF_UNIX; blocking
 * or not) becomes a candidate, with the stack of its connect() call: that is
 * where the user's code is (the first write often comes later, from an event
 * loop). Its first bytes written decide: a StartupMessage (protocol 3.x), an
 * SSLRequest, a GSSENCRequest or a TLS ClientHello offering ALPN "postgresql"
 * (PostgreSQL 17's direct TLS) make it a connection, opened then with the
 * connect's stack; anything else clears it. It is closed when its descriptor
 * goes away: close, close_range, closefrom, dup2/dup3 onto it. libpq's own
 * sockets are left to the libpq wrappers: a connect called from libpq is no
 * candidate.
 *
 * Cost: one byte per descriptor (the state) in a table made at the first
 * candidate; before that a write or close costs one load and a compare, after
 * it one more byte load. Only candidates and connections take the slow path. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "recorder.h"

/* Descriptors past this are not followed (a program with a million open files
 * is rare; its sockets there are missed). 1 byte each, pages touched on use. */
#define WIRE_FDS (1u << 20)

enum { FD_NONE = 0, FD_CANDIDATE = 1, FD_CONN = 2, FD_TERMINATED = 3 };

static uint8_t *fd_state;    /* WIRE_FDS bytes, then fd_stack; NULL until the first candidate */
#define fd_stack ((uint32_t *)(fd_state + WIRE_FDS)) /* the connect's stack, per descriptor */
static int fd_high = -1;     /* highest descriptor ever marked: close_range scans to it */

/* The wire route's handles: descriptor numbers, tagged so they never equal a
 * libpq PGconn pointer (user-space addresses stay below 2^47). */
#define WIRE_HANDLE(fd) ((1ull << 60) | (uint64_t)(unsigned)(fd))

static inline uint8_t state_of(int fd)
{
    uint8_t *t = __atomic_load_n(&fd_state, __ATOMIC_ACQUIRE);
    return t && (unsigned)fd < WIRE_FDS ? __atomic_load_n(&t[fd], __ATOMIC_RELAXED) : 0;
}

static void set_state(int fd, uint8_t st)
{
    uint8_t *t = __atomic_load_n(&fd_state, __ATOMIC_ACQUIRE);
    if (t && (unsigned)fd < WIRE_FDS)
        __atomic_store_n(&t[fd], st, __ATOMIC_RELAXED);
}

/* Makes the tables once; 0 when they cannot be had (then nothing is followed).
 * Mapped with no lock held: a thread that loses the race unmaps its own. */
static int tables(void)
{
    if (__atomic_load_n(&fd_state, __ATOMIC_ACQUIRE))
        return 1;
    size_t n = (size_t)WIRE_FDS * (1 + sizeof *fd_stack);
    void *m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return 0;
    uint8_t *expected = NULL;
    /* fd_stack is derived from fd_state, so publishing the one publishes both */
    if (!__atomic_compare_exchange_n(&fd_state, &expected, (uint8_t *)m, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        munmap(m, n);
    return 1;
}

/* ---- the real functions (libc's, or the next interposer's) ---- */

static void *next_fn(void **slot, const char *name)
{
    void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!f) {
        f = dlsym(RTLD_NEXT, name);
        __atomic_store_n(slot, f, __ATOMIC_RELEASE);
    }
    return f;
}
#define NEXT(type, name)                      \
    ({                                        \
        static void *slot_;                   \
        (type) next_fn(&slot_, #name);        \
    })

/* ---- deciding on the first bytes ---- */

#define PG_SSL_REQUEST 80877103u
#define PG_GSSENC_REQUEST 80877104u

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Does a TLS ClientHello offer ALPN "postgresql"? (direct TLS, PostgreSQL 17) */
static int client_hello_alpn_pg(const unsigned char *b, size_t n)
{
    if (n < 5 + 4 + 2 + 32 + 1 || b[0] != 0x16 || b[1] != 3 || b[5] != 1)
        return 0;
    size_t i = 5 + 4 + 2 + 32;
    i += 1 + (size_t)b[i]; /* session id */
    if (i + 2 > n)
        return 0;
    i += 2 + ((size_t)b[i] << 8 | b[i + 1]); /* cipher suites */
    if (i + 1 > n)
        return 0;
    i += 1 + (size_t)b[i]; /* compression methods */
    if (i + 2 > n)
        return 0;
    size_t end = i + 2 + ((size_t)b[i] << 8 | b[i + 1]);
    if (end > n)
        end = n;
    for (i += 2; i + 4 <= end;) {
        unsigned type = (unsigned)b[i] << 8 | b[i + 1];
        size_t len = (size_t)b[i + 2] << 8 | b[i + 3];
        i += 4;
        if (type == 16) { /* application_layer_protocol_negotiation */
            for (size_t j = i + 2; j < i + len && j < end;) {
                size_t l = b[j];
                if (l == 10 && j + 1 + l <= end && !memcmp(b + j + 1, "postgresql", 10))
                    return 1;
                j += 1 + l;
            }
            return 0;
        }
        i += len;
    }
    return 0;
}

enum verdict { NOT_PG = 0, PG_STARTUP = 1, PG_OTHER = 2 };

/* What the first bytes written on a candidate say. */
static enum verdict first_bytes(const unsigned char *b, size_t n)
{
    if (n >= 5 && b[0] == 0x16)
        return client_hello_alpn_pg(b, n) ? PG_OTHER : NOT_PG;
    if (n < 8)
        return NOT_PG;
    uint32_t len = be32(b), code = be32(b + 4);
    if (len == 8 && (code == PG_SSL_REQUEST || code == PG_GSSENC_REQUEST))
        return PG_OTHER;
    /* a StartupMessage: protocol 3.x (3.0, 3.2), then name/value pairs; a CancelRequest
     * (80877102) and everything else is no session */
    if (code >> 16 == 3 && (code & 0xffff) < 0x100 && len > 8 && len <= 10000)
        return PG_STARTUP;
    return NOT_PG;
}

/* user and database from a StartupMessage's parameters (never anything else) */
static void startup_params(const unsigned char *b, size_t n, const char **user, size_t *ulen, const char **db,
                           size_t *dlen)
{
    size_t end = be32(b);
    if (end > n)
        end = n;
    for (size_t i = 8; i < end && b[i];) {
        const char *k = (const char *)b + i;
        size_t kl = strnlen(k, end - i);
        if (i + kl + 1 >= end)
            return;
        const char *v = k + kl + 1;
        size_t vl = strnlen(v, end - (i + kl + 1));
        if (kl == 4 && !memcmp(k, "user", 4)) {
            *user = v;
            *ulen = vl;
        } else if (kl == 8 && !memcmp(k, "database", 8)) {
            *db = v;
            *dlen = vl;
        }
        i += kl + 1 + vl + 1;
    }
}

/* decimal digits of v into out (no snprintf: it may allocate) */
static void fmt_uint(char *out, size_t cap, unsigned v)
{
    char tmp[16];
    size_t n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) && n < sizeof tmp);
    size_t i = 0;
    for (; i < n && i + 1 < cap; i++)
        out[i] = tmp[n - 1 - i];
    out[i] = 0;
}

static void put(char *out, size_t cap, size_t *n, const char *s, size_t len)
{
    if (len > cap - 1 - *n)
        len = cap - 1 - *n;
    memcpy(out + *n, s, len);
    *n += len;
    out[*n] = 0;
}
#define PUTS(s) put(out, cap, &n, s, strlen(s))

/* postgresql://USER@HOST:PORT/DB as libpq's route writes it (USER and DB when
 * the startup message was seen in the clear), from the socket's peer. */
static void describe(int fd, const unsigned char *b, size_t len, enum verdict v, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[INET6_ADDRSTRLEN + 2 + 108] = "", port[16] = "";
    const char *dir = NULL;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
            fmt_uint(port, sizeof port, ntohs(a->sin_port));
        } else if (ss.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&ss)->sin6_addr)) {
            /* an IPv4 peer through an IPv6 socket (Java's): named as IPv4 */
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], host, sizeof host);
            fmt_uint(port, sizeof port, ntohs(a->sin6_port));
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            host[0] = '[';
            inet_ntop(AF_INET6, &a->sin6_addr, host + 1, sizeof host - 2);
            strcat(host, "]");
            fmt_uint(port, sizeof port, ntohs(a->sin6_port));
        } else if (ss.ss_family == AF_UNIX) {
            struct sockaddr_un *a = (struct sockaddr_un *)&ss;
            size_t pl = sl > offsetof(struct sockaddr_un, sun_path) ? sl - offsetof(struct sockaddr_un, sun_path) : 0;
            pl = strnlen(a->sun_path, pl < sizeof a->sun_path ? pl : sizeof a->sun_path);
            memcpy(host, a->sun_path, pl < sizeof host - 1 ? pl : sizeof host - 1);
            /* DIR/.s.PGSQL.PORT: the socket directory and port, as libpq names them */
            char *s = strstr(host, "/.s.PGSQL.");
            if (s) {
                *s = 0;
                strncpy(port, s + 10, sizeof port - 1);
                dir = host;
            }
        }
    }
    const char *user = NULL, *db = NULL;
    size_t ulen = 0, dlen = 0;
    if (v == PG_STARTUP)
        startup_params(b, len, &user, &ulen, &db, &dlen);
    size_t n = 0;
    out[0] = 0;
    PUTS("postgresql://");
    if (user) {
        put(out, cap, &n, user, ulen);
        PUTS("@");
    }
    if (!dir)
        PUTS(host);
    if (port[0]) {
        PUTS(":");
        PUTS(port);
    }
    PUTS("/");
    if (db)
        put(out, cap, &n, db, dlen);
    if (dir) {
        PUTS("?host=");
        PUTS(dir);
    }
}

/* The first write on a candidate succeeded with these bytes: open or clear. */
static void decide(int fd, const unsigned char *b, size_t n)
{
    enum verdict v = first_bytes(b, n);
    if (v == NOT_PG) {
        set_state(fd, FD_NONE);
        return;
    }
    char target[1024];
    describe(fd, b, n, v, target, sizeof target);
    set_state(fd, FD_CONN);
    clk_track_open_flags(CONNLEAK_RAW_POSTGRES, WIRE_HANDLE(fd), target, CONNLEAK_RAWF_WIRE,
                         (uint32_t)__atomic_load_n(&fd_stack[fd], __ATOMIC_RELAXED));
}

/* A write on a candidate or a connection has gone through (ret bytes of the
 * gathered buffers): the first decides, a Terminate on a connection is noted. */
static void wrote(int fd, const struct iovec *iov, int iovcnt, ssize_t ret)
{
    if (ret <= 0)
        return;
    unsigned char head[2048];
    size_t n = 0;
    for (int i = 0; i < iovcnt && n < sizeof head && n < (size_t)ret; i++) {
        size_t take = iov[i].iov_len;
        if (take > sizeof head - n)
            take = sizeof head - n;
        if (take > (size_t)ret - n)
            take = (size_t)ret - n;
        if (take && iov[i].iov_base)
            memcpy(head + n, iov[i].iov_base, take);
        n += take;
    }
    uint8_t st = state_of(fd);
    if (st == FD_CANDIDATE) {
        decide(fd, head, n);
    } else if (st == FD_CONN && n >= 5 && (size_t)ret == n && head[n - 5] == 'X' && !memcmp(head + n - 4, "\0\0\0\4", 4)) {
        set_state(fd, FD_TERMINATED); /* the client said goodbye before closing */
    }
}

/* The descriptor of a connection (or candidate) goes away. Call from the
 * interposed function itself: the stack is taken here. */
static void gone(int fd, uint32_t stack)
{
    uint8_t st = state_of(fd);
    set_state(fd, FD_NONE);
    if (st != FD_CONN && st != FD_TERMINATED)
        return;
    struct clk_pending p;
    if (clk_track_close_begin(CONNLEAK_RAW_POSTGRES, WIRE_HANDLE(fd), stack, &p) == CLK_CLOSE_PASS) {
        p.flags |= CONNLEAK_RAWF_WIRE | (st == FD_TERMINATED ? CONNLEAK_RAWF_TERMINATED : 0);
        clk_track_close_done(&p, 1, 0);
    }
}

#define STACK_HERE() clk_stack_here(clk_opts.stack_depth, 0)
/* A descriptor going away: a candidate is only forgotten, a connection closed with the stack taken
 * here (a macro: clk_stack_here must be called from the interposed function itself). */
#define GONE(fd)                                                 \
    do {                                                         \
        uint8_t st_ = state_of(fd);                              \
        if (st_ == FD_CANDIDATE)                                 \
            set_state(fd, FD_NONE);                              \
        else if (st_)                                            \
            gone(fd, STACK_HERE());                              \
    } while (0)

/* ---- connect: candidates ---- */

/* Is the caller libpq (its own sockets are the libpq wrappers')? */
static int from_libpq(void *ra)
{
    const char *name = NULL;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 35)
    /* lock-free and async-signal-safe, unlike dladdr: connect may be called from a signal handler */
    struct dl_find_object fo;
    if (_dl_find_object(ra, &fo) == 0 && fo.dlfo_link_map)
        name = fo.dlfo_link_map->l_name;
#else
    Dl_info info;
    if (dladdr(ra, &info))
        name = info.dli_fname;
#endif
    if (!name)
        return 0;
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    return !strncmp(base, "libpq.", 6) || !strncmp(base, "libpq-", 6);
}

static int is_candidate_addr(int fd, const struct sockaddr *addr)
{
    if (!addr || (addr->sa_family != AF_INET && addr->sa_family != AF_INET6 && addr->sa_family != AF_UNIX))
        return 0;
    int type = 0;
    socklen_t tl = sizeof type;
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM;
}

__attribute__((visibility("default"))) int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    int (*real)(int, const struct sockaddr *, socklen_t) = NEXT(int (*)(int, const struct sockaddr *, socklen_t), connect);
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    int rc = real(fd, addr, len);
    int saved = errno;
    if ((rc == 0 || saved == EINPROGRESS || saved == EINTR) && (unsigned)fd < WIRE_FDS && is_candidate_addr(fd, addr) &&
        !from_libpq(__builtin_return_address(0)) && tables()) {
        clk_ensure_init();
        if (state_of(fd) == FD_CONN || state_of(fd) == FD_TERMINATED)
            gone(fd, 0); /* its earlier socket went away unseen (a raw close system call) */
        uint32_t stack = STACK_HERE();
        __atomic_store_n(&fd_stack[fd], stack, __ATOMIC_RELAXED);
        set_state(fd, FD_CANDIDATE);
        if (fd > __atomic_load_n(&fd_high, __ATOMIC_RELAXED))
            __atomic_store_n(&fd_high, fd, __ATOMIC_RELAXED);
    }
    errno = saved;
    return rc;
}

/* ---- writes ---- */

#define AFTER_WRITE(fd, iov, cnt, ret)                 \
    do {                                               \
        if (__builtin_expect(state_of(fd) != 0, 0)) {  \
            int saved_ = errno;                        \
            wrote(fd, iov, cnt, ret);                  \
            errno = saved_;                            \
        }                                              \
    } while (0)

__attribute__((visibility("default"))) ssize_t write(int fd, const void *buf, size_t n)
{
    ssize_t (*real)(int, const void *, size_t) = NEXT(ssize_t (*)(int, const void *, size_t), write);
    if (!real)
        return syscall(SYS_write, fd, buf, n);
    ssize_t r = real(fd, buf, n);
    struct iovec v = {(void *)buf, n};
    AFTER_WRITE(fd, &v, 1, r);
    return r;
}

__attribute__((visibility("default"))) ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    ssize_t (*real)(int, const void *, size_t, int) = NEXT(ssize_t (*)(int, const void *, size_t, int), send);
    if (!real)
        return syscall(SYS_sendto, fd, buf, n, flags, NULL, 0);
    ssize_t r = real(fd, buf, n, flags);
    struct iovec v = {(void *)buf, n};
    AFTER_WRITE(fd, &v, 1, r);
    return r;
}

__attribute__((visibility("default"))) ssize_t sendto(int fd, const void *buf, size_t n, int flags,
                                                      const struct sockaddr *to, socklen_t tolen)
{
    typedef ssize_t (*fn)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
    fn real = NEXT(fn, sendto);
    if (!real)
        return syscall(SYS_sendto, fd, buf, n, flags, to, tolen);
    ssize_t r = real(fd, buf, n, flags, to, tolen);
    struct iovec v = {(void *)buf, n};
    AFTER_WRITE(fd, &v, 1, r);
    return r;
}

__attribute__((visibility("default"))) ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    ssize_t (*real)(int, const struct msghdr *, int) = NEXT(ssize_t (*)(int, const struct msghdr *, int), sendmsg);
    if (!real)
        return syscall(SYS_sendmsg, fd, msg, flags);
    ssize_t r = real(fd, msg, flags);
    if (msg)
        AFTER_WRITE(fd, msg->msg_iov, (int)msg->msg_iovlen, r);
    return r;
}

__attribute__((visibility("default"))) ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    ssize_t (*real)(int, const struct iovec *, int) = NEXT(ssize_t (*)(int, const struct iovec *, int), writev);
    if (!real)
        return syscall(SYS_writev, fd, iov, cnt);
    ssize_t r = real(fd, iov, cnt);
    AFTER_WRITE(fd, iov, cnt, r);
    return r;
}

/* ---- descriptors going away ---- */

static void gone_range(unsigned lo, unsigned hi, uint32_t stack);
static int range_has_conn(unsigned lo, unsigned hi);
#define CLOSE_RANGE_CLOEXEC_FLAG (1U << 2)

#if defined(__x86_64__) && !defined(CLK_LINKABLE)
/* clone.c's syscall(): close (3), dup2 (33), dup3 (292) and close_range (436) come here, as
 * libuv closes its sockets with syscall(SYS_close, fd) (node-postgres). Entered by a jump from
 * the interposed syscall(): the stack is taken here as in close(). */
CLK_HIDDEN long clk_raw_syscall(long n, long a1, long a2, long a3, long a4, long a5, long a6);
CLK_HIDDEN long clk_wire_syscall(long n, long a1, long a2, long a3, long a4, long a5, long a6)
{
    if (n == SYS_close) {
        if (__builtin_expect(state_of((int)a1) != 0, 0)) {
            int saved = errno;
            GONE((int)a1);
            errno = saved;
        }
        return clk_raw_syscall(n, a1, a2, a3, a4, a5, a6);
    }
    long r = clk_raw_syscall(n, a1, a2, a3, a4, a5, a6);
    int saved = errno;
    if (r >= 0 && n == SYS_close_range && !(a3 & CLOSE_RANGE_CLOEXEC_FLAG))
        gone_range((unsigned)a1, (unsigned)a2, range_has_conn((unsigned)a1, (unsigned)a2) ? STACK_HERE() : 0);
    else if (r >= 0 && (n == SYS_dup2 || n == SYS_dup3) && a1 != a2 && state_of((int)a2))
        GONE((int)a2);
    errno = saved;
    return r;
}
#endif

__attribute__((visibility("default"))) int close(int fd)
{
    int (*real)(int) = NEXT(int (*)(int), close);
    if (__builtin_expect(state_of(fd) != 0, 0)) {
        int saved = errno;
        GONE(fd);
        errno = saved;
    }
    if (!real)
        return (int)syscall(SYS_close, fd);
    return real(fd);
}

/* Every connection in [lo, hi] goes (close_range, closefrom). */
/* Is a connection (not a mere candidate) among the descriptors [lo, hi]? */
static int range_has_conn(unsigned lo, unsigned hi)
{
    int high = __atomic_load_n(&fd_high, __ATOMIC_RELAXED);
    if (!__atomic_load_n(&fd_state, __ATOMIC_ACQUIRE) || high < 0)
        return 0;
    if (hi > (unsigned)high)
        hi = (unsigned)high;
    for (unsigned fd = lo; fd <= hi && fd < WIRE_FDS; fd++)
        if (state_of((int)fd) >= FD_CONN)
            return 1;
    return 0;
}

static void gone_range(unsigned lo, unsigned hi, uint32_t stack)
{
    int high = __atomic_load_n(&fd_high, __ATOMIC_RELAXED);
    if (!__atomic_load_n(&fd_state, __ATOMIC_ACQUIRE) || high < 0)
        return;
    if (hi > (unsigned)high)
        hi = (unsigned)high;
    for (unsigned fd = lo; fd <= hi && fd < WIRE_FDS; fd++)
        if (state_of((int)fd))
            gone((int)fd, stack);
}

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

__attribute__((visibility("default"))) int close_range(unsigned lo, unsigned hi, int flags)
{
    int (*real)(unsigned, unsigned, int) = NEXT(int (*)(unsigned, unsigned, int), close_range);
    int rc = real ? real(lo, hi, flags) : (int)syscall(SYS_close_range, lo, hi, flags);
    if (rc == 0 && !(flags & CLOSE_RANGE_CLOEXEC)) {
        int saved = errno;
        gone_range(lo, hi, range_has_conn(lo, hi) ? STACK_HERE() : 0);
        errno = saved;
    }
    return rc;
}

__attribute__((visibility("default"))) void closefrom(int lo)
{
    void (*real)(int) = NEXT(void (*)(int), closefrom);
    int saved = errno;
    if (lo >= 0)
        gone_range((unsigned)lo, ~0u, range_has_conn((unsigned)lo, ~0u) ? STACK_HERE() : 0);
    errno = saved;
    if (real)
        real(lo);
    else
        syscall(SYS_close_range, (unsigned)lo, ~0u, 0);
}

__attribute__((visibility("default"))) int dup2(int old, int fd)
{
    int (*real)(int, int) = NEXT(int (*)(int, int), dup2);
    int rc = real ? real(old, fd) : (int)syscall(SYS_dup2, old, fd);
    if (rc >= 0 && old != fd && __builtin_expect(state_of(fd) != 0, 0)) {
        int saved = errno;
        GONE(fd);
        errno = saved;
    }
    return rc;
}

__attribute__((visibility("default"))) int dup3(int old, int fd, int flags)
{
    int (*real)(int, int, int) = NEXT(int (*)(int, int, int), dup3);
    int rc = real ? real(old, fd, flags) : (int)syscall(SYS_dup3, old, fd, flags);
    if (rc >= 0 && __builtin_expect(state_of(fd) != 0, 0)) {
        int saved = errno;
        GONE(fd);
        errno = saved;
    }
    return rc;
}
