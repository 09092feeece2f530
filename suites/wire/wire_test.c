/* wire_test.c — PostgreSQL connections seen on their sockets (no libpq): fx_wire speaks the protocol to the cluster `connleak run --postgres` starts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clk_assert.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define TIMEOUT .timeout = 180

/* fx_wire MODE [ARG] under `connleak run --postgres --json`. */
static int run_wire(clk_test_run *r, const char *mode, const char *arg)
{
    const char *cmd[] = {FX_WIRE, mode, arg, NULL};
    return clk_test_connleak(ARGS("--postgres"), cmd, NULL, r);
}

/* Exact counts of a run, and its exit status. */
static void expect(clk_test_run *r, int status, long long connects, long long closes, long long leaks)
{
    clk_assert_report(r);
    clk_assert_summary(r, "connects", connects);
    clk_assert_summary(r, "closes", closes);
    clk_assert_summary(r, "leaks", leaks);
    clk_assert_summary(r, "double_closes", 0);
    clk_assert_summary(r, "unknown_closes", 0);
    clk_assert_status(r, status);
}

/* Every postgres leak came by the wire route and its stack names `function`. */
static void expect_wire_leak(clk_test_run *r, const char *target_part, const char *function)
{
    json_t *leak = clk_test_find_leak(r->report, "postgres", target_part, function);
    cr_assert_not_null(leak, "no postgres leak to %s naming %s" CLK_CTX_FMT, target_part ? target_part : "*", function,
                       CLK_CTX(r));
    cr_assert_str_eq(clk_test_str(leak, "via"), "wire", "via" CLK_CTX_FMT, CLK_CTX(r));
    cr_assert_str_eq(clk_test_first_function(json_object_get(leak, "opened_at")), "wire_connect",
                     "the stack is the connect call's" CLK_CTX_FMT, CLK_CTX(r));
}

Test(wire, leak_of_one_of_two_sessions, TIMEOUT)
{
    clk_test_run r;
    run_wire(&r, "leak", NULL);
    expect(&r, 23, 2, 1, 1);
    /* the target is rebuilt from the socket and the startup message: user, socket directory, database */
    expect_wire_leak(&r, "postgresql://postgres@:", "open_leaked_session");
    json_t *leak = clk_test_find_leak(r.report, "postgres", NULL, NULL);
    cr_assert(clk_test_contains(clk_test_str(leak, "target"), "/postgres?host=/"), "target %s",
              clk_test_str(leak, "target"));
    cr_assert(clk_test_contains(r.proc.err, "seen on its socket"), "text report names the route" CLK_CTX_FMT,
              CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(wire, sessions_closed_are_clean, TIMEOUT)
{
    clk_test_run r;
    run_wire(&r, "clean", "5"); /* Unix socket and TCP in turn */
    expect(&r, 0, 5, 5, 0);
    clk_test_run_free(&r);
}

Test(wire, close_without_terminate_is_a_close, TIMEOUT)
{
    clk_test_run r;
    run_wire(&r, "noterm", NULL);
    expect(&r, 0, 1, 1, 0);
    clk_test_run_free(&r);
}

Test(wire, ssl_request_is_a_connection, TIMEOUT)
{
    clk_test_run r;
    run_wire(&r, "tls", NULL);
    expect(&r, 23, 2, 1, 1);
    /* TLS hides the startup message: host and port only */
    expect_wire_leak(&r, "postgresql://127.0.0.1:", "main");
    clk_test_run_free(&r);
}

Test(wire, gssenc_request_is_a_connection, TIMEOUT)
{
    clk_test_run r;
    run_wire(&r, "gssenc", NULL);
    expect(&r, 0, 1, 1, 0);
    clk_test_run_free(&r);
}

Test(wire, close_range_and_closefrom_close, TIMEOUT)
{
    clk_test_run r;
    run_wire(&r, "close_range", NULL);
    expect(&r, 0, 3, 3, 0);
    clk_test_run_free(&r);
}

Test(wire, dup2_over_the_socket_closes_once, TIMEOUT)
{
    clk_test_run r;
    run_wire(&r, "dup2", NULL);
    expect(&r, 0, 1, 1, 0);
    clk_test_run_free(&r);
}

Test(wire, fork_child_leaks_its_own_not_the_parents, TIMEOUT)
{
    clk_test_run r;
    run_wire(&r, "fork", NULL);
    expect(&r, 23, 2, 1, 1);
    expect_wire_leak(&r, NULL, "open_leaked_session");
    long long child = clk_test_stdout_int(r.proc.out, "child=");
    json_t *leak = clk_test_find_leak(r.report, "postgres", NULL, "open_leaked_session");
    cr_assert(clk_test_pids_contain(leak, child), "the leak is the child's (%lld)" CLK_CTX_FMT, child, CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(wire, non_blocking_connect, TIMEOUT)
{
    clk_test_run r;
    run_wire(&r, "nonblock", NULL);
    expect(&r, 23, 2, 1, 1);
    expect_wire_leak(&r, "@127.0.0.1:", "main");
    clk_test_run_free(&r);
}

Test(wire, writev_and_sendmsg_startups, TIMEOUT)
{
    clk_test_run r;
    run_wire(&r, "writev", NULL);
    expect(&r, 23, 2, 1, 1);
    clk_test_run_free(&r);
}

/* Sockets that are no session: nothing counted. */
Test(wire, socket_that_never_writes, TIMEOUT)
{
    clk_test_run r;
    run_wire(&r, "nowrite", NULL);
    expect(&r, 0, 0, 0, 0);
    clk_test_run_free(&r);
}

Test(wire, other_protocols_on_loopback, TIMEOUT)
{
    clk_test_run r;
    run_wire(&r, "notpg", NULL);
    expect(&r, 0, 0, 0, 0);
    clk_test_run_free(&r);
}

Test(wire, cancel_request_is_no_session, TIMEOUT)
{
    clk_test_run r;
    run_wire(&r, "cancel", NULL);
    expect(&r, 0, 0, 0, 0);
    clk_test_run_free(&r);
}

Test(wire, udp_datagram_is_no_session, TIMEOUT)
{
    clk_test_run r;
    run_wire(&r, "udp", NULL);
    expect(&r, 0, 0, 0, 0);
    clk_test_run_free(&r);
}

/* libpq's own sockets stay the libpq wrappers': TLS over TCP and a plain socket, one connect each. */
Test(wire, libpq_counted_once, TIMEOUT)
{
    clk_test_run r;
    const char *cmd[] = {"sh", "-c",
                         "psql -X -q -c 'select 1' >/dev/null && "
                         "psql -X -q \"host=$CONNLEAK_PG_TCP_HOST sslmode=require\" -c 'select 1' >/dev/null",
                         NULL};
    clk_test_connleak(ARGS("--postgres"), cmd, NULL, &r);
    expect(&r, 0, 2, 2, 0);
    clk_test_run_free(&r);
}
