/* pyframes.c — the calling thread's Python frames (CPython 3.10-3.13), read in place at an event and put first in its stack.
 *
 * A Python program's C stack is the interpreter's: `_PyEval_EvalFrameDefault`
 * over and over. The user's code is in the interpreter's own frame chain, which
 * hangs off the thread's PyThreadState. The thread's state is found without the
 * GIL (PyGILState_GetThisThreadState reads a thread-specific key; `_sqlite3`
 * releases the GIL around sqlite3_open_v2, so we may not hold it), and only
 * this thread's own frames are read: they cannot change while it waits in our
 * wrapper. Nothing of the interpreter runs but PyCode_Addr2Line, which only
 * reads the code object's line table (no allocation, no Python code).
 *
 * Each frame becomes one word of the stack: CLK_PY_TAG | the id of an interned
 * string "FILE\0QUALNAME\0LINE" (rawfmt.h), which the CLI turns into a frame
 * with "language": "python". Python frames come first (innermost first), then
 * the C frames, up to the stack depth. The structure offsets are each
 * version's (x86-64 and other LP64 release builds, read from its headers); a
 * version outside 3.10-3.13, a debug or free-threaded build, or a chain that
 * does not look right gives the C stack alone, and a note once per process. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "recorder.h"

struct py_layout {
    unsigned minor;
    /* thread state -> innermost frame: *(ts + ts_frame), then + frame_in (3.11/3.12: through the CFrame) */
    unsigned ts_frame, cframe_current;
    int via_cframe;
    unsigned f_code, f_back, f_instr, f_owner; /* f_owner 0: none (3.10) */
    int instr_is_lasti;                        /* 3.10: an int index of code units, not a pointer */
    unsigned co_filename, co_qualname, co_code_adaptive, co_firsttraceable;
    unsigned ascii_size, compact_size;
};

/* Read from each version's headers with offsetof (Include/cpython/pystate.h,
 * internal/pycore_frame.h, cpython/code.h, cpython/unicodeobject.h). */
static const struct py_layout layouts[] = {
    /* 3.10: PyFrameObject chain; f_lasti counts code units; no qualified names */
    {10, 24, 0, 0, 32, 24, 96, 0, 1, 104, 112, 0, 0, 48, 72},
    /* 3.11: tstate->cframe->current_frame; prev_instr; owner 1 = generator */
    {11, 56, 8, 1, 32, 48, 56, 69, 0, 112, 128, 184, 168, 48, 72},
    /* 3.12: the same through the CFrame; owner 3 = a C-stack shim frame */
    {12, 56, 0, 1, 0, 8, 56, 70, 0, 112, 128, 192, 176, 40, 56},
    /* 3.13: tstate->current_frame; f_executable; instr_ptr */
    {13, 72, 0, 0, 0, 8, 56, 70, 0, 112, 128, 200, 184, 40, 56},
};

#define OWNED_BY_GENERATOR 1
#define OWNED_BY_CSTACK 3

static struct {
    const struct py_layout *l;
    void *(*this_thread_state)(void);
    int (*is_initialized)(void);
    int (*addr2line)(void *code, int addr);
    void *code_type, *unicode_type;
} py;

int clk_py_active;
static int noted; /* atomic: the unsupported-version note is written once */

static void note_once(const char *text)
{
    if (__atomic_exchange_n(&noted, 1, __ATOMIC_ACQ_REL))
        return;
    struct connleak_raw_record rec = {0};
    rec.u.ev.target = clk_intern_string(text, strlen(text));
    clk_journal_commit(clk_journal_reserve(0), &rec, CONNLEAK_REC_NOTE);
}

/* The running interpreter's minor version (3.x), 0 when none or not 3. */
static unsigned python_minor(void)
{
    const unsigned long *hex = dlsym(RTLD_DEFAULT, "Py_Version"); /* 3.11+ */
    if (hex)
        return (*hex >> 24) == 3 ? (unsigned)((*hex >> 16) & 0xff) : 0;
    const char *(*get_version)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "Py_GetVersion");
    if (!get_version)
        return 0;
    const char *v = get_version(); /* "3.10.13 (main, ...)": formatted into a static buffer */
    unsigned minor = 0;
    if (v[0] != '3' || v[1] != '.')
        return 0;
    for (const char *p = v + 2; *p >= '0' && *p <= '9'; p++)
        minor = minor * 10 + (unsigned)(*p - '0');
    return minor;
}

/* Looks for an interpreter in the process (at start, and again when an event
 * finds none yet: a program may load libpython later). */
void clk_py_detect(void)
{
    if (__atomic_load_n(&clk_py_active, __ATOMIC_ACQUIRE))
        return;
    void *gil = dlsym(RTLD_DEFAULT, "PyGILState_GetThisThreadState");
    if (!gil) {
        dlerror();
        /* looked for again when new objects are loaded (intern.c): libpython may come later */
        __atomic_store_n(&clk_py_active, -2, __ATOMIC_RELEASE);
        return;
    }
    unsigned minor = python_minor();
    const struct py_layout *l = NULL;
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
        if (layouts[i].minor == minor)
            l = &layouts[i];
    /* a debug build's objects carry two more pointers; a free-threaded one another header */
    int odd_build = dlsym(RTLD_DEFAULT, "_Py_RefTotal") || dlsym(RTLD_DEFAULT, "_Py_NegativeRefcount") ||
                    dlsym(RTLD_DEFAULT, "_Py_MergeZeroLocalRefcount");
    py.is_initialized = (int (*)(void))dlsym(RTLD_DEFAULT, "Py_IsInitialized");
    py.addr2line = (int (*)(void *, int))dlsym(RTLD_DEFAULT, "PyCode_Addr2Line");
    py.code_type = dlsym(RTLD_DEFAULT, "PyCode_Type");
    py.unicode_type = dlsym(RTLD_DEFAULT, "PyUnicode_Type");
    dlerror();
    if (!l || odd_build || !py.is_initialized || !py.addr2line || !py.code_type || !py.unicode_type) {
        char text[200];
        snprintf(text, sizeof text,
                 "Python 3.%u%s: its frames are not read (CPython 3.10-3.13 release builds are); stacks show the "
                 "interpreter's C frames only",
                 minor, odd_build ? " (a debug or free-threaded build)" : "");
        note_once(text);
        __atomic_store_n(&clk_py_active, -1, __ATOMIC_RELEASE);
        return;
    }
    py.this_thread_state = (void *(*)(void))gil;
    py.l = l;
    __atomic_store_n(&clk_py_active, 1, __ATOMIC_RELEASE);
}

static inline void *ptr_at(const void *base, unsigned off)
{
    void *p;
    memcpy(&p, (const char *)base + off, sizeof p);
    return p;
}

static inline int plausible(const void *p)
{
    return p && ((uintptr_t)p & 7) == 0 && (uintptr_t)p >= 4096 && (uintptr_t)p < (1ull << 47);
}

/* A str object's text as UTF-8 (compact strings, which code objects' are), '?' otherwise. */
static size_t unicode_utf8(const void *s, char *out, size_t cap)
{
    const struct py_layout *l = py.l;
    if (!plausible(s) || ptr_at(s, 8) != py.unicode_type || cap < 8) {
        out[0] = '?';
        return 1;
    }
    int64_t len;
    uint32_t state;
    memcpy(&len, (const char *)s + 16, 8);
    memcpy(&state, (const char *)s + 32, 4);
    unsigned kind = (state >> 2) & 7, compact = (state >> 5) & 1, ascii = (state >> 6) & 1;
    if (!compact || len < 0 || (kind != 1 && kind != 2 && kind != 4)) {
        out[0] = '?';
        return 1;
    }
    const unsigned char *d = (const unsigned char *)s + (ascii ? l->ascii_size : l->compact_size);
    size_t n = 0;
    if (ascii && kind == 1) { /* already UTF-8: copied as the loop below would (file names, qualified names) */
        n = (size_t)len < cap - 4 ? (size_t)len : cap - 4;
        memcpy(out, d, n);
        return n;
    }
    for (int64_t i = 0; i < len && n + 4 < cap; i++) {
        uint32_t c = kind == 1 ? d[i] : kind == 2 ? ((const uint16_t *)d)[i] : ((const uint32_t *)d)[i];
        if (c < 0x80) {
            out[n++] = (char)c;
        } else if (c < 0x800) {
            out[n++] = (char)(0xc0 | c >> 6);
            out[n++] = (char)(0x80 | (c & 0x3f));
        } else if (c < 0x10000) {
            out[n++] = (char)(0xe0 | c >> 12);
            out[n++] = (char)(0x80 | ((c >> 6) & 0x3f));
            out[n++] = (char)(0x80 | (c & 0x3f));
        } else {
            out[n++] = (char)(0xf0 | c >> 18);
            out[n++] = (char)(0x80 | ((c >> 12) & 0x3f));
            out[n++] = (char)(0x80 | ((c >> 6) & 0x3f));
            out[n++] = (char)(0x80 | (c & 0x3f));
        }
    }
    return n;
}

/* The interned "FILE\0QUALNAME\0LINE" of a code object at an instruction (bytes from its start). */
static uint32_t location(const void *code, int addr)
{
    const struct py_layout *l = py.l;
    char text[1024];
    size_t n = unicode_utf8(ptr_at(code, l->co_filename), text, 512);
    text[n++] = 0;
    n += unicode_utf8(ptr_at(code, l->co_qualname), text + n, sizeof text - n - 16);
    text[n++] = 0;
    int line = py.addr2line((void *)code, addr);
    char digits[16];
    int d = 0;
    unsigned v = line > 0 ? (unsigned)line : 0;
    do
        digits[d++] = (char)('0' + v % 10);
    while ((v /= 10) && d < 15);
    while (d)
        text[n++] = digits[--d];
    return clk_intern_string(text, n);
}

/* Locations met by this thread: (code, instruction) -> string id. A code object
 * freed and another made at its address is told apart by its file name object.
 * Two ways a set, the newest first: a test suite's deep stacks (unittest's
 * frames under each test's own) thrashed a direct-mapped table, and a miss
 * costs ~4,000 instructions (the line table decoded, the names copied). */
#define LOC_WAYS 2
#define LOC_SETS (128 / CLK_TLS_SCALE / CLK_TLS_SCALE / LOC_WAYS)
struct loc_entry {
    const void *code, *filename;
    int addr;
    uint32_t id;
};
static __thread struct loc_entry loc_cache[LOC_SETS][LOC_WAYS] __attribute__((tls_model("initial-exec")));

static uint32_t location_cached(const void *code, int addr)
{
    const void *filename = ptr_at(code, py.l->co_filename);
    struct loc_entry *set = loc_cache[(((uintptr_t)code >> 4) ^ (unsigned)addr * 2654435761u) % LOC_SETS];
    for (int w = 0; w < LOC_WAYS; w++) {
        struct loc_entry *e = &set[w];
        if (e->code == code && e->addr == addr && e->filename == filename && e->id) {
            clk_intern_ensure(e->id); /* a fork child's journal needs it too */
            return e->id;
        }
    }
    uint32_t id = location(code, addr);
    memmove(&set[1], &set[0], (LOC_WAYS - 1) * sizeof set[0]);
    set[0] = (struct loc_entry){code, filename, addr, id};
    return id;
}

/* ---- asyncio: the task that awaits the running one ----
 * A coroutine that awaits work another task does (asyncpg's connect runs in a
 * task of its own: ensure_future, then wait_for) is not in the running task's
 * frame chain, which starts at the event loop's Handle._run. Under that frame
 * lies the task being stepped (Handle._callback, a TaskStepMethWrapper); its
 * done-callbacks name the task waiting for it (a task_wakeup method bound to
 * it, or functools.partial(_release_waiter, waiter) whose waiter's callback
 * is); that task's coroutine and the coroutines it awaits (each the value on
 * top of its suspended frame's stack) are the awaiting code. These are heap
 * objects, not this thread's stack: every read goes through
 * process_vm_readv, which fails instead of faulting, and every object's type
 * name is checked before its fields are used. CPython 3.11-3.13 (offsets from
 * each version's DWARF: _asyncio's TaskObj, PyGenObject, _PyInterpreterFrame);
 * up to 4 tasks up. */
#include <sys/uio.h>
#include <unistd.h>

struct py_async {
    unsigned task_coro, gen_iframe; /* TaskObj.task_coro; PyGenObject.gi_iframe */
};
static const struct py_async asyncs[] = {{136, 80}, {136, 72}, {120, 72}}; /* 3.11, 3.12, 3.13 */
#define FUT_CALLBACK0 24  /* FutureObj_HEAD: fut_callback0, then fut_context0, fut_callbacks */
#define FUT_CALLBACKS 40
#define FRAME_STACKTOP 64 /* _PyInterpreterFrame.stacktop and .localsplus (3.11-3.13) */
#define FRAME_LOCALSPLUS 72
#define HANDLE_CALLBACK 24 /* asyncio.events.Handle's __slots__, sorted: _args, _callback, ... */
#define OBJ_SLOT1 16       /* TaskStepMethWrapper.sw_task, partial.fn */
#define OBJ_SLOT2 24       /* PyCFunctionObject.m_self, partial.args, tuple/list items */

static int peek(const void *addr, void *out, size_t n)
{
    struct iovec local = {out, n}, remote = {(void *)addr, n};
    return addr && process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)n ? 0 : -1;
}

int clk_peek(const void *addr, void *out, size_t n)
{
    return peek(addr, out, n);
}

static void *peek_ptr(const void *base, unsigned off)
{
    void *p = NULL;
    return base && peek((const char *)base + off, &p, sizeof p) == 0 ? p : NULL;
}

/* Is obj an object whose type is named `name`? */
static int is_type(const void *obj, const char *name)
{
    char buf[32];
    const char *tp_name = peek_ptr(peek_ptr(obj, 8), 24);
    size_t n = strlen(name) + 1;
    return tp_name && n <= sizeof buf && peek(tp_name, buf, n) == 0 && memcmp(buf, name, n) == 0;
}

static const void *handle_run_code; /* the code object of asyncio's Handle._run, once met */

static int is_handle_run(const void *code)
{
    if (code == __atomic_load_n(&handle_run_code, __ATOMIC_RELAXED))
        return 1;
    const void *name = ptr_at(code, py.l->co_qualname);
    int64_t len;
    memcpy(&len, (const char *)name + 16, sizeof len);
    if (len != 11)
        return 0;
    char text[16];
    if (unicode_utf8(name, text, sizeof text) != 11 || memcmp(text, "Handle._run", 11))
        return 0;
    __atomic_store_n(&handle_run_code, code, __ATOMIC_RELAXED);
    return 1;
}

/* The task waiting for future `fut`, NULL when none is found. */
static const void *awaiter_of(const void *fut, int depth)
{
    const void *cbs[9];
    int n = 0;
    cbs[n++] = peek_ptr(fut, FUT_CALLBACK0);
    const void *list = peek_ptr(fut, FUT_CALLBACKS); /* [(callback, context), ...] */
    if (list && is_type(list, "list")) {
        int64_t len = 0;
        const char *items = peek_ptr(list, OBJ_SLOT2);
        peek((const char *)list + 16, &len, sizeof len);
        for (int64_t i = 0; i < len && n < 9; i++)
            cbs[n++] = peek_ptr(peek_ptr(items, (unsigned)(8 * i)), OBJ_SLOT2);
    }
    for (int i = 0; i < n; i++) {
        const void *cb = cbs[i];
        if (!cb)
            continue;
        if (is_type(cb, "builtin_function_or_method")) {
            const void *self = peek_ptr(cb, OBJ_SLOT2);
            if (self && is_type(self, "_asyncio.Task"))
                return self; /* its task_wakeup */
        } else if (depth < 2 && is_type(cb, "functools.partial")) {
            /* wait_for's partial(_release_waiter, waiter): the waiter's own awaiter */
            const void *args = peek_ptr(cb, OBJ_SLOT2);
            const void *waiter = args && is_type(args, "tuple") ? peek_ptr(args, OBJ_SLOT2) : NULL;
            if (waiter && (is_type(waiter, "_asyncio.Future") || is_type(waiter, "_asyncio.Task"))) {
                const void *t = awaiter_of(waiter, depth + 1);
                if (t)
                    return t;
            }
        }
    }
    return NULL;
}

static int frame_location(const void *f, const void **code, int *addr);

/* The awaiting task's coroutines, innermost first, into out. */
static int task_frames(const void *task, uint64_t *out, int max)
{
    const struct py_async *a = &asyncs[py.l->minor - 11];
    const void *chain[64];
    int depth = 0;
    for (const void *coro = peek_ptr(task, a->task_coro); coro && depth < 64 && is_type(coro, "coroutine");) {
        const char *frame = (const char *)coro + a->gen_iframe;
        chain[depth++] = frame;
        int top = 0;
        if (peek(frame + FRAME_STACKTOP, &top, sizeof top) || top < 1 || top > 4096)
            break;
        coro = peek_ptr(frame, FRAME_LOCALSPLUS + 8 * (unsigned)(top - 1)); /* what it awaits */
    }
    int n = 0;
    for (int i = depth - 1; i >= 0 && n < max; i--) {
        const void *code;
        int addr;
        /* the frame lives in a coroutine object we have checked: readable in place from here */
        if (frame_location(chain[i], &code, &addr) == 0) {
            uint32_t id = location_cached(code, addr);
            if (id)
                out[n++] = CLK_PY_TAG | id;
        }
    }
    return n;
}

/* The frames of the tasks awaiting the one Handle._run's frame `f` steps. */
static int awaiting_frames(const void *f, uint64_t *out, int max)
{
    if (py.l->minor < 11 || py.l->minor > 13)
        return 0;
    const void *handle = peek_ptr(f, FRAME_LOCALSPLUS); /* self */
    const void *step = peek_ptr(handle, HANDLE_CALLBACK);
    if (!step || !(is_type(step, "TaskStepMethWrapper") || is_type(step, "_asyncio.TaskStepMethWrapper"))) /* 3.12+ */
        return 0;
    const void *task = peek_ptr(step, OBJ_SLOT1);
    int n = 0;
    for (int hops = 0; hops < 4 && task && is_type(task, "_asyncio.Task") && n < max; hops++) {
        task = awaiter_of(task, 0);
        if (task)
            n += task_frames(task, out + n, max - n);
    }
    return n;
}

/* A frame's code object and instruction (bytes from the code's start; -1: none yet). Nonzero
 * when the frame is to be skipped: a shim, not running code, still being set up. */
static int frame_location(const void *f, const void **code_out, int *addr_out)
{
    const struct py_layout *l = py.l;
    unsigned char owner = l->f_owner ? *((const unsigned char *)f + l->f_owner) : 0;
    if (l->f_owner && owner == OWNED_BY_CSTACK && l->minor >= 12)
        return 1; /* the shim frame the interpreter puts at each entry from C */
    void *code = ptr_at(f, l->f_code);
    if (!plausible(code) || ptr_at(code, 8) != py.code_type)
        return 1; /* 3.13: a frame running something other than a code object */
    int addr;
    if (l->instr_is_lasti) {
        int lasti;
        memcpy(&lasti, (const char *)f + l->f_instr, sizeof lasti);
        addr = lasti < 0 ? -1 : lasti * 2;
    } else {
        const char *instr = ptr_at(f, l->f_instr);
        const char *start = (const char *)code + l->co_code_adaptive;
        addr = (int)(instr - start);
        int first;
        memcpy(&first, (const char *)code + l->co_firsttraceable, sizeof first);
        if (owner != OWNED_BY_GENERATOR && instr < start + 2 * first)
            return 1; /* a frame still being set up: it has no line yet */
        if (addr < 0)
            addr = -1;
    }
    *code_out = code;
    *addr_out = addr;
    return 0;
}

/* This thread's Python frames as tagged words, innermost first; -1 when the chain looks wrong. */
static int walk(uint64_t *out, int max)
{
    const struct py_layout *l = py.l;
    if (!py.is_initialized())
        return 0;
    void *ts = py.this_thread_state();
    if (!ts)
        return 0;
    if (!plausible(ts))
        return -1;
    void *f = ptr_at(ts, l->ts_frame);
    if (l->via_cframe)
        f = plausible(f) ? ptr_at(f, l->cframe_current) : NULL;
    int n = 0, awaited = 0;
    for (int hops = 0; f && n < max; hops++, f = ptr_at(f, l->f_back)) {
        if (!plausible(f) || hops > 100000)
            return -1;
        if (!plausible(ptr_at(f, l->f_code)))
            return -1;
        const void *code;
        int addr;
        if (frame_location(f, &code, &addr))
            continue;
        /* the event loop stepping a task: first the code awaiting that task, from other tasks */
        if (!awaited && l->minor >= 11 && is_handle_run(code)) {
            awaited = 1;
            n += awaiting_frames(f, out + n, max - n);
            if (n >= max)
                break;
        }
        uint32_t id = location_cached(code, addr);
        if (id)
            out[n++] = CLK_PY_TAG | id;
    }
    return n;
}

/* This thread's Python frames (CLK_PY_TAG words, innermost first) into out,
 * up to max (at most CLK_MAX_DEPTH); 0 when it has none or they cannot be read. */
int clk_py_frames(uint64_t *out, int max)
{
    int a = __atomic_load_n(&clk_py_active, __ATOMIC_ACQUIRE);
    if (a == 0) {
        clk_py_detect();
        a = __atomic_load_n(&clk_py_active, __ATOMIC_ACQUIRE);
    }
    if (a <= 0)
        return 0;
    int n = walk(out, max > CLK_MAX_DEPTH ? CLK_MAX_DEPTH : max);
    if (n < 0) {
        note_once("a Python frame chain did not look right: those stacks show the interpreter's C frames only");
        return 0;
    }
    return n;
}

/* The stack of the n Python frames in ips (room for CLK_MAX_DEPTH) followed by
 * the C stack c_id, up to max words; c_id itself when n is 0. */
uint32_t clk_py_join(uint64_t *ips, int n, uint32_t c_id, int max)
{
    if (n <= 0)
        return c_id;
    if (max > CLK_MAX_DEPTH)
        max = CLK_MAX_DEPTH;
    int nc = 0;
    const uint64_t *c = c_id ? clk_stack_frames(c_id, &nc) : NULL;
    for (int i = 0; i < nc && n < max; i++)
        ips[n++] = c[i];
    return clk_intern_stack(ips, n);
}
