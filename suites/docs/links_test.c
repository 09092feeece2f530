/* links_test.c — every `](` link of README.md and the docs/ pages stays inside the repository: no scheme, no absolute
 * path, no way out through "..", the file it names exists, and an #anchor names a heading of that file. */
#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "docs_common.h"

/* GitHub's heading anchors: lower case, spaces to '-', everything but letters, digits, '-' and '_' dropped. */
static void slug(const char *heading, char *out, size_t cap)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)heading; *p && n + 1 < cap; p++) {
        if (*p == ' ')
            out[n++] = '-';
        else if (isalnum(*p) || *p == '-' || *p == '_' || *p >= 0x80)
            out[n++] = (char)tolower(*p);
    }
    out[n] = 0;
}

/* Does the markdown file have a heading whose anchor is `anchor`? */
static int has_anchor(const char *path, const char *anchor)
{
    char *text = clk_test_read_file(path, NULL);
    if (!text)
        return 0;
    int found = 0, fenced = 0;
    for (char *line = strtok(text, "\n"); line && !found; line = strtok(NULL, "\n")) {
        if (!strncmp(line, "```", 3))
            fenced = !fenced;
        if (fenced || line[0] != '#')
            continue;
        char *h = line;
        while (*h == '#')
            h++;
        while (*h == ' ')
            h++;
        char s[512];
        slug(h, s, sizeof s);
        found = !strcmp(s, anchor);
    }
    free(text);
    return found;
}

/* Checks each link of one file; returns how many it checked, and fails on the first bad one. */
static int check_file(const char *root, const char *rel)
{
    char *path = clk_test_path(root, rel);
    char *text = clk_test_read_file(path, NULL);
    cr_assert_not_null(text, "cannot read %s", path);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = 0;
    char rootreal[PATH_MAX];
    cr_assert_not_null(realpath(root, rootreal));
    int checked = 0, fenced = 0, lineno = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        if (!strncmp(line, "```", 3))
            fenced = !fenced;
        if (fenced || !strncmp(line, "    ", 4)) /* code, not links */
            continue;
        for (char *p = strstr(line, "]("); p; p = strstr(p + 2, "](")) {
            char *start = p + 2, *end = strchr(start, ')');
            cr_assert_not_null(end, "%s:%d: a link with no ')': %s", rel, lineno, line);
            char target[PATH_MAX];
            snprintf(target, sizeof target, "%.*s", (int)(end - start), start);
            char *sp = strchr(target, ' '); /* [x](file "title") */
            if (sp)
                *sp = 0;
            checked++;
            cr_assert(!strchr(target, ':'), "%s:%d: link '%s' leaves the repository (a scheme)", rel, lineno, target);
            cr_assert(target[0] != '/', "%s:%d: link '%s' is an absolute path", rel, lineno, target);
            char *hash = strchr(target, '#');
            char anchor[256] = "";
            if (hash) {
                snprintf(anchor, sizeof anchor, "%s", hash + 1);
                *hash = 0;
            }
            char file[PATH_MAX * 2], real[PATH_MAX];
            if (target[0])
                snprintf(file, sizeof file, "%s/%s", dir, target);
            else
                snprintf(file, sizeof file, "%s", path);
            cr_assert_not_null(realpath(file, real), "%s:%d: link '%s' names no file (%s)", rel, lineno, target, file);
            size_t n = strlen(rootreal);
            cr_assert(!strncmp(real, rootreal, n) && (real[n] == '/' || !real[n]),
                      "%s:%d: link '%s' leaves the repository (%s)", rel, lineno, target, real);
            if (anchor[0] && strlen(real) > 3 && !strcmp(real + strlen(real) - 3, ".md"))
                cr_assert(has_anchor(real, anchor), "%s:%d: link '%s#%s': no such heading in %s", rel, lineno, target,
                          anchor, real);
        }
    }
    free(text);
    free(path);
    return checked;
}

Test(links, readme_and_docs_stay_inside, .timeout = 60)
{
    const char *root = clk_test_source_root();
    int n = check_file(root, "README.md");
    cr_assert(n >= 1, "README.md has no links: it should send readers to docs/reference.md");
    char *readme = clk_test_read_file(clk_test_path(root, "README.md"), NULL);
    cr_assert(clk_test_contains(readme, "](docs/reference.md)"), "README.md does not link docs/reference.md");
    cr_assert(!clk_test_contains(readme, "shared/SPEC.md"), "README.md still names ../shared/SPEC.md");
    char *docs = clk_test_path(root, "docs");
    DIR *d = opendir(docs);
    cr_assert_not_null(d, "no docs/ directory");
    int files = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len > 3 && !strcmp(e->d_name + len - 3, ".md")) {
            char rel[300];
            snprintf(rel, sizeof rel, "docs/%s", e->d_name);
            n += check_file(root, rel);
            files++;
        }
    }
    closedir(d);
    cr_assert(files >= 1, "no docs/*.md");
    cr_log_info("%d links checked in README.md and %d docs/*.md files", n, files);
}

/* The checker itself: relative links and anchors are followed, code blocks skipped. */
Test(links, checker_follows_links_in, .timeout = 60)
{
    char *dir = clk_test_mkdtemp();
    char *sub = clk_test_path(dir, "docs");
    cr_assert_eq(mkdir(sub, 0700), 0);
    docs_write(sub, "ok.md", "# Top\n\n[up](../x.md) [here](#top) [code]\n\n    [not a link](http://x)\n");
    docs_write(dir, "x.md", "# X\n");
    cr_assert_eq(check_file(dir, "docs/ok.md"), 2);
    clk_test_rmtree(dir);
}
