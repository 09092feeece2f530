/* policy.c — helpers the suppression and baseline suites share (see policy.h). */
#include <stdlib.h>
#include <string.h>

#include "policy.h"

static char *dir;

static void remove_dir(void)
{
    if (dir)
        clk_test_rmtree(dir);
}

const char *policy_dir(void)
{
    if (!dir) {
        dir = clk_test_mkdtemp();
        atexit(remove_dir);
    }
    return dir;
}

char *policy_path(const char *name)
{
    return clk_test_path(policy_dir(), name);
}

char *policy_write(const char *name, const char *text)
{
    char *p = policy_path(name);
    cr_assert_eq(clk_test_write_file(p, text, strlen(text)), 0, "cannot write %s", p);
    return p;
}

int policy_run(const char *const *opts, const char *const *modes, const char *const *env, clk_test_run *r)
{
    const char *cmd[32];
    size_t k = 0;
    cmd[k++] = FX_POLICY;
    for (size_t i = 0; modes && modes[i] && k < 31; i++)
        cmd[k++] = modes[i];
    cmd[k] = NULL;
    return clk_test_connleak(opts, cmd, env, r);
}

int policy_cli(const char *const *args, clk_test_proc *p)
{
    const char *argv[32];
    size_t k = 0;
    argv[k++] = clk_test_cli();
    for (size_t i = 0; args[i] && k < 31; i++)
        argv[k++] = args[i];
    argv[k] = NULL;
    return clk_test_exec(argv, ARGS("LD_PRELOAD", "CONNLEAK_OPTIONS"), NULL, 0, p);
}

json_t *policy_entry(const json_t *report, const char *list, const char *fn)
{
    json_t *a = json_object_get(report, list);
    for (size_t i = 0; json_is_array(a) && i < json_array_size(a); i++) {
        json_t *e = json_array_get(a, i);
        json_t *kind = json_object_get(e, "kind");
        int is_close = json_is_string(kind) && strcmp(json_string_value(kind), "leak") != 0;
        const char *first = clk_test_first_function(json_object_get(e, is_close ? "closed_at" : "opened_at"));
        if (!strcmp(first, fn))
            return e;
    }
    return NULL;
}

long long policy_count(const json_t *report, const char *list)
{
    json_t *a = json_object_get(report, list);
    return json_is_array(a) ? (long long)json_array_size(a) : -1;
}

int policy_note(const json_t *report, const char *part)
{
    json_t *a = json_object_get(report, "notes");
    for (size_t i = 0; json_is_array(a) && i < json_array_size(a); i++)
        if (clk_test_contains(json_string_value(json_array_get(a, i)), part))
            return 1;
    return 0;
}
