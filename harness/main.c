/* main.c — the connleak command: dispatches run, report, postgres, preload-path, demo, --help and --version. */
#include <stdio.h>
#include <string.h>

#include "connleak.h"
#include "harness.h"

/* meson's project version (harness/meson.build); connleak.h's otherwise */
#ifndef CLK_MESON_VERSION
#define CLK_MESON_VERSION CONNLEAK_VERSION
#endif

static const char usage[] =
    "usage: connleak COMMAND [OPTIONS]\n"
    "\n"
    "Finds database connections (SQLite, PostgreSQL/libpq, in-process pools) that a program\n"
    "opens and never closes, closes twice, or closes without having opened.\n"
    "\n"
    "commands:\n"
    "  run [OPTIONS] -- COMMAND [ARG...]   run COMMAND with the detector preloaded into it and every\n"
    "                                      process it starts; print the merged report on stderr\n"
    "  report [OPTIONS] FILE...            merge and render journals (*.raw, run directories) or JSON reports\n"
    "  postgres -- COMMAND [ARG...]        run COMMAND (not under the detector) with a throwaway PostgreSQL\n"
    "                                      cluster; PGHOST, PGPORT, PGUSER, PGDATABASE, DATABASE_URL set\n"
    "  preload-path                        print the absolute path of libconnleak-preload.so\n"
    "  --help, -h                          this text (also COMMAND --help)\n"
    "  --version, -V                       print \"connleak VERSION\" and exit 0\n"
    "\n"
    "options of run and report:\n"
    "  --json FILE          also write the merged report as JSON to FILE\n"
    "  --format FORMAT      text (default), json, junit, sarif, github or html (one self-contained\n"
    "                       HTML page, nothing fetched); to stderr unless\n"
    "                       an --output FILE follows it (repeat the pair for several)\n"
    "  --output FILE        where the preceding --format goes (alone: text to FILE)\n"
    "  --suppressions FILE  leak:, double_close:, unknown_close: PATTERN lines (LSan style)\n"
    "  --baseline FILE      findings whose fingerprints are in FILE do not fail the run\n"
    "  --write-baseline FILE  record the current findings' fingerprints in FILE (they do not fail\n"
    "                       this run)\n"
    "  --gen-suppressions[=FILE]  after the report, one suppression rule per finding, each matching\n"
    "                       that finding only where a name tells it apart (Valgrind's =all); on\n"
    "                       stderr, or written to FILE\n"
    "  --exitcode N         exit status when unsuppressed leaks or double closes remain (default 23)\n"
    "  --fail-on WHAT       what fails the run too, with the --exitcode (repeat, or a comma list;\n"
    "                       also CONNLEAK_OPTIONS=fail_on=WHAT): unseen, notes on database clients the\n"
    "                       detector cannot see (a copy of its own, a static or Go program...);\n"
    "                       finalizer, connections the program never closed that its garbage\n"
    "                       collector closed (closed_by_finalizer)\n"
    "  --held-longer-than DURATION  also list each connection held open longer than DURATION\n"
    "                       (500ms, 1.5s, 2m), closed later or not: long_held (never fails the run;\n"
    "                       the processes time their opens and closes only then)\n"
    "  --source-root DIR    paths in SARIF, GitHub and JUnit relative to DIR (default: $GITHUB_WORKSPACE,\n"
    "                       else the current directory)\n"
    "  --verbose            more detail\n"
    "  --quiet              no report on stderr (the exit status and --json still tell)\n"
    "options of run only:\n"
    "  --postgres           start a throwaway PostgreSQL cluster for the command's lifetime\n"
    "  --stack-depth N      frames kept per stack (1-128, default 32)\n"
    "  --keep-raw DIR       write the per-process journals to DIR and keep them\n"
    "  --no-follow-children only the command itself is watched, not what it starts\n"
    "                       (--follow-children, the default, watches them all)\n"
    "\n"
    "exit status of run: the command's own status when non-zero (128+signal when killed; 127 not\n"
    "found, 126 not executable, with no report), else the --exitcode when findings (or --fail-on\n"
    "notes) remain, else 0. Of report: the --exitcode when findings (or --fail-on notes) remain,\n"
    "0 when none, 2 for unreadable input (what can be read is still reported).\n"
    "\n"
    "Direct use: LD_PRELOAD=$(connleak preload-path) COMMAND prints, as each process exits, the\n"
    "report run prints for it (the library hands its journal to this connleak: symbolizer=PATH,\n"
    "else beside the library, else on PATH; symbolize=0 for its own raw report);\n"
    "CONNLEAK_OPTIONS=key=value:... sets exitcode, stack_depth, report, output, log_path (PATH.PID\n"
    "per process), verbosity, follow_children, suppressions, held_longer_than (listed in a report\n"
    "printed for a leak or double close), symbolize, symbolizer (help=1 lists the keys; fail_on only\n"
    "under run and report); under run, a bad pair is refused before the\n"
    "command starts, exitcode= is the --exitcode and output= an --output for the text report.\n"
    "connleak run adds verify_asan_link_order=0 to ASAN_OPTIONS (unless set): gcc's AddressSanitizer\n"
    "runtime would refuse to start after the preloaded library.\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
        printf("connleak %s\n", CLK_MESON_VERSION);
        return 0;
    }
    /* COMMAND --help: the one usage text covers every command */
    int known = !strcmp(cmd, "run") || !strcmp(cmd, "report") || !strcmp(cmd, "postgres") ||
                !strcmp(cmd, "preload-path");
    if (known && argc > 2 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "run"))
        return clk_cmd_run(argc - 2, argv + 2);
    if (!strcmp(cmd, "report"))
        return clk_cmd_report(argc - 2, argv + 2);
    if (!strcmp(cmd, "postgres"))
        return clk_cmd_postgres(argc - 2, argv + 2);
    if (!strcmp(cmd, "preload-path")) {
        if (argc > 2) {
            clk_err("preload-path: takes no arguments (got '%s')", argv[2]);
            return 2;
        }
        const char *p = clk_preload_path();
        if (!p) {
            clk_err("libconnleak-preload.so not found next to this connleak (set CONNLEAK_PRELOAD)");
            return 1;
        }
        puts(p);
        return 0;
    }
    clk_err("unknown command '%s' (try connleak --help)", cmd);
    return 2;
}
