/* security_test.c — files connleak writes are private, never reached through a planted symlink, and free of passwords. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clk_assert.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define TIMEOUT .timeout = 120

Test(security, keep_raw_refuses_a_symlinked_directory, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char *real = clk_test_path(dir, "real"), *link = clk_test_path(dir, "link");
    cr_assert_eq(mkdir(real, 0700), 0);
    cr_assert_eq(symlink(real, link), 0);
    clk_test_proc p;
    clk_test_exec(ARGS(clk_test_cli(), "run", "--keep-raw", link, "--", clk_test_fixture("fx_sqlite"), "leak-open",
                       ":memory:"),
                  NULL, NULL, 0, &p);
    cr_assert_eq(p.status, 2, "exit %d, want 2 (refused): %s", p.status, clk_test_excerpt(p.err));
    cr_assert(clk_test_contains(p.err, link), "the error should name the path: %s", p.err);
    cr_assert_eq(clk_test_count_lines(p.err), 1, "one line: %s", p.err);
    DIR *d = opendir(real);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)))
        files += e->d_name[0] != '.';
    closedir(d);
    cr_assert_eq(files, 0, "nothing may be written through the symlink");
    clk_test_proc_free(&p);
    clk_test_rmtree(dir);
}

Test(security, a_report_replaces_a_planted_symlink_instead_of_following_it, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char *victim = clk_test_path(dir, "victim"), *planted = clk_test_path(dir, "report.json");
    cr_assert_eq(clk_test_write_file(victim, "precious\n", 9), 0);
    cr_assert_eq(symlink(victim, planted), 0);
    clk_test_proc p;
    clk_test_exec(ARGS(clk_test_cli(), "run", "--json", planted, "--", clk_test_fixture("fx_sqlite"), "leak-open",
                       ":memory:"),
                  NULL, NULL, 0, &p);
    cr_assert_eq(p.status, 23, "exit %d: %s", p.status, clk_test_excerpt(p.err));
    char *left = clk_test_read_file(victim, NULL);
    cr_assert_str_eq(left, "precious\n", "the symlink's target was written");
    struct stat st;
    cr_assert_eq(lstat(planted, &st), 0);
    cr_assert(S_ISREG(st.st_mode), "the report is a regular file in the symlink's place");
    mode_t um = umask(0); /* a report holds no secrets: its mode follows the umask */
    umask(um);
    cr_assert_eq(st.st_mode & 0777, 0666 & ~um, "report mode %o, want %o", st.st_mode & 0777, 0666 & ~um);
    char *text = clk_test_read_file(planted, NULL);
    cr_assert(clk_test_contains(text, "\"leaks\""), "not the report: %s", clk_test_excerpt(text));
    clk_test_proc_free(&p);
    clk_test_rmtree(dir);
}

/* Every byte of every kept journal, searched for the password. */
static void assert_no_secret_in_dir(const char *dir, const char *secret)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cannot read %s", dir);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *path = clk_test_path(dir, e->d_name);
        struct stat st;
        cr_assert_eq(lstat(path, &st), 0);
        cr_assert_eq(st.st_mode & 0777, 0600, "%s has mode %o, want 0600", path, st.st_mode & 0777);
        size_t len;
        char *data = clk_test_read_file(path, &len);
        cr_assert_not_null(data);
        cr_assert_null(memmem(data, len, secret, strlen(secret)), "%s holds the password", path);
        files++;
    }
    closedir(d);
    cr_assert_gt(files, 0, "no journal kept in %s", dir);
}

Test(security, kept_journals_are_private_and_hold_no_password, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char *raw = clk_test_path(dir, "raw"), *json = clk_test_path(dir, "report.json");
    clk_test_proc p;
    /* the password in the program's arguments (a URL and a conninfo) and in PGPASSWORD */
    clk_test_exec(ARGS(clk_test_cli(), "run", "--keep-raw", raw, "--json", json, "--", clk_test_fixture("fx_sqlite"),
                       "leak-open", ":memory:", "postgresql://app:s3cret@db.example/app",
                       "host=db.example password=s3cret",
                       /* passwords inside other arguments, and as an option's value */
                       "--url=postgresql://app:s3cret@db.example/app", "DATABASE_URL=postgres://app:s3cret@db/app",
                       "--password=s3cret", "--db-password", "s3cret", "PGPASSWORD=s3cret",
                       "dbname='postgresql://app:s3cret@db/app'", "sh -c 'psql \"host=db password=s3cret\"'",
                       /* and what is no secret stays as it was */
                       "/srv/passwd:2024.db", "PWD=/home/u", "--no-password", "-h", "a=b  c"),
                  ARGS("PGPASSWORD=s3cret"), NULL, 0, &p);
    cr_assert_eq(p.status, 23, "exit %d: %s", p.status, clk_test_excerpt(p.err));
    struct stat st;
    cr_assert_eq(stat(raw, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700, "run directory mode %o, want 0700", st.st_mode & 0777);
    assert_no_secret_in_dir(raw, "s3cret");
    cr_assert(!clk_test_contains(clk_test_read_file(json, NULL), "s3cret"), "the JSON report holds the password");
    cr_assert(!clk_test_contains(p.err, "s3cret"), "stderr holds the password");
    /* the command is still shown, only without the passwords */
    char *report = clk_test_read_file(json, NULL);
    cr_assert(clk_test_contains(report, "--url=postgresql://app@db.example/app"), "%s", clk_test_excerpt(report));
    cr_assert(clk_test_contains(report, "\"--db-password\",\"***\""), "%s", clk_test_excerpt(report));
    cr_assert(clk_test_contains(report, "\"/srv/passwd:2024.db\",\"PWD=/home/u\",\"--no-password\",\"-h\",\"a=b  c\""),
              "arguments that hold no password must stay as they were: %s", clk_test_excerpt(report));
    /* the journals still make a report */
    clk_test_proc q;
    clk_test_exec(ARGS(clk_test_cli(), "report", raw), NULL, NULL, 0, &q);
    cr_assert_eq(q.status, 23, "report of the kept journals: exit %d: %s", q.status, clk_test_excerpt(q.err));
    cr_assert(clk_test_contains(q.err, "leak_with_open"), "%s", clk_test_excerpt(q.err));
    clk_test_proc_free(&q);
    clk_test_proc_free(&p);
    clk_test_rmtree(dir);
}

static int files_in(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cannot read %s", dir);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)))
        files += e->d_name[0] != '.';
    closedir(d);
    return files;
}

/* CONNLEAK_RUN_DIR set by hand: the library itself refuses a directory others
 * may write to, and a symlink to one of ours; the program runs on unchanged. */
Test(security, the_library_refuses_a_run_directory_others_can_write_or_a_symlink, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char *open_dir = clk_test_path(dir, "open"), *mine = clk_test_path(dir, "mine"), *link = clk_test_path(dir, "link");
    cr_assert_eq(mkdir(open_dir, 0700), 0);
    cr_assert_eq(chmod(open_dir, 0777), 0);
    cr_assert_eq(mkdir(mine, 0700), 0);
    cr_assert_eq(symlink(mine, link), 0);
    char *link_slash = clk_test_path(dir, "link/"); /* O_NOFOLLOW alone follows "link/" */
    const char *bad[] = {open_dir, link, link_slash};
    for (int i = 0; i < 3; i++) {
        char pre[4096], run_dir[4096];
        snprintf(pre, sizeof pre, "LD_PRELOAD=%s", clk_test_preload());
        snprintf(run_dir, sizeof run_dir, "CONNLEAK_RUN_DIR=%s", bad[i]);
        clk_test_proc p;
        clk_test_exec(ARGS(clk_test_fixture("fx_sqlite"), "clean", ":memory:"), ARGS(pre, run_dir), NULL, 0, &p);
        cr_assert_eq(p.status, 0, "%s: the program's status changed: %d %s", bad[i], p.status, p.err);
        cr_assert(clk_test_contains(p.err, bad[i]) && clk_test_contains(p.err, "not a private directory"),
                  "%s: no word of the refusal: %s", bad[i], p.err);
        cr_assert_eq(clk_test_count_lines(p.err), 1, "one line: %s", p.err);
        clk_test_proc_free(&p);
    }
    /* refused, the findings are not lost: the library prints them itself at exit */
    {
        char pre[4096], run_dir[4096];
        snprintf(pre, sizeof pre, "LD_PRELOAD=%s", clk_test_preload());
        snprintf(run_dir, sizeof run_dir, "CONNLEAK_RUN_DIR=%s", open_dir);
        clk_test_proc p;
        clk_test_exec(ARGS(clk_test_fixture("fx_sqlite"), "leak-open", ":memory:"), ARGS(pre, run_dir), NULL, 0, &p);
        cr_assert_eq(p.status, 0, "the program's status changed: %d %s", p.status, p.err);
        cr_assert(clk_test_contains(p.err, "detected 1 leaked database connection"), "the leak was lost: %s", p.err);
        clk_test_proc_free(&p);
    }
    cr_assert_eq(files_in(open_dir), 0, "a journal was written where others can write");
    cr_assert_eq(files_in(mine), 0, "a journal was written through the symlink");
    /* the CLI refuses such a --keep-raw directory too */
    clk_test_proc p;
    clk_test_exec(ARGS(clk_test_cli(), "run", "--keep-raw", open_dir, "--", clk_test_fixture("fx_sqlite"), "clean",
                       ":memory:"),
                  NULL, NULL, 0, &p);
    cr_assert_eq(p.status, 2, "exit %d, want 2 (refused): %s", p.status, clk_test_excerpt(p.err));
    cr_assert(clk_test_contains(p.err, "writable by others"), "%s", p.err);
    clk_test_proc_free(&p);
    clk_test_exec(ARGS(clk_test_cli(), "run", "--keep-raw", link_slash, "--", clk_test_fixture("fx_sqlite"), "clean",
                       ":memory:"),
                  NULL, NULL, 0, &p);
    cr_assert_eq(p.status, 2, "--keep-raw link/: exit %d, want 2 (refused): %s", p.status, clk_test_excerpt(p.err));
    cr_assert_eq(files_in(mine), 0, "a journal was written through link/");
    clk_test_proc_free(&p);
    clk_test_rmtree(dir);
}

/* Direct preloading with output=FILE: a file someone planted at that name (or a
 * link there) is replaced by a new private one, never written into. */
Test(security, direct_output_replaces_a_planted_file_instead_of_writing_into_it, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char *planted = clk_test_path(dir, "report.txt"), *victim = clk_test_path(dir, "victim");
    char *linked = clk_test_path(dir, "linked.txt");
    cr_assert_eq(clk_test_write_file(planted, "planted\n", 8), 0);
    cr_assert_eq(chmod(planted, 0666), 0);
    cr_assert_eq(clk_test_write_file(victim, "precious\n", 9), 0);
    cr_assert_eq(symlink(victim, linked), 0);
    const char *outs[] = {planted, linked};
    for (int i = 0; i < 2; i++) {
        char pre[4096], opts[4096];
        snprintf(pre, sizeof pre, "LD_PRELOAD=%s", clk_test_preload());
        snprintf(opts, sizeof opts, "CONNLEAK_OPTIONS=output=%s", outs[i]);
        clk_test_proc p;
        clk_test_exec(ARGS(clk_test_fixture("fx_sqlite"), "leak-open", ":memory:"), ARGS(pre, opts, "CONNLEAK_RUN_DIR"),
                      NULL, 0, &p);
        cr_assert_eq(p.status, 0, "status %d: %s", p.status, clk_test_excerpt(p.err));
        struct stat st;
        cr_assert_eq(lstat(outs[i], &st), 0);
        cr_assert(S_ISREG(st.st_mode), "%s: not a regular file of its own", outs[i]);
        cr_assert_eq(st.st_mode & 0777, 0600, "%s: mode %o, want 0600", outs[i], st.st_mode & 0777);
        char *text = clk_test_read_file(outs[i], NULL);
        cr_assert(clk_test_contains(text, "Leak of 1 sqlite connection") && !clk_test_contains(text, "planted"),
                  "%s holds: %s", outs[i], clk_test_excerpt(text));
        clk_test_proc_free(&p);
    }
    cr_assert_str_eq(clk_test_read_file(victim, NULL), "precious\n", "written through the link");
    cr_assert_eq(files_in(dir), 3, "a temporary file was left behind");
    clk_test_rmtree(dir);
}

/* A report to /dev/stderr (here /proc/self/fd/2, which cannot be renamed over
 * if this ever regresses) while stderr is a regular file: appended to that
 * file, never a new file renamed over the name (as root that replaced the
 * system's /dev/stderr). */
Test(security, output_to_proc_self_fd_2_appends_to_a_redirected_stderr, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char *log = clk_test_path(dir, "stderr.log");
    char script[8192];
    for (int direct = 0; direct < 2; direct++) {
        cr_assert_eq(clk_test_write_file(log, "before\n", 7), 0);
        if (direct)
            snprintf(script, sizeof script,
                     "LD_PRELOAD='%s' CONNLEAK_OPTIONS=output=/proc/self/fd/2 '%s' leak-open :memory: 2>>'%s'",
                     clk_test_preload(), clk_test_fixture("fx_sqlite"), log);
        else
            snprintf(script, sizeof script, "'%s' run --quiet --format text --output /proc/self/fd/2 -- '%s' "
                     "leak-open :memory: 2>>'%s'", clk_test_cli(), clk_test_fixture("fx_sqlite"), log);
        clk_test_proc p;
        clk_test_exec(ARGS("/bin/sh", "-c", script), ARGS("CONNLEAK_RUN_DIR"), NULL, 0, &p);
        cr_assert_eq(p.status, direct ? 0 : 23, "%s: exit %d: %s", script, p.status, clk_test_excerpt(p.err));
        char *text = clk_test_read_file(log, NULL);
        cr_assert(!strncmp(text, "before\n", 7), "what stderr held was lost: %s", clk_test_excerpt(text));
        /* the direct report is the CLI's too (the library hands its journal over at exit) */
        cr_assert(clk_test_contains(text, "leak_with_open"),
                  "%s: no report in the redirected stderr: %s", script, clk_test_excerpt(text));
        clk_test_proc_free(&p);
    }
    clk_test_rmtree(dir);
}
