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
 * freed and another made at its address is told apart by its file name object. */
#define LOC_CACHE (64 / CLK_TLS_SCALE)
struct loc_entry {
    const void *code, *filename;
    int addr;
    uint32_t id;
};
static __thread struct loc_entry loc_cache[LOC_CACHE] __attribute__((tls_model("initial-exec")));

static uint32_t location_cached(const void *code, int addr)
{
    const void *filename = ptr_at(code, py.l->co_filename);
    struct loc_entry *e = &loc_cache[(((uintptr_t)code >> 4) ^ (unsigned)addr * 2654435761u) % LOC_CACHE];
    if (e->code == code && e->addr == addr && e->filename == filename && e->id) {
        clk_intern_ensure(e->id); /* a fork child's journal needs it too */
        return e->id;
    }
    uint32_t id = location(code, addr);
    e->code = code;
    e->filename = filename;
    e->addr = addr;
    e->id = id;
    return id;
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
    int n = 0;
    for (int hops = 0; f && n < max; hops++, f = ptr_at(f, l->f_back)) {
        if (!plausible(f) || hops > 100000)
            return -1;
        unsigned char owner = l->f_owner ? *((const unsigned char *)f + l->f_owner) : 0;
        if (l->f_owner && owner == OWNED_BY_CSTACK && l->minor >= 12)
            continue; /* the shim frame the interpreter puts at each entry from C */
        void *code = ptr_at(f, l->f_code);
        if (!plausible(code))
            return -1;
        if (ptr_at(code, 8) != py.code_type)
            continue; /* 3.13: a frame running something other than a code object */
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
                continue; /* a frame still being set up: it has no line yet */
            if (addr < 0)
                addr = -1;
        }
        uint32_t id = location_cached(code, addr);
        if (id)
            out[n++] = CLK_PY_TAG | id;
    }
    return n;
}

/* The C stack `c_id` with this thread's Python frames first (c_id itself when it has none). */
uint32_t clk_py_stack(uint32_t c_id, int max)
{
    if (clk_py_active <= 0)
        return c_id;
    uint64_t ips[CLK_MAX_DEPTH];
    if (max > CLK_MAX_DEPTH)
        max = CLK_MAX_DEPTH;
    int n = walk(ips, max);
    if (n < 0) {
        note_once("a Python frame chain did not look right: those stacks show the interpreter's C frames only");
        return c_id;
    }
    if (n == 0)
        return c_id;
    int nc = 0;
    const uint64_t *c = c_id ? clk_stack_frames(c_id, &nc) : NULL;
    for (int i = 0; i < nc && n < max; i++)
        ips[n++] = c[i];
    return clk_intern_stack(ips, n);
}
