/* output_path.c — decides whether a report path is replaced or written through; used by the recorder and the CLI. */
#include <string.h>
#include <sys/stat.h>

#include "output_path.h"

int clk_output_writes_through(const char *path)
{
    if (!strncmp(path, "/dev/", 5) || !strncmp(path, "/proc/", 6))
        return 1;
    struct stat st;
    return stat(path, &st) == 0 && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode) ||
                                    S_ISSOCK(st.st_mode));
}
