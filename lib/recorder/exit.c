/* exit.c — _exit and _Exit leave the time the process ended in its journal, as exit() does through the destructor. */
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "host.h"

/* A process that ends by _exit (a fork child, Python's os._exit, multiprocessing's
 * workers) runs no destructor: without this record the CLI could only take "when
 * the report was made" as its end, and --held-longer-than would count the
 * connections it still held as held until the whole run ended. */

static void (*real_exit)(int), (*real_Exit)(int);

/* Resolved at load: a vfork child or a signal handler calling _exit must not
 * enter the loader (its lock, malloc). */
__attribute__((constructor)) static void resolve_exit(void)
{
    real_exit = (void (*)(int))dlsym(RTLD_NEXT, "_exit");
    real_Exit = (void (*)(int))dlsym(RTLD_NEXT, "_Exit");
}

static void note_end(void)
{
    /* not inside our own bookkeeping (a signal handler), not a vfork child (its
     * memory and journal are its parent's), only a journal already started */
    if (clk_busy || getpid() != clk_owner_pid || !clk_journal_active())
        return;
    clk_busy++;
    clk_journal_exit();
    clk_busy--;
}

static __attribute__((noreturn)) void end(void (*real)(int), int status)
{
    if (real)
        real(status);
    for (;;)
        syscall(SYS_exit_group, status);
}

__attribute__((visibility("default"), noreturn)) void _exit(int status)
{
    note_end();
    end(real_exit, status);
}

__attribute__((visibility("default"), noreturn)) void _Exit(int status)
{
    note_end();
    end(real_Exit ? real_Exit : real_exit, status);
}
