/* bind.c — objects that bind past the preload (RTLD_DEEPBIND): dlopen interposed, and the newly loaded objects' references to the wrapped functions pointed at the wrappers (preloaded library only, x86-64 glibc).
 *
 * dlopen(path, ...|RTLD_DEEPBIND) (PHP loads every extension so) puts the
 * loaded object's own scope — itself and what it needs, libsqlite3 or libpq —
 * before the global one for the objects it brings in, so their calls to
 * sqlite3_open_v2 or PQconnectdb never reach the preloaded wrappers. So the
 * preloaded library exports a dlopen of its own. After glibc's has loaded
 * the objects (relocations done, RELRO applied, constructors run), each new
 * one's relocations of the wrapped names (JUMP_SLOT in DT_JMPREL, GLOB_DAT and
 * plain 64-bit words in DT_RELA) are rewritten to hold our wrapper, as
 * plthook does: a read-only (RELRO) GOT page is made writable for the store
 * and read-only again; a lazy JUMP_SLOT not resolved yet (it still points into
 * the object's own PLT) is overwritten all the same. A slot is only rewritten
 * when the wrapper, called from that object, passes the call on to the very
 * function the loader bound (or would bind) it to — dlsym(RTLD_NEXT) first,
 * else the object's own scope, as real.c looks — so the program calls what it
 * called before, through the wrapper. What cannot be redirected that way (the
 * wrapper would call another copy — the object's own, say — or the page
 * cannot be made writable) is a NOTE naming the object; an object whose own
 * copy is called directly, without a relocation, is intern.c's to name. Never rewritten: libsqlite3 and libpq themselves (their
 * calls to themselves stay theirs) and this library. A new object's own
 * references to dlopen are pointed at ours too, so what a deep-bound object
 * loads deep-bound itself is seen as well.
 *
 * The caller. glibc's dlopen resolves a name without a '/' along the RUNPATH
 * and RPATH of the object that called it, and expands $ORIGIN there, taking
 * that object from its own return address; a C wrapper calling glibc's would
 * make every such load look along this library's paths instead. The stub
 * below therefore enters glibc's dlopen with a return address inside the
 * caller's object: a `ret` instruction there (the end of one of its leaf
 * functions, whose unwind rule fits the frame, else the end of its _fini,
 * else the first one in its code), with our own continuation stacked above it, so
 * glibc sees the caller and its return comes back to us through that `ret`.
 * Names with a '/' and no '$' do not depend on the caller (only the namespace,
 * the base one for every object that can reach this dlopen): glibc's is
 * simply called. Under a CET shadow stack that detour would fault: there a
 * caller-dependent name is passed on by a plain jump (exact, but its objects
 * are not rewritten). Our own lookups (real.c's RTLD_NOLOAD probes) go
 * straight through by a jump, unrewritten.
 *
 * Behaviour otherwise unchanged: the same return value; errno as glibc's
 * dlopen left it; a failed dlopen's dlerror() message untouched (nothing is
 * done after a failure); after a success no error pending, as glibc leaves it.
 * Constructors of the new objects have already run when they are rewritten:
 * a connection opened by a deep-bound object's constructor is not seen.
 * dlopen from constructors nests (glibc's loader lock is recursive, and no
 * lock of ours is held across glibc's dlopen); the one lock of ours, held only
 * around a GOT store and its mprotect calls, is taken around fork. Threads:
 * see `rewriting` below. */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "recorder.h"

#define CLK_BIND_NOTE_MAX 1024

#if defined(__x86_64__) && defined(__GLIBC__) && !defined(CLK_LINKABLE)

/* glibc's dlopen (the next one), read by the stub; set by the pre-step before use. */
CLK_HIDDEN void *clk_dlopen_next;
CLK_HIDDEN uintptr_t clk_dlopen_pre(const char *file, int mode, uintptr_t caller, uint64_t *before);
CLK_HIDDEN void *clk_dlopen_post(void *handle, const char *file, int mode, uint64_t before);
/* Our own stub's address (a hidden label on it). */
CLK_HIDDEN extern char clk_dlopen_self[];

/* RTLD_DEEPBIND loads in flight, from before glibc's dlopen to the end of our
 * rewrite (atomic), and this thread's dlopen calls through the stub that will
 * come back to the post-step (a constructor's dlopen nests). A dlopen that
 * returns while another thread still loads or rewrites waits for it (a second
 * at most): it may have been handed the same object half rewritten, which would
 * record a close of an open it did not see (a false double close, whose real
 * close is withheld). */
static int rewriting;
static __thread int post_depth __attribute__((tls_model("initial-exec")));

/* dlopen(file, mode): rdi = file, esi = mode. The pre-step answers 0 (call
 * glibc's, then the post-step), 1 (jump to glibc's: nothing to do after), or
 * the address of a `ret` in the caller's object to enter glibc's dlopen with
 * as its return address, our continuation (label 2) stacked above it. The
 * loader count before the call lives in the frame's first slot. The CFI at
 * the byte before label 2 describes the frame as the `ret` leaves it. */
__asm__(".pushsection .text\n"
        ".globl dlopen\n"
        ".type dlopen, @function\n"
        ".hidden clk_dlopen_self\n"
        ".p2align 4\n"
        "dlopen:\n"
        "clk_dlopen_self:\n"
        ".cfi_startproc\n"
        "endbr64\n"
        "pushq %rbx\n"
        ".cfi_adjust_cfa_offset 8\n"
        ".cfi_rel_offset %rbx, 0\n"
        "pushq %r12\n"
        ".cfi_adjust_cfa_offset 8\n"
        ".cfi_rel_offset %r12, 0\n"
        "pushq %r13\n"
        ".cfi_adjust_cfa_offset 8\n"
        ".cfi_rel_offset %r13, 0\n"
        "subq $16, %rsp\n" /* the count slot, and 16-byte alignment at the calls */
        ".cfi_adjust_cfa_offset 16\n"
        "movq %rdi, %rbx\n"
        "movl %esi, %r12d\n"
        "movq 40(%rsp), %rdx\n" /* the caller's return address */
        "movq %rsp, %rcx\n"
        "call clk_dlopen_pre\n"
        "movq %rax, %r13\n"
        "movq %rbx, %rdi\n"
        "movl %r12d, %esi\n"
        "movq clk_dlopen_next(%rip), %rax\n"
        "cmpq $1, %r13\n"
        "je 5f\n"
        "testq %r13, %r13\n"
        "jne 3f\n"
        "call *%rax\n"
        "jmp 4f\n"
        "3:\n"
        "subq $8, %rsp\n" /* glibc's dlopen entered as after a call: rsp = 8 mod 16 */
        ".cfi_adjust_cfa_offset 8\n"
        "leaq 2f(%rip), %rcx\n"
        "pushq %rcx\n" /* where the caller's `ret` returns to */
        ".cfi_adjust_cfa_offset 8\n"
        "pushq %r13\n" /* the return address glibc sees: the caller's `ret` */
        ".cfi_adjust_cfa_offset 8\n"
        "jmp *%rax\n"
        ".cfi_adjust_cfa_offset -16\n"
        "nop\n"
        "2:\n"
        "addq $8, %rsp\n"
        ".cfi_adjust_cfa_offset -8\n"
        "4:\n"
        "movq %rax, %rdi\n"
        "movq %rbx, %rsi\n"
        "movl %r12d, %edx\n"
        "movq (%rsp), %rcx\n"
        "call clk_dlopen_post\n"
        ".cfi_remember_state\n"
        "addq $16, %rsp\n"
        ".cfi_adjust_cfa_offset -16\n"
        "popq %r13\n"
        ".cfi_adjust_cfa_offset -8\n"
        ".cfi_restore %r13\n"
        "popq %r12\n"
        ".cfi_adjust_cfa_offset -8\n"
        ".cfi_restore %r12\n"
        "popq %rbx\n"
        ".cfi_adjust_cfa_offset -8\n"
        ".cfi_restore %rbx\n"
        "ret\n"
        ".cfi_restore_state\n"
        "5:\n" /* a plain jump: glibc's dlopen returns to our caller */
        "addq $16, %rsp\n"
        ".cfi_adjust_cfa_offset -16\n"
        "popq %r13\n"
        ".cfi_adjust_cfa_offset -8\n"
        ".cfi_restore %r13\n"
        "popq %r12\n"
        ".cfi_adjust_cfa_offset -8\n"
        ".cfi_restore %r12\n"
        "popq %rbx\n"
        ".cfi_adjust_cfa_offset -8\n"
        ".cfi_restore %rbx\n"
        "jmp *%rax\n"
        ".cfi_endproc\n"
        ".size dlopen, .-dlopen\n"
        ".popsection\n");

/* ---- loaded objects ---- */

static uintptr_t us_lo, us_hi; /* this library's range, found on first use */

struct range_find {
    uintptr_t addr, lo, hi;
    const ElfW(Phdr) * phdr;
    ElfW(Addr) base;
    int phnum, found;
};

static int range_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct range_find *r = data;
    uint64_t lo, hi;
    clk_phdr_bounds(info, &lo, &hi);
    int in = r->addr >= lo && r->addr < hi;
    /* the object holding the address, else the main program (the first), as glibc takes the caller */
    if (in || !r->found) {
        r->lo = (uintptr_t)lo;
        r->hi = (uintptr_t)hi;
        r->phdr = info->dlpi_phdr;
        r->phnum = info->dlpi_phnum;
        r->base = info->dlpi_addr;
        r->found = in ? 2 : 1;
    }
    return in;
}

/* dl_iterate_phdr holds the loader's list lock: only copying inside, and a
 * fork waits for it (stack.c). */
static void find_range(struct range_find *r)
{
    r->found = 0;
    int cs = clk_walk_begin();
    dl_iterate_phdr(range_cb, r);
    clk_walk_end(cs);
}

static int is_ours(uintptr_t a)
{
    if (!__atomic_load_n(&us_hi, __ATOMIC_ACQUIRE)) {
        struct range_find r = {.addr = (uintptr_t)&is_ours};
        find_range(&r);
        if (r.found != 2)
            return 0;
        __atomic_store_n(&us_lo, r.lo, __ATOMIC_RELAXED);
        __atomic_store_n(&us_hi, r.hi, __ATOMIC_RELEASE);
    }
    return a >= __atomic_load_n(&us_lo, __ATOMIC_RELAXED) && a < us_hi;
}

static int adds_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    if (size >= offsetof(struct dl_phdr_info, dlpi_adds) + sizeof info->dlpi_adds)
        *(uint64_t *)data = info->dlpi_adds;
    return 1;
}

/* The loader's count of objects loaded so far (0 when glibc does not say). */
static uint64_t loads(void)
{
    uint64_t n = 0;
    int cs = clk_walk_begin();
    dl_iterate_phdr(adds_cb, &n);
    clk_walk_end(cs);
    return n;
}

/* ---- the caller's `ret` ---- */

/* Under a CET shadow stack, a return to an address the shadow stack did not
 * push faults: rdssp reads the shadow stack pointer, and is a no-op (0 stays)
 * where there is none. */
static int shadow_stack(void)
{
    uint64_t ssp = 0;
    __asm__ volatile("rdsspq %0" : "+r"(ssp));
    return ssp != 0;
}

static const ElfW(Dyn) * dynamic_of(const struct range_find *r)
{
    for (int i = 0; i < r->phnum; i++)
        if (r->phdr[i].p_type == PT_DYNAMIC)
            return (const ElfW(Dyn) *)(r->base + r->phdr[i].p_vaddr);
    return NULL;
}

/* A dynamic-section address: glibc relocates most in place, a few stay file-relative. */
static uintptr_t dyn_ptr(uintptr_t v, ElfW(Addr) base, uintptr_t lo, uintptr_t hi)
{
    return v >= lo && v < hi ? v : v + base;
}

/* ---- a `ret` whose unwind rule is right: the end of a leaf function ----
 * An unwinder walking through glibc's dlopen (a constructor's connection
 * being recorded, say) looks up the rule at the `ret`'s address - 1. A leaf
 * function's frame description has no instructions (the stack pointer never
 * moves: the return address at rsp), which is exactly the frame the `ret`
 * leaves. So the object's .eh_frame_hdr table is searched for such an FDE
 * under the usual CIE whose function ends with 0xc3. Every read stays inside
 * the object's mapped range. */

struct span {
    uintptr_t lo, hi;
};

static int in_span(const struct span *s, uintptr_t a, size_t n)
{
    return a >= s->lo && a + n <= s->hi && a + n >= a;
}

static uintptr_t uleb(const unsigned char **p, const unsigned char *end)
{
    uintptr_t v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        unsigned char b = *(*p)++;
        v |= (uintptr_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
    }
    return v;
}

/* A pointer in one of the encodings found in x86-64 objects; 0 when another. */
static int read_enc(const unsigned char **p, const unsigned char *end, unsigned enc, uintptr_t datarel,
                    uintptr_t *out)
{
    const unsigned char *q = *p;
    intptr_t v;
    if ((enc & 0x0f) == 0x0b || (enc & 0x0f) == 0x03) { /* sdata4, udata4 */
        if (q + 4 > end)
            return 0;
        int32_t x;
        uint32_t u;
        memcpy(&x, q, 4);
        memcpy(&u, q, 4);
        v = (enc & 0x0f) == 0x0b ? (intptr_t)x : (intptr_t)u;
        q += 4;
    } else if ((enc & 0x0f) == 0x00 || (enc & 0x0f) == 0x04 || (enc & 0x0f) == 0x0c) {
        if (q + 8 > end)
            return 0;
        int64_t x;
        memcpy(&x, q, 8);
        v = (intptr_t)x;
        q += 8;
    } else {
        return 0;
    }
    if ((enc & 0x70) == 0x10)
        v += (intptr_t)*p;
    else if ((enc & 0x70) == 0x30)
        v += (intptr_t)datarel;
    else if (enc & 0x70)
        return 0;
    *out = (uintptr_t)v;
    *p = q;
    return 1;
}

/* The CIE GCC and clang emit for x86-64 code: CFA = rsp + 8, return address at
 * CFA - 8, augmentation "zR" (an FDE pointer encoding) or "zPLR"-like; 1 with
 * the FDE encoding and whether FDEs carry augmentation data. */
static int plain_cie(const struct span *s, uintptr_t cie, unsigned *fde_enc)
{
    uint32_t len;
    if (!in_span(s, cie, 8) || (memcpy(&len, (const void *)cie, 4), len == 0 || len == 0xffffffff) ||
        !in_span(s, cie + 4, len))
        return 0;
    const unsigned char *p = (const unsigned char *)cie + 8, *end = (const unsigned char *)cie + 4 + len;
    unsigned version = *p++;
    const char *aug = (const char *)p;
    size_t alen = strnlen(aug, (size_t)(end - p));
    if (alen == (size_t)(end - p) || (version != 1 && version != 3) || aug[0] != 'z')
        return 0;
    p += alen + 1;
    if (uleb(&p, end) != 1)
        return 0; /* code alignment */
    if (p >= end || *p++ != 0x78)
        return 0; /* data alignment -8 */
    if (uleb(&p, end) != 16)
        return 0; /* return address column */
    uintptr_t dlen = uleb(&p, end);
    const unsigned char *data_end = p + dlen;
    if (data_end > end)
        return 0;
    *fde_enc = 0;
    for (const char *a = aug + 1; *a; a++) {
        if (*a == 'R' && p < data_end) {
            *fde_enc = *p++;
        } else if (*a == 'L' && p < data_end) {
            p++;
        } else if (*a == 'P' && p < data_end) {
            uintptr_t ignored;
            unsigned penc = *p++;
            if (!read_enc(&p, data_end, penc & 0x7f, 0, &ignored))
                return 0;
        } else {
            return 0; /* 'S' (a signal frame) or unknown */
        }
    }
    p = data_end;
    static const unsigned char initial[] = {0x0c, 0x07, 0x08, 0x90, 0x01};
    if ((size_t)(end - p) < sizeof initial || memcmp(p, initial, sizeof initial))
        return 0;
    for (p += sizeof initial; p < end; p++)
        if (*p)
            return 0;
    return 1;
}

static uintptr_t leaf_ret(const struct range_find *r)
{
    struct span s = {r->lo, r->hi};
    uintptr_t hdr = 0;
    for (int i = 0; i < r->phnum; i++)
        if (r->phdr[i].p_type == PT_GNU_EH_FRAME)
            hdr = r->base + r->phdr[i].p_vaddr;
    if (!hdr || !in_span(&s, hdr, 4))
        return 0;
    const unsigned char *h = (const unsigned char *)hdr, *end = (const unsigned char *)r->hi;
    if (h[0] != 1 || h[3] != 0x3b) /* version 1, a table of datarel sdata4 pairs */
        return 0;
    const unsigned char *p = h + 4;
    uintptr_t ignored, count;
    if (!read_enc(&p, end, h[1], hdr, &ignored) || !read_enc(&p, end, h[2], hdr, &count))
        return 0;
    uintptr_t last_cie = 0;
    unsigned enc = 0;
    int cie_ok = 0;
    for (uintptr_t k = 0; k < count && k < 65536; k++) {
        const unsigned char *e = p + 8 * k + 4;
        int32_t off;
        if (!in_span(&s, (uintptr_t)e, 4))
            return 0;
        memcpy(&off, e, 4);
        uintptr_t fde = hdr + (intptr_t)off;
        uint32_t len, cptr;
        if (!in_span(&s, fde, 8))
            continue;
        memcpy(&len, (const void *)fde, 4);
        memcpy(&cptr, (const void *)(fde + 4), 4);
        if (len == 0 || len == 0xffffffff || !in_span(&s, fde + 4, len) || !cptr)
            continue;
        uintptr_t cie = fde + 4 - cptr;
        if (cie != last_cie) {
            last_cie = cie;
            cie_ok = plain_cie(&s, cie, &enc);
        }
        if (!cie_ok)
            continue;
        const unsigned char *q = (const unsigned char *)fde + 8, *fend = (const unsigned char *)fde + 4 + len;
        uintptr_t begin, range;
        if (!read_enc(&q, fend, enc, 0, &begin) || !read_enc(&q, fend, enc & 0x0f, 0, &range))
            continue;
        uintptr_t alen = uleb(&q, fend);
        if (alen > (uintptr_t)(fend - q))
            continue;
        q += alen;
        while (q < fend && !*q)
            q++;
        if (q != fend || range < 2 || !in_span(&s, begin, range))
            continue; /* a frame that moves: not a leaf */
        if (*(const unsigned char *)(begin + range - 1) == 0xc3)
            return begin + range - 1;
    }
    return 0;
}

/* An address inside an executable segment of r's object holding a `ret`: the
 * end of a leaf function (above), else the one that ends its _fini (sub
 * $8,%rsp; add $8,%rsp; ret, glibc's crti/crtn: no unwind rule there, so an
 * unwinder stops at it), else the first 0xc3 byte of its code. 0: none. */
static uintptr_t find_ret(const struct range_find *r)
{
    uintptr_t leaf = leaf_ret(r);
    if (leaf)
        return leaf;
    const ElfW(Dyn) *d = dynamic_of(r);
    for (; d && d->d_tag != DT_NULL; d++) {
        if (d->d_tag != DT_FINI)
            continue;
        const unsigned char *f = (const unsigned char *)dyn_ptr(d->d_un.d_ptr, r->base, r->lo, r->hi);
        static const unsigned char tail[] = {0x48, 0x83, 0xc4, 0x08, 0xc3};
        for (int k = 0; k < 12 && (uintptr_t)f >= r->lo && (uintptr_t)f + k + sizeof tail <= r->hi; k++)
            if (!memcmp(f + k, tail, sizeof tail))
                return (uintptr_t)(f + k + 4);
    }
    for (int i = 0; i < r->phnum; i++) {
        const ElfW(Phdr) *p = &r->phdr[i];
        if (p->p_type != PT_LOAD || !(p->p_flags & PF_X) || !(p->p_flags & PF_R))
            continue;
        const unsigned char *c = (const unsigned char *)(r->base + p->p_vaddr);
        const void *hit = memchr(c, 0xc3, p->p_filesz);
        if (hit)
            return (uintptr_t)hit;
    }
    return 0;
}

static void *no_dlopen(const char *file, int mode)
{
    (void)file;
    (void)mode;
    return NULL;
}

static void resolve_next(void)
{
    void *f = dlvsym(RTLD_NEXT, "dlopen", "GLIBC_2.34");
    if (!f || f == (void *)clk_dlopen_self)
        f = dlvsym(RTLD_NEXT, "dlopen", "GLIBC_2.2.5");
    if (!f || f == (void *)clk_dlopen_self) {
        static int warned;
        if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
            clk_warn("connleak: glibc's dlopen not found: dlopen returns NULL in this process");
        f = (void *)no_dlopen;
    }
    __atomic_store_n(&clk_dlopen_next, f, __ATOMIC_RELEASE);
}

__attribute__((used)) uintptr_t clk_dlopen_pre(const char *file, int mode, uintptr_t caller, uint64_t *before)
{
    int saved = errno;
    uintptr_t how = 0;
    if (!__atomic_load_n(&clk_dlopen_next, __ATOMIC_ACQUIRE))
        resolve_next();
    if (clk_real_depth || is_ours(caller)) {
        how = 1; /* our own lookups: straight through */
    } else {
        *before = loads();
        if (file && (strchr(file, '$') || !strchr(file, '/'))) {
            /* glibc looks along the caller's paths: it must see the caller */
            struct range_find r = {.addr = caller};
            find_range(&r);
            how = !shadow_stack() && r.found ? find_ret(&r) : 0;
            if (!how)
                how = 1;
        }
        if (how != 1) {
            post_depth++; /* the post-step comes */
            if (mode & RTLD_DEEPBIND) /* from glibc's taking the loader lock to our rewrite's end */
                __atomic_add_fetch(&rewriting, 1, __ATOMIC_ACQ_REL);
        }
    }
    errno = saved;
    return how;
}

/* ---- rewriting a new object's references ---- */

#define MAX_NEW 128
struct newobj {
    ElfW(Addr) base;
    const char *name;
    const ElfW(Dyn) * dyn;
    const ElfW(Phdr) * phdr;
    int phnum;
    int refs; /* it has a relocation that rewrite() would look at */
    uintptr_t lo, hi;
};

struct relocs {
    const ElfW(Rela) * r;
    size_t n;
};

/* An object's relocations that bind a symbol by name, read from its dynamic
 * section: DT_JMPREL, and DT_RELA past its leading DT_RELACOUNT relative ones. */
struct refs {
    const ElfW(Sym) * symtab;
    const char *strtab;
    size_t strsz;
    struct relocs set[2];
    int s;    /* the set and index next_ref() goes on from */
    size_t k;
};

static int refs_of(const struct newobj *o, struct refs *v)
{
    size_t relaent = sizeof(ElfW(Rela)), relacount = 0;
    int pltrel_rela = 1;
    memset(v, 0, sizeof *v);
    for (const ElfW(Dyn) *d = o->dyn; d && d->d_tag != DT_NULL; d++) {
        uintptr_t p = dyn_ptr(d->d_un.d_ptr, o->base, o->lo, o->hi);
        switch (d->d_tag) {
        case DT_SYMTAB: v->symtab = (const ElfW(Sym) *)p; break;
        case DT_STRTAB: v->strtab = (const char *)p; break;
        case DT_STRSZ: v->strsz = d->d_un.d_val; break;
        case DT_JMPREL: v->set[0].r = (const ElfW(Rela) *)p; break;
        case DT_PLTRELSZ: v->set[0].n = d->d_un.d_val / sizeof(ElfW(Rela)); break;
        case DT_PLTREL: pltrel_rela = d->d_un.d_val == DT_RELA; break;
        case DT_RELA: v->set[1].r = (const ElfW(Rela) *)p; break;
        case DT_RELASZ: v->set[1].n = d->d_un.d_val / sizeof(ElfW(Rela)); break;
        case DT_RELAENT: relaent = d->d_un.d_val; break;
        case DT_RELACOUNT: relacount = d->d_un.d_val; break;
        }
    }
    if (!v->symtab || !v->strtab || !pltrel_rela || relaent != sizeof(ElfW(Rela)))
        return 0; /* x86-64 objects use RELA */
    /* the linker sorts R_X86_64_RELATIVE first and counts them (most of an object's relocations) */
    if (v->set[1].r && relacount <= v->set[1].n) {
        v->set[1].r += relacount;
        v->set[1].n -= relacount;
    }
    return 1;
}

/* The next relocation that may hold a wrapped function (or dlopen, for a
 * deep-bound load), with its name and the wrapped function; NULL at the end. */
static const ElfW(Rela) * next_ref(struct refs *v, int deep, const char **name, const struct clk_wrapped **w)
{
    for (; v->s < 2; v->s++, v->k = 0) {
        const struct relocs *set = &v->set[v->s];
        while (set->r && v->k < set->n) {
            const ElfW(Rela) *r = &set->r[v->k++];
            unsigned type = ELF64_R_TYPE(r->r_info);
            if (!(type == R_X86_64_JUMP_SLOT || type == R_X86_64_GLOB_DAT || (type == R_X86_64_64 && !r->r_addend)))
                continue;
            const ElfW(Sym) *sym = &v->symtab[ELF64_R_SYM(r->r_info)];
            if (!ELF64_R_SYM(r->r_info) || sym->st_name >= v->strsz)
                continue;
            *name = v->strtab + sym->st_name;
            *w = clk_find_wrapped(*name);
            if (*w || (deep && !strcmp(*name, "dlopen")))
                return r;
        }
    }
    return NULL;
}

struct collect {
    struct link_map *root;
    struct newobj o[MAX_NEW];
    int n, matched, deep;
    uint64_t loaded; /* in: how many objects the dlopen loaded (0: unknown) */
    int first;       /* out: the first of them in o */
};

/* With the loader's list lock held (dl_iterate_phdr): the root and every
 * object after it in its namespace's list, then each one's program headers,
 * and whether it refers to a function we wrap: read here, where no dlclose
 * can unmap it (glibc unmaps and unlinks under that lock), so an object that
 * does not (nearly every dlopen) costs no handle of ours afterwards. */
static int collect_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct collect *c = data;
    if (c->n < 0) {
        c->n = 0;
        for (struct link_map *m = c->root; m && c->n < MAX_NEW; m = m->l_next) {
            c->o[c->n].base = m->l_addr;
            c->o[c->n].name = m->l_name ? m->l_name : "";
            c->o[c->n].dyn = m->l_ld;
            c->o[c->n].phdr = NULL;
            c->o[c->n].refs = 0;
            c->n++;
        }
        /* the root and what followed it in the list; when more follow than were
         * loaded since the pre-step (the root was already loaded, another thread
         * loads too), the last ones only */
        c->first = c->loaded && (uint64_t)c->n > c->loaded ? c->n - (int)c->loaded : 0;
    }
    for (int i = 0; i < c->n; i++) {
        struct newobj *o = &c->o[i];
        if (!o->phdr && o->base == info->dlpi_addr && o->name == info->dlpi_name) {
            uint64_t lo, hi;
            clk_phdr_bounds(info, &lo, &hi);
            o->phdr = info->dlpi_phdr;
            o->phnum = info->dlpi_phnum;
            o->lo = (uintptr_t)lo;
            o->hi = (uintptr_t)hi;
            struct refs v;
            const char *name;
            const struct clk_wrapped *w;
            o->refs = i >= c->first && o->dyn && refs_of(o, &v) && next_ref(&v, c->deep, &name, &w);
            c->matched++;
            break;
        }
    }
    return c->matched == c->n;
}

static int is_family_library(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    return !strncmp(base, "libsqlite3", 10) || !strncmp(base, "libpq.", 6);
}

static void note(const char *text, int n)
{
    if (n <= 0)
        return;
    clk_ensure_init();
    clk_busy++; /* our bookkeeping: a wrapper entered meanwhile passes its call on */
    struct connleak_raw_record rec = {0};
    rec.u.ev.target = clk_intern_string(text, (size_t)n < CLK_BIND_NOTE_MAX ? (size_t)n : CLK_BIND_NOTE_MAX - 1);
    clk_journal_commit(clk_journal_reserve(0), &rec, CONNLEAK_REC_NOTE);
    clk_busy--;
}

/* Held only around a GOT store and its two mprotect calls; taken around fork. */
static pthread_mutex_t store_mu = PTHREAD_MUTEX_INITIALIZER;
static long page_size;

/* Stores v into a slot of o: made writable for the store when RELRO (or the
 * segment) left it read-only, then given its protection back. */
static int store(const struct newobj *o, void **slot, void *v)
{
    uintptr_t a = (uintptr_t)slot, pg = (uintptr_t)page_size;
    int prot = 0, relro = 0;
    for (int i = 0; i < o->phnum; i++) {
        const ElfW(Phdr) *p = &o->phdr[i];
        uintptr_t s = o->base + p->p_vaddr;
        if (p->p_type == PT_GNU_RELRO && a >= (s & ~(pg - 1)) && a < ((s + p->p_memsz) & ~(pg - 1)))
            relro = 1;
        if (p->p_type == PT_LOAD && a >= s && a + sizeof v <= s + p->p_memsz)
            prot = (p->p_flags & PF_R ? PROT_READ : 0) | (p->p_flags & PF_W ? PROT_WRITE : 0) |
                   (p->p_flags & PF_X ? PROT_EXEC : 0);
    }
    if (!prot)
        return 0; /* not in the object: never written */
    if (relro)
        prot = PROT_READ;
    if (prot & PROT_WRITE) {
        __atomic_store_n(slot, v, __ATOMIC_RELEASE);
        return 1;
    }
    void *page = (void *)(a & ~(pg - 1));
    int ok = 0;
    pthread_mutex_lock(&store_mu);
    if (mprotect(page, (size_t)pg, prot | PROT_WRITE) == 0) {
        __atomic_store_n(slot, v, __ATOMIC_RELEASE);
        mprotect(page, (size_t)pg, prot);
        ok = 1;
    }
    pthread_mutex_unlock(&store_mu);
    return ok;
}

static void *not_ours(void *f)
{
    return f && !is_ours((uintptr_t)f) ? f : NULL;
}

/* What the wrapper passes a call from o (whose handle is self) on to:
 * dlsym(RTLD_NEXT) from here, else o's own scope (real.c's first two steps). */
static void *wrapper_target(void *self, const char *name)
{
    void *g = not_ours(dlsym(RTLD_NEXT, name));
    return g ? g : not_ours(dlsym(self, name));
}

/* One object: each relocation of a wrapped name (or of dlopen) bound, or to
 * be bound, past us is pointed at ours when that changes nothing else. */
static void rewrite(const struct newobj *o, void *self, void *root, int deep)
{
    struct refs v;
    if (!refs_of(o, &v))
        return;
    char text[CLK_BIND_NOTE_MAX];
    const char *name;
    const struct clk_wrapped *w;
    for (const ElfW(Rela) *r; (r = next_ref(&v, deep, &name, &w));) {
        unsigned type = ELF64_R_TYPE(r->r_info);
        void *ours = w ? w->wrapper : (void *)clk_dlopen_self;
        void **slot = (void **)(o->base + r->r_offset);
        void *now = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
        if (now == ours || is_ours((uintptr_t)now))
            continue;
        /* what the loader bound it to, or (a lazy slot still in the
         * object's own PLT) will bind it to: the deep-bound root's scope
         * first; nothing there means the global scope, which is us */
        void *bound = now;
        if (type == R_X86_64_JUMP_SLOT && (uintptr_t)now >= o->lo && (uintptr_t)now < o->hi)
            bound = deep ? not_ours(dlsym(root, name)) : NULL;
        if (!bound)
            continue;
        if (!deep && (uintptr_t)bound >= o->lo && (uintptr_t)bound < o->hi)
            continue; /* its own definition, as the global scope gave it */
        void *target = w ? wrapper_target(self, name) : __atomic_load_n(&clk_dlopen_next, __ATOMIC_ACQUIRE);
        if (target == bound && store(o, slot, ours))
            continue;
        if (!w)
            continue; /* dlopen left as it is: nothing is lost but what it loads */
        Dl_info di;
        const char *where = (uintptr_t)bound >= o->lo && (uintptr_t)bound < o->hi ? "its own copy"
                            : dladdr(bound, &di) && di.dli_fname                ? di.dli_fname
                                                                                : "?";
        note(text, snprintf(text, sizeof text,
                            "%s binds %s to %s past the detector (%s) and could not be redirected: "
                            "connections it opens there are not seen",
                            o->name, name, where, deep ? "RTLD_DEEPBIND" : "bound before the preload"));
    }
}

/* glibc's dlclose, past the preloaded one (dlclose.c), which would make the
 * wrappers look their functions up again for a reference of ours that unloads
 * nothing. */
static int glibc_dlclose(void *h)
{
    static int (*next)(void *);
    int (*f)(void *) = __atomic_load_n(&next, __ATOMIC_ACQUIRE);
    if (!f) {
        f = (int (*)(void *))dlvsym(RTLD_NEXT, "dlclose", "GLIBC_2.34");
        if (!f)
            f = (int (*)(void *))dlvsym(RTLD_NEXT, "dlclose", "GLIBC_2.2.5");
        if (!f)
            f = dlclose;
        __atomic_store_n(&next, f, __ATOMIC_RELEASE);
    }
    return f(h);
}

static void rewrite_new(void *handle, int mode, uint64_t before, uint64_t after)
{
    struct collect col, *c = &col;
    c->n = -1;
    c->matched = 0;
    c->deep = (mode & RTLD_DEEPBIND) != 0;
    c->loaded = before && after > before ? after - before : 0;
    c->first = 0;
    if (dlinfo(handle, RTLD_DI_LINKMAP, &c->root) != 0 || !c->root)
        return;
    int cs = clk_walk_begin();
    dl_iterate_phdr(collect_cb, c);
    clk_walk_end(cs);
    if (!page_size)
        page_size = sysconf(_SC_PAGESIZE);
    int deep = c->deep;
    for (int i = c->first; i < c->n; i++) {
        const struct newobj *o = &c->o[i];
        if (!o->refs || !o->phdr || !o->dyn || !o->name[0] || is_ours(o->lo) || is_family_library(o->name))
            continue;
        /* a reference of our own keeps it loaded meanwhile (another thread's
         * load that followed ours could be unloaded by now): the same object
         * still, or left alone */
        void *self = dlopen(o->name, RTLD_NOLOAD | RTLD_LAZY);
        struct link_map *m = NULL;
        if (self && dlinfo(self, RTLD_DI_LINKMAP, &m) == 0 && m && m->l_addr == o->base && m->l_ld == o->dyn)
            rewrite(o, self, handle, deep);
        if (self)
            glibc_dlclose(self);
    }
}

__attribute__((used)) void *clk_dlopen_post(void *handle, const char *file, int mode, uint64_t before)
{
    (void)file;
    post_depth--;
    int counted = (mode & RTLD_DEEPBIND) != 0; /* the pre-step counted it in `rewriting` */
    if (!handle) {
        if (counted)
            __atomic_sub_fetch(&rewriting, 1, __ATOMIC_ACQ_REL);
        return handle; /* a failure: dlerror() and errno stay glibc's */
    }
    int saved = errno;
    uint64_t after = loads();
    if (after != before) {
        clk_real_depth++; /* our dlsym/dlopen lookups pass straight through dlsym.c */
        rewrite_new(handle, mode, before, after);
        clk_real_depth--;
        dlerror(); /* a successful dlopen leaves no error pending; our lookups' misses must not show */
    }
    if (counted)
        __atomic_sub_fetch(&rewriting, 1, __ATOMIC_ACQ_REL);
    /* not inside another dlopen on this thread (whose loader lock the other
     * post-step may wait for), and never more than a second */
    for (int k = 0; !post_depth && k < 20000 && __atomic_load_n(&rewriting, __ATOMIC_ACQUIRE) > 0; k++) {
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
    }
    errno = saved;
    return handle;
}

static void before_fork(void)
{
    pthread_mutex_lock(&store_mu);
}

static void after_fork_parent(void)
{
    pthread_mutex_unlock(&store_mu);
}

/* The loads other threads had in flight do not go on in the child. */
static void after_fork_child(void)
{
    __atomic_store_n(&rewriting, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&store_mu);
}

__attribute__((constructor)) static void bind_init(void)
{
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

#else
typedef int clk_dlopen_not_interposed; /* dlopen stays glibc's alone */
#endif
