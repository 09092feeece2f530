/* static_check.c — finds loaded objects the preloaded wrappers cannot see into: their own copy of SQLite or libpq, Go code. */
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* Strings every copy of the library carries in its read-only data, for objects
 * stripped of their symbols; all of a set must be there. */
static const char *const sqlite_marks[] = {"SQLite format 3", "database disk image is malformed", "sqlite_master", NULL};
static const char *const libpq_marks[] = {"target_session_attrs", "requirepeer", "krbsrvname", NULL};

static int has_all(const char *data, size_t len, const char *const *marks)
{
    for (int i = 0; marks[i]; i++)
        if (!memmem(data, len, marks[i], strlen(marks[i])))
            return 0;
    return 1;
}

/* What an object's ELF says about what the wrappers miss in it. */
struct facts {
    const char *own_copy; /* "SQLite", "libpq" or NULL */
    int go;
};

/* Go: its linker writes a .go.buildinfo section (kept by strip); failing that, its runtime's symbols. */
static int is_go_section(Elf *elf, size_t shstrndx, const GElf_Shdr *sh)
{
    const char *name = elf_strptr(elf, shstrndx, sh->sh_name);
    return name && !strcmp(name, ".go.buildinfo");
}

/* Which library an object defines instead of importing: "SQLite", "libpq" or NULL.
 * By its symbols (sqlite3_open_v2, PQconnectStart defined); failing those, a
 * stripped object that imports neither library but carries its strings.
 * And whether it holds Go code. */
static struct facts scan(const char *path)
{
    struct facts r = {NULL, 0};
    const char *base = clk_basename(path);
    if (!strncmp(base, "libsqlite3", 10) || !strncmp(base, "libpq.", 6) || !strncmp(base, "libconnleak", 11) ||
        !strncmp(base, "linux-vdso", 10))
        return r;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return r;
    elf_version(EV_CURRENT);
    Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    const char *found = NULL;
    int imports_sqlite = 0, imports_pq = 0;
    /* a shared object exporting the library's opener calls it through its PLT, which binds to
     * our wrapper (the wrappers then pass the call on to the object's own copy: real.c): seen */
    int exports_sqlite = 0, exports_pq = 0, symbolic = 0, has_interp = 0;
    size_t shstrndx = 0;
    int have_names = elf && elf_getshdrstrndx(elf, &shstrndx) == 0;
    Elf_Scn *scn = NULL;
    while (elf && (scn = elf_nextscn(elf, scn))) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh))
            continue;
        r.go |= have_names && is_go_section(elf, shstrndx, &sh);
        if ((sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM) || !sh.sh_entsize)
            continue;
        Elf_Data *data = elf_getdata(scn, NULL);
        size_t n = data ? sh.sh_size / sh.sh_entsize : 0;
        for (size_t i = 0; i < n && (!found || !r.go); i++) {
            GElf_Sym sym;
            if (!gelf_getsym(data, (int)i, &sym))
                continue;
            const char *name = elf_strptr(elf, sh.sh_link, sym.st_name);
            if (!name)
                continue;
            if (sym.st_shndx == SHN_UNDEF) {
                imports_sqlite |= !strncmp(name, "sqlite3_", 8);
                imports_pq |= name[0] == 'P' && name[1] == 'Q';
                continue;
            }
            if (GELF_ST_TYPE(sym.st_info) != STT_FUNC)
                continue;
            int exported = sh.sh_type == SHT_DYNSYM && GELF_ST_BIND(sym.st_info) != STB_LOCAL &&
                           GELF_ST_VISIBILITY(sym.st_other) == STV_DEFAULT;
            /* any of the wrapped openers (wrap_sqlite.c, wrap_libpq.c) */
            exports_sqlite |= exported && !strncmp(name, "sqlite3_open", 12);
            exports_pq |= exported && (!strncmp(name, "PQconnect", 9) || !strcmp(name, "PQsetdbLogin"));
            if (!strcmp(name, "sqlite3_open_v2") || !strcmp(name, "openDatabase"))
                found = found ? found : "SQLite";
            else if (!strcmp(name, "PQconnectStart"))
                found = found ? found : "libpq";
            else if (!strncmp(name, "runtime.", 8) && (!strcmp(name + 8, "main") || !strcmp(name + 8, "goexit")))
                r.go = 1;
        }
    }
    /* -Bsymbolic binds an object's calls to its own definitions, past any preload; a program
     * (PT_INTERP) calls its own functions directly */
    scn = NULL;
    while (elf && found && (scn = elf_nextscn(elf, scn))) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNAMIC || !sh.sh_entsize)
            continue;
        Elf_Data *data = elf_getdata(scn, NULL);
        for (size_t i = 0; data && i < sh.sh_size / sh.sh_entsize; i++) {
            GElf_Dyn d;
            if (gelf_getdyn(data, (int)i, &d))
                symbolic |= d.d_tag == DT_SYMBOLIC || (d.d_tag == DT_FLAGS && (d.d_un.d_val & DF_SYMBOLIC));
        }
    }
    size_t nph = 0;
    for (size_t i = 0; elf && found && elf_getphdrnum(elf, &nph) == 0 && i < nph; i++) {
        GElf_Phdr ph;
        has_interp |= gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_INTERP;
    }
    int seen = found && !symbolic && !has_interp &&
               ((!strcmp(found, "SQLite") && exports_sqlite) || (!strcmp(found, "libpq") && exports_pq));
    /* the sqlite3 shell and psql mention these strings too, but import the library */
    scn = NULL;
    while (elf && !found && (scn = elf_nextscn(elf, scn))) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS || !(sh.sh_flags & SHF_ALLOC) ||
            (sh.sh_flags & (SHF_EXECINSTR | SHF_WRITE)))
            continue;
        Elf_Data *data = elf_getdata(scn, NULL);
        if (!data || !data->d_buf)
            continue;
        if (!imports_sqlite && has_all(data->d_buf, data->d_size, sqlite_marks))
            found = "SQLite";
        else if (!imports_pq && has_all(data->d_buf, data->d_size, libpq_marks))
            found = "libpq";
    }
    if (elf)
        elf_end(elf);
    close(fd);
    r.own_copy = seen ? NULL : found;
    return r;
}

int clk_is_static_exe(const char *path)
{
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0)
        return 0;
    elf_version(EV_CURRENT);
    Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    GElf_Ehdr eh;
    size_t nph = 0;
    int is_static = 0;
    if (elf && elf_kind(elf) == ELF_K_ELF && gelf_getehdr(elf, &eh) && (eh.e_type == ET_EXEC || eh.e_type == ET_DYN) &&
        elf_getphdrnum(elf, &nph) == 0 && nph) {
        is_static = 1;
        for (size_t i = 0; i < nph; i++) {
            GElf_Phdr ph;
            if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_INTERP)
                is_static = 0;
        }
    }
    if (elf)
        elf_end(elf);
    close(fd);
    return is_static;
}

/* scan(path), once per path: paths are interned, so the pointer is the key. */
static const struct facts *facts_of(const char *path)
{
    static struct clk_map seen; /* interned path -> struct facts */
    void **slot = clk_map_slot(&seen, (uint64_t)(uintptr_t)path, 1);
    if (!*slot) {
        struct facts *f = clk_xmalloc(sizeof *f);
        *f = scan(path);
        *slot = f;
    }
    return *slot;
}

const char *clk_own_copy_of(const char *path)
{
    return path ? facts_of(path)->own_copy : NULL;
}

int clk_is_go_object(const char *path)
{
    return path ? facts_of(path)->go : 0;
}
