/* clone.c — processes that come to be without fork's atfork handlers (clone, clone3, _Fork) get fork's set-up.
 *
 * fork() runs the recorder's atfork handlers: the parent holds every lock of
 * ours across it, and the child starts a journal of its own, with the
 * connections it inherited marked as its parent's. glibc's clone() without
 * CLONE_VM, _Fork(), and clone or clone3 made through syscall() run no
 * handlers: the child would write into its parent's journal (its connections
 * counted as the parent's, the parent's leaks reported as its own). These
 * wrappers do what the handlers do around the same call.
 *
 * What a child gets: none of the recorder's locks held (the parent took them
 * all before the call, as for fork), its own journal, the parent's open
 * connections marked inherited. What it does not get: glibc's own locks taken
 * around the call (malloc's, stdio's, as fork takes them), so the child of a
 * multi-threaded parent must keep to async-signal-safe calls, as POSIX says
 * after fork; the recorder's set-up in the child allocates nothing from malloc.
 * With CLONE_VM (threads, vfork-like children) nothing is done: the child
 * shares the parent's memory, recorder included. A clone made some other way
 * (inline assembly, a static runtime) is not seen: at exit such a process
 * writes nothing and reports nothing (process.c), since what it holds is its
 * parent's. With CLONE_FILES the child shares its parent's descriptors: it
 * closes the parent's journal descriptor, which the parent opens again when it
 * next needs it. */
#include <dlfcn.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "host.h"

#ifndef CLONE_VM
#define CLONE_VM 0x100
#endif

static int (*real_clone)(int (*)(void *), void *, int, void *, ...);
static pid_t (*real_Fork)(void);

static void resolve(void)
{
    if (!__atomic_load_n(&real_clone, __ATOMIC_ACQUIRE))
        __atomic_store_n(&real_clone, (__typeof(real_clone))dlsym(RTLD_NEXT, "clone"), __ATOMIC_RELEASE);
    if (!__atomic_load_n(&real_Fork, __ATOMIC_ACQUIRE))
        __atomic_store_n(&real_Fork, (__typeof(real_Fork))dlsym(RTLD_NEXT, "_Fork"), __ATOMIC_RELEASE);
    dlerror(); /* _Fork is glibc 2.34+: its absence is not the program's error */
}

/* ---- glibc's clone() ---- */

struct tramp {
    int (*fn)(void *);
    void *arg;
};

/* The child's first function: its copy of the parent's memory holds *p. */
static int child_start(void *p)
{
    struct tramp t = *(struct tramp *)p;
    int saved = errno;
    clk_newproc_child();
    errno = saved;
    return t.fn(t.arg);
}

__attribute__((visibility("default"))) int clone(int (*fn)(void *), void *stack, int flags, void *arg, ...)
{
    /* the optional arguments, read as glibc's clone reads them (whether given or not) */
    va_list ap;
    va_start(ap, arg);
    pid_t *ptid = va_arg(ap, pid_t *);
    void *tls = va_arg(ap, void *);
    pid_t *ctid = va_arg(ap, pid_t *);
    va_end(ap);
    int (*real)(int (*)(void *), void *, int, void *, ...) = __atomic_load_n(&real_clone, __ATOMIC_ACQUIRE);
    if (!real) {
        resolve();
        if (!(real = __atomic_load_n(&real_clone, __ATOMIC_ACQUIRE))) {
            errno = ENOSYS;
            return -1;
        }
    }
    if ((flags & CLONE_VM) || __atomic_load_n(&clk_ready, __ATOMIC_ACQUIRE) != 2)
        return real(fn, stack, flags, arg, ptid, tls, ctid);
    struct tramp t = {fn, arg};
    clk_newproc_prepare();
    int rc = real(child_start, stack, flags, &t, ptid, tls, ctid);
    int saved = errno;
    clk_newproc_parent();
    errno = saved;
    return rc;
}

/* ---- _Fork: fork without the atfork handlers ---- */

__attribute__((visibility("default"))) pid_t _Fork(void)
{
    pid_t (*real)(void) = __atomic_load_n(&real_Fork, __ATOMIC_ACQUIRE);
    if (!real) {
        resolve();
        if (!(real = __atomic_load_n(&real_Fork, __ATOMIC_ACQUIRE)))
            return (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    }
    if (__atomic_load_n(&clk_ready, __ATOMIC_ACQUIRE) != 2)
        return real();
    clk_newproc_prepare();
    pid_t pid = real();
    int saved = errno;
    if (pid == 0)
        clk_newproc_child();
    else
        clk_newproc_parent();
    errno = saved;
    return pid;
}

/* ---- syscall(SYS_clone / SYS_clone3, ...) ----
 * syscall() is called everywhere (futexes, gettid, getrandom...), also before
 * the recorder starts and inside the loader's callbacks, where looking the real
 * one up could deadlock: it is written out here as glibc writes it, and only a
 * clone or clone3 without CLONE_VM leaves the assembly for C. Everything else
 * (vfork, CLONE_VM, which share the caller's stack) never has a frame of ours. */
#if defined(__x86_64__)

CLK_HIDDEN long clk_raw_syscall(long n, long a1, long a2, long a3, long a4, long a5, long a6);
CLK_HIDDEN long clk_syscall_clone(long n, long a1, long a2, long a3, long a4, long a5, long a6);
/* wire.c: close, close_range, dup2 and dup3 made through syscall() (libuv's uv__close) */
CLK_HIDDEN long clk_wire_syscall(long n, long a1, long a2, long a3, long a4, long a5, long a6);

#ifdef __CET__
#define ENDBR "endbr64\n"
#else
#define ENDBR ""
#endif

__asm__(".text\n"
        ".globl syscall\n"
        ".type syscall, @function\n"
        "syscall:\n" ENDBR
        /* descriptors going away: close (3), dup2 (33), dup3 (292), close_range (436) */
        "  cmpq $3, %rdi\n"
        "  je clk_wire_syscall\n"
        "  cmpq $33, %rdi\n"
        "  je clk_wire_syscall\n"
        "  cmpq $292, %rdi\n"
        "  je clk_wire_syscall\n"
        "  cmpq $436, %rdi\n"
        "  je clk_wire_syscall\n"
        /* clone (56) without CLONE_VM in its flags (the first argument) */
        "  cmpq $56, %rdi\n"
        "  jne 1f\n"
        "  testl $0x100, %esi\n"
        "  jnz clk_raw_syscall\n"
        "  jmp clk_syscall_clone\n"
        /* clone3 (435): struct clone_args *, size; flags is its first u64 */
        "1:cmpq $435, %rdi\n"
        "  jne clk_raw_syscall\n"
        "  testq %rsi, %rsi\n"
        "  jz clk_raw_syscall\n"
        "  cmpq $8, %rdx\n"
        "  jb clk_raw_syscall\n"
        "  testl $0x100, (%rsi)\n"
        "  jnz clk_raw_syscall\n"
        "  jmp clk_syscall_clone\n"
        ".size syscall, .-syscall\n"
        /* glibc's syscall(): the number and six arguments, -1 and errno on error */
        ".globl clk_raw_syscall\n"
        ".hidden clk_raw_syscall\n"
        ".type clk_raw_syscall, @function\n"
        "clk_raw_syscall:\n" ENDBR
        "  movq %rdi, %rax\n"
        "  movq %rsi, %rdi\n"
        "  movq %rdx, %rsi\n"
        "  movq %rcx, %rdx\n"
        "  movq %r8, %r10\n"
        "  movq %r9, %r8\n"
        "  movq 8(%rsp), %r9\n"
        "  syscall\n"
        "  cmpq $-4095, %rax\n"
        "  jae 2f\n"
        "  ret\n"
        "2:negl %eax\n"
        "  pushq %rax\n" /* also aligns the stack for the call */
        "  call __errno_location@PLT\n"
        "  popq %rcx\n"
        "  movl %ecx, (%rax)\n"
        "  movq $-1, %rax\n"
        "  ret\n"
        ".size clk_raw_syscall, .-clk_raw_syscall\n");

/* A clone or clone3 that copies the caller's memory: fork's set-up around it. */
long clk_syscall_clone(long n, long a1, long a2, long a3, long a4, long a5, long a6)
{
    if (__atomic_load_n(&clk_ready, __ATOMIC_ACQUIRE) != 2)
        return clk_raw_syscall(n, a1, a2, a3, a4, a5, a6);
    clk_newproc_prepare();
    long r = clk_raw_syscall(n, a1, a2, a3, a4, a5, a6);
    int saved = errno;
    if (r == 0)
        clk_newproc_child();
    else
        clk_newproc_parent();
    errno = saved;
    return r;
}

#endif
