/* host.h — staying out of the host's way: the recorder's descriptors, the processes it starts, exec. */
#ifndef CONNLEAK_HOST_H
#define CONNLEAK_HOST_H

#include <sys/types.h>

#include "recorder.h"

/* ---- fd.c: descriptors the recorder keeps ----
 * A program must see the descriptor numbers and the limit it would see alone:
 * whatever the recorder keeps open (the journal, libunwind's pipe, the direct
 * report's copy of stderr) is moved out of the way, close-on-exec. */

/* Moves fd to a number out of the program's way and returns it (fd itself
 * when it cannot move; errno kept). While a process is being set up
 * (clk_fd_setup), above the soft limit when the hard limit leaves room, so
 * the program keeps its whole limit; else as near the top of it as is free. */
CLK_HIDDEN int clk_fd_park(int fd);
/* Nonzero on the thread setting a process up (start, a new child's first
 * moments): the soft limit may be raised there for an instant. */
CLK_HIDDEN extern __thread int clk_fd_setup __attribute__((tls_model("initial-exec")));
/* At start, before libunwind's first walk: learns where libunwind is, whose
 * pipe (its memory checks) is then parked. */
CLK_HIDDEN void clk_fd_init(void);

/* A descriptor of ours and the file it was: a program may close it and reuse the number. */
struct clk_held {
    int fd;
    dev_t dev;
    ino_t ino;
};
/* Fills h from fd (h->fd = -1 when fd is not open). */
CLK_HIDDEN void clk_held_set(struct clk_held *h, int fd);
/* Is h->fd still the file it was? */
CLK_HIDDEN int clk_held_ok(const struct clk_held *h);

/* ---- journal.c, options.c ---- */
/* No journal could be made where the CLI asked for one: report at exit instead (journal.c says how). */
CLK_HIDDEN void clk_journal_fall_back(void);
/* CONNLEAK_OPTIONS set exitcode (0 included). */
CLK_HIDDEN extern int clk_opts_exitcode_given;
/* clk_opts.output came from log_path= (the last of output=/log_path=): the
 * direct report goes to OUTPUT.PID, one file per process. */
CLK_HIDDEN extern int clk_opts_log_path;
/* symbolize=0: the direct report stays raw (no CLI, no journal); symbolizer=PATH: the CLI to hand it to. */
CLK_HIDDEN extern int clk_opts_symbolize;
CLK_HIDDEN extern char clk_opts_symbolizer[512];
/* Direct mode (preloaded without the CLI): the process journals into an
 * unnamed file of its own (O_TMPFILE in $TMPDIR or /tmp: nothing is left
 * behind, whatever way the process ends), which the connleak CLI reads at exit
 * to print the report `connleak run` prints. Set before clk_journal_start. */
CLK_HIDDEN extern int clk_journal_private;
/* The journal's descriptor when it is still ours, else -1. */
CLK_HIDDEN int clk_journal_fd(void);

/* ---- tracker.c: the double and unknown closes, for the direct printer ---- */
struct clk_left_view {
    uint8_t backend;
    int is_double;
    uint64_t handle;
    uint32_t stack;                        /* where it was closed (again) */
    uint32_t open_stack, first_close_stack; /* double closes: where it was opened and first closed */
    uint32_t target;
};
CLK_HIDDEN void clk_track_each_left_field(void (*fn)(const struct clk_left_view *, void *), void *ctx);

/* ---- printer.c: where the direct report goes ---- */
/* Keeps a copy of stderr as it is now, for a report printed at exit (direct
 * mode, or a run whose journal could not be made). */
CLK_HIDDEN void clk_report_keep_stderr(void);

/* ---- process.c: new processes ---- */
/* The same set-up as fork's, for processes started without atfork handlers
 * (clone, clone3, _Fork): before, in the parent, and after, in each. */
CLK_HIDDEN void clk_newproc_prepare(void);
CLK_HIDDEN void clk_newproc_parent(void);
CLK_HIDDEN void clk_newproc_child(void);
/* The process this recorder's state belongs to (its journal's pid). */
CLK_HIDDEN extern pid_t clk_owner_pid;

/* ---- exec.c: descendants keep the detector ---- */
/* At start (connleak run, follow_children): remembers what a descendant needs
 * (our library, the run's variables); also notes a start whose environment had
 * them re-added. */
CLK_HIDDEN void clk_exec_init(void);

#endif
