/* fx_wire.c — a PostgreSQL client in a few lines of C that speaks the wire protocol itself (no libpq), for the wire-route suite.
 *
 *   fx_wire MODE
 * Connects to $PGHOST (a socket directory) or $CONNLEAK_PG_TCP_HOST:$PGPORT. MODE:
 *   leak         two sessions, one terminated and closed, one left open at exit
 *   clean N      N sessions, each terminated and closed
 *   noterm       one session closed without a Terminate message
 *   tls          SSLRequest over TCP, answered 'S', closed before any handshake; and one left open
 *   gssenc       GSSENCRequest over TCP, answered 'N', then a StartupMessage on the same socket, closed
 *   close_range  two sessions gone with close_range(), one with closefrom()
 *   dup2         a session whose descriptor dup2() replaces, then closed again (one close)
 *   fork         parent opens one and forks; the child leaves it, opens its own and leaks it;
 *                the parent closes its own after the child ends
 *   nonblock     non-blocking TCP connect (EINPROGRESS), startup, close; and one left open
 *   nowrite      a socket connected to the server that never writes, closed
 *   notpg        loopback TCP to a listener of ours: 8 bytes that are no request code, an HTTP request
 *   cancel       a CancelRequest (not a session)
 *   udp          an SSLRequest's bytes in a UDP datagram to a loopback socket of ours
 *   writev       a session whose startup goes out with writev and sendmsg
 * Prints "pid=N" (and "child=N" for fork). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *what)
{
    fprintf(stderr, "fx_wire: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* A StartupMessage for protocol 3.0 into buf; returns its length. */
static size_t startup_message(unsigned char *buf, size_t cap)
{
    const char *user = getenv("PGUSER") ? getenv("PGUSER") : "postgres";
    const char *db = getenv("PGDATABASE") ? getenv("PGDATABASE") : "postgres";
    size_t n = 8;
    const char *kv[] = {"user", user, "database", db, "application_name", "fx_wire"};
    for (size_t i = 0; i < 6; i++) {
        size_t l = strlen(kv[i]) + 1;
        if (n + l + 1 > cap)
            exit(2);
        memcpy(buf + n, kv[i], l);
        n += l;
    }
    buf[n++] = 0;
    put32(buf, (uint32_t)n);
    put32(buf + 4, 196608);
    return n;
}

/* The stream socket to the server: TCP when tcp is set, else the Unix socket. */
__attribute__((noinline)) static int wire_connect(int tcp, int nonblock)
{
    const char *port = getenv("PGPORT") ? getenv("PGPORT") : "5432";
    int fd;
    if (tcp) {
        const char *host = getenv("CONNLEAK_PG_TCP_HOST");
        if (!host)
            die("CONNLEAK_PG_TCP_HOST unset");
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
        inet_pton(AF_INET, host, &a.sin_addr);
        fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
        if (fd < 0)
            die("socket");
        if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
            if (errno != EINPROGRESS)
                die("connect");
            struct pollfd p = {fd, POLLOUT, 0};
            poll(&p, 1, 10000);
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        }
    } else {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(a.sun_path, sizeof a.sun_path, "%s/.s.PGSQL.%s", getenv("PGHOST"), port);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
            die("connect");
    }
    return fd;
}

static void read_full(int fd, unsigned char *buf, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            die("read");
        got += (size_t)r;
    }
}

/* Reads messages until ReadyForQuery. */
static void until_ready(int fd)
{
    for (;;) {
        unsigned char h[5], body[8192];
        read_full(fd, h, 5);
        uint32_t len = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | h[4];
        if (len < 4 || len - 4 > sizeof body)
            die("message");
        read_full(fd, body, len - 4);
        if (h[0] == 'E')
            die("server error");
        if (h[0] == 'Z')
            return;
    }
}

static void startup(int fd)
{
    unsigned char buf[512];
    size_t n = startup_message(buf, sizeof buf);
    if (write(fd, buf, n) != (ssize_t)n)
        die("write startup");
    until_ready(fd);
}

static void terminate(int fd)
{
    static const unsigned char x[5] = {'X', 0, 0, 0, 4};
    if (send(fd, x, sizeof x, 0) != 5)
        die("send terminate");
}

/* A session: connected here, so this function is where a report's stack must lead. */
__attribute__((noinline)) static int open_session(int tcp)
{
    int fd = wire_connect(tcp, 0);
    startup(fd);
    return fd;
}

__attribute__((noinline)) static int open_leaked_session(int tcp)
{
    int fd = wire_connect(tcp, 0);
    startup(fd);
    return fd;
}

static void close_session(int fd)
{
    terminate(fd);
    close(fd);
}

/* An 8-byte request (SSLRequest 80877103, GSSENCRequest 80877104) and the server's one-byte answer. */
static char request8(int fd, uint32_t code)
{
    unsigned char b[8];
    put32(b, 8);
    put32(b + 4, code);
    if (send(fd, b, 8, 0) != 8)
        die("send request");
    char c;
    read_full(fd, (unsigned char *)&c, 1);
    return c;
}

/* A loopback listener of ours: its port, and the listening socket in *lfd. */
static int listener(int type, int *lfd)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    *lfd = socket(AF_INET, type, 0);
    if (*lfd < 0 || bind(*lfd, (struct sockaddr *)&a, sizeof a) < 0 || getsockname(*lfd, (struct sockaddr *)&a, &len) < 0)
        die("bind");
    if (type == SOCK_STREAM && listen(*lfd, 8) < 0)
        die("listen");
    return ntohs(a.sin_port);
}

static int connect_loopback(int type, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, type, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect loopback");
    return fd;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "leak";
    printf("pid=%d\n", (int)getpid());
    fflush(stdout);
    if (!strcmp(mode, "leak")) {
        int a = open_session(0);
        open_leaked_session(0);
        close_session(a);
    } else if (!strcmp(mode, "clean")) {
        int n = argc > 2 ? atoi(argv[2]) : 3;
        for (int i = 0; i < n; i++)
            close_session(open_session(i % 2));
    } else if (!strcmp(mode, "noterm")) {
        close(open_session(0));
    } else if (!strcmp(mode, "tls")) {
        int fd = wire_connect(1, 0);
        if (request8(fd, 80877103) != 'S')
            die("no TLS on the server");
        close(fd);
        fd = wire_connect(1, 0);
        request8(fd, 80877103);
        /* left open */
    } else if (!strcmp(mode, "gssenc")) {
        int fd = wire_connect(1, 0);
        if (request8(fd, 80877104) == 'N') { /* a server that could do it says 'G': then just close */
            startup(fd);
            terminate(fd);
        }
        close(fd);
    } else if (!strcmp(mode, "close_range")) {
        int a = open_session(0), b = open_session(0);
        int lo = a < b ? a : b, hi = a < b ? b : a;
        if (close_range((unsigned)lo, (unsigned)hi, 0) < 0)
            die("close_range");
        int c = open_session(0);
        closefrom(c);
    } else if (!strcmp(mode, "dup2")) {
        int fd = open_session(0);
        int null = open("/dev/null", O_RDWR);
        if (dup2(null, fd) < 0)
            die("dup2");
        close(fd);
        close(null);
    } else if (!strcmp(mode, "fork")) {
        int mine = open_session(0);
        pid_t child = fork();
        if (child == 0) {
            open_leaked_session(0);
            _exit(0); /* the inherited one is the parent's */
        }
        printf("child=%d\n", (int)child);
        int st;
        waitpid(child, &st, 0);
        close_session(mine);
    } else if (!strcmp(mode, "nonblock")) {
        int fd = wire_connect(1, 1);
        startup(fd);
        close_session(fd);
        fd = wire_connect(1, 1);
        startup(fd);
        /* left open */
    } else if (!strcmp(mode, "nowrite")) {
        close(wire_connect(0, 0));
        close(wire_connect(1, 0));
    } else if (!strcmp(mode, "notpg")) {
        int lfd, port = listener(SOCK_STREAM, &lfd);
        int c = connect_loopback(SOCK_STREAM, port), s = accept(lfd, NULL, NULL);
        if (write(c, "\0\0\0\x08\x12\x34\x56\x78", 8) != 8)
            die("write");
        close(c);
        close(s);
        c = connect_loopback(SOCK_STREAM, port);
        s = accept(lfd, NULL, NULL);
        const char *get = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
        if (send(c, get, strlen(get), 0) < 0)
            die("send");
        close(c);
        close(s);
        close(lfd);
    } else if (!strcmp(mode, "cancel")) {
        int fd = wire_connect(0, 0);
        unsigned char b[16] = {0};
        put32(b, 16);
        put32(b + 4, 80877102);
        if (write(fd, b, 16) != 16)
            die("write");
        close(fd);
    } else if (!strcmp(mode, "udp")) {
        int lfd, port = listener(SOCK_DGRAM, &lfd);
        int c = connect_loopback(SOCK_DGRAM, port);
        unsigned char b[8];
        put32(b, 8);
        put32(b + 4, 80877103);
        if (send(c, b, 8, 0) != 8)
            die("send");
        close(c);
        close(lfd);
    } else if (!strcmp(mode, "writev")) {
        unsigned char buf[512];
        size_t n = startup_message(buf, sizeof buf);
        int fd = wire_connect(0, 0);
        struct iovec v[2] = {{buf, 3}, {buf + 3, n - 3}};
        if (writev(fd, v, 2) != (ssize_t)n)
            die("writev");
        until_ready(fd);
        close_session(fd);
        fd = wire_connect(0, 0);
        struct msghdr m = {.msg_iov = v, .msg_iovlen = 2};
        if (sendmsg(fd, &m, 0) != (ssize_t)n)
            die("sendmsg");
        until_ready(fd);
        /* left open */
    } else {
        fprintf(stderr, "fx_wire: unknown mode %s\n", mode);
        return 2;
    }
    return 0;
}
