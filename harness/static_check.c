/* static_check.c — finds loaded objects that carry their own copy of SQLite or libpq, which the preloaded wrappers cannot see. */
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* Which library an object defines instead of importing: "SQLite", "libpq" or NULL. */
static const char *scan(const char *path)
{
    const char *base = clk_basename(path);
    if (!strncmp(base, "libsqlite3", 10) || !strncmp(base, "libpq.", 6) || !strncmp(base, "libconnleak", 11) ||
        !strncmp(base, "linux-vdso", 10))
        return NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    elf_version(EV_CURRENT);
    Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    const char *found = NULL;
    Elf_Scn *scn = NULL;
    while (elf && !found && (scn = elf_nextscn(elf, scn))) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM) || !sh.sh_entsize)
            continue;
        Elf_Data *data = elf_getdata(scn, NULL);
        size_t n = data ? sh.sh_size / sh.sh_entsize : 0;
        for (size_t i = 0; i < n && !found; i++) {
            GElf_Sym sym;
            if (!gelf_getsym(data, (int)i, &sym) || sym.st_shndx == SHN_UNDEF ||
                GELF_ST_TYPE(sym.st_info) != STT_FUNC)
                continue;
            const char *name = elf_strptr(elf, sh.sh_link, sym.st_name);
            if (!name)
                continue;
            if (!strcmp(name, "sqlite3_open_v2") || !strcmp(name, "openDatabase"))
                found = "SQLite";
            else if (!strcmp(name, "PQconnectStart"))
                found = "libpq";
        }
    }
    if (elf)
        elf_end(elf);
    close(fd);
    return found;
}

const char *clk_own_copy_of(const char *path)
{
    static struct clk_map seen; /* interned path -> result (or a marker for none) */
    static const char none[] = "";
    if (!path)
        return NULL;
    void **slot = clk_map_slot(&seen, (uint64_t)(uintptr_t)path, 1);
    if (!*slot) {
        const char *r = scan(path);
        *slot = (void *)(r ? r : none);
    }
    return *(const char *)*slot ? *slot : NULL;
}
