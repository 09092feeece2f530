/* connleak_criterion.h — make a Criterion test fail, by name, when it leaves a database connection open: CONNLEAK_TEST() instead of Test(). */
#ifndef CONNLEAK_CRITERION_H
#define CONNLEAK_CRITERION_H

/*
 * Usage (link with libconnleak: `pkg-config --cflags --libs connleak criterion`):
 *
 *     #include <connleak_criterion.h>
 *
 *     CONNLEAK_TEST(orders, total)                 // same arguments as Test()
 *     {
 *         sqlite3 *db = open_orders_db();
 *         ...                                      // forgot sqlite3_close(db)
 *     }
 *
 * At the end of the body the test fails (a non-fatal assertion, so the rest
 * of the test still ran) when a connection opened since the body began is
 * still open, or a connection was closed twice, with the opener's stack:
 *
 *     [----]   connleak: 1 connection opened during this test is still open
 *     [----]     sqlite connection to :memory:, opened at:
 *     [----]       #0 open_orders_db (my-tests+0x1a2b)
 *     [FAIL] orders::total: (0.00s)
 *
 * What the check sees:
 *  - Under `connleak run -- ./my-tests` or with LD_PRELOAD of
 *    libconnleak-preload.so, connleak_* resolve to the preloaded tracker: the
 *    wrapped sqlite3_open*, PQconnect* and the like are seen, and pool events.
 *  - Run plainly with libconnleak linked, only what is recorded through
 *    connleak_record() (pools such as dbconf's) is seen: nothing wraps
 *    sqlite3/libpq then, so a raw sqlite3_open is not checked (the binary
 *    says so once on stderr).
 *  - The check runs at the end of the body, not in .fini: Criterion 2.4.1
 *    does not fail a test for an assertion in .fini. Connections opened by
 *    .init (and closed by .fini) are open when the body begins and are not
 *    the test's; a connection the body opens and a .fini closes is reported.
 *  - A failing fatal assertion (cr_assert*) ends the body early: the test has
 *    failed already and the leak check is skipped.
 *  - Function names come from the dynamic symbol table (dladdr): build the
 *    test binary with -rdynamic (meson: export_dynamic : true) and keep the
 *    openers non-static for names; other frames show module+offset for
 *    addr2line. `connleak run` symbolizes fully, with files and lines.
 *
 * For ParameterizedTest, Theory or your own harness, call
 * connleak_test_begin() where the test starts and connleak_criterion_check()
 * at the end of its body.
 */

#include <stddef.h>

#include <connleak.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Framework-neutral (in libconnleak): remember what is open now. */
void connleak_test_begin(void);
/* Says once on stderr when libconnleak-preload.so is not in the process (SQLite and libpq opens
 * are then not tracked). CONNLEAK_TEST calls it in Criterion's runner; connleak_test_begin()
 * calls it too, outside Criterion's workers. */
void connleak_test_check_preload(void);
/* Describe into buf (NUL-terminated, truncated to cap) every connection
 * opened since connleak_test_begin() (since the start of the process without
 * it) and still open, and the double closes since then, each with its stack.
 * Returns how many findings there are; 0 means the test was clean. */
size_t connleak_test_end(char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#ifndef CONNLEAK_TEST_API_ONLY
#include <stdio.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#define CONNLEAK_CRITERION_MSG_MAX 16384

/* Fails the running test (non-fatally) with msg. Expanded here, with whichever
 * Criterion assertion API is visible now, so including
 * <criterion/new/assert.h> before or after this header both work. */
static inline void connleak_criterion_fail_(const char *msg)
{
#ifdef CRITERION_NEW_ASSERT_H_
    cr_fail("%s", msg);
#else
    cr_expect_fail("%s", msg);
#endif
}

static inline void connleak_criterion_check_at_(const char *file, int line)
{
    char *msg = (char *)malloc(CONNLEAK_CRITERION_MSG_MAX);
    if (!msg)
        return;
    size_t found = connleak_test_end(msg, CONNLEAK_CRITERION_MSG_MAX);
    if (found) {
        size_t len = 0;
        while (msg[len])
            len++;
        /* where the test is, for readers of long logs */
        if (len > 0 && msg[len - 1] == '\n')
            msg[len - 1] = 0;
        char *full = (char *)malloc(CONNLEAK_CRITERION_MSG_MAX + 256);
        if (full) {
            snprintf(full, CONNLEAK_CRITERION_MSG_MAX + 256, "%s\n  (checked at %s:%d)", msg, file, line);
            connleak_criterion_fail_(full);
            free(full);
        } else {
            connleak_criterion_fail_(msg);
        }
    }
    free(msg);
}

/* Fails the running test if it leaked since connleak_test_begin(). */
#define connleak_criterion_check() connleak_criterion_check_at_(__FILE__, __LINE__)

/* CONNLEAK_TEST(suite, name[, Test() options...]) { body }: a Criterion Test
 * whose body is checked for connections it left open. */
#define CONNLEAK_TEST(...)                                                                      \
    CONNLEAK_TEST_(CONNLEAK_ARG1_(__VA_ARGS__, ~), CONNLEAK_ARG2_(__VA_ARGS__, ~, ~), __VA_ARGS__)
#define CONNLEAK_ARG1_(a, ...) a
#define CONNLEAK_ARG2_(a, b, ...) b
#define CONNLEAK_BODY_(Suite, Name) CONNLEAK_BODY2_(Suite, Name)
#define CONNLEAK_BODY2_(Suite, Name) connleak_body_##Suite##_##Name
/* The body is an external function, like Criterion's own test functions, so
 * that with -rdynamic its frame is named too. */
#define CONNLEAK_CTOR_(Suite, Name) CONNLEAK_CTOR2_(Suite, Name)
#define CONNLEAK_CTOR2_(Suite, Name) connleak_ctor_##Suite##_##Name
/* The constructor runs in Criterion's runner too, which warns once when the preload is missing. */
#define CONNLEAK_TEST_(Suite, Name, ...)                                                        \
    __attribute__((constructor)) static void CONNLEAK_CTOR_(Suite, Name)(void)                  \
    {                                                                                           \
        connleak_test_check_preload();                                                          \
    }                                                                                           \
    void CONNLEAK_BODY_(Suite, Name)(void);                                                     \
    Test(__VA_ARGS__)                                                                           \
    {                                                                                           \
        connleak_test_begin();                                                                  \
        CONNLEAK_BODY_(Suite, Name)();                                                          \
        connleak_criterion_check();                                                             \
    }                                                                                           \
    void CONNLEAK_BODY_(Suite, Name)(void)

#endif /* CONNLEAK_TEST_API_ONLY */
#endif
