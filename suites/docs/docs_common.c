/* docs_common.c — what suites/docs share: the fixtures' paths, JSON Schema validation with python3-jsonschema. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "docs_common.h"

/* Draft 2020-12 (what the schema says it is), checked against its metaschema first. */
static const char validate_py[] =
    "import json, sys\n"
    "import jsonschema\n"
    "schema = json.load(open(sys.argv[1]))\n"
    "report = json.load(open(sys.argv[2]))\n"
    "cls = jsonschema.validators.validator_for(schema)\n"
    "cls.check_schema(schema)\n"
    "errors = sorted(cls(schema).iter_errors(report), key=lambda e: list(e.absolute_path))\n"
    "for e in errors[:10]:\n"
    "    print('%s: %s' % ('/'.join(str(p) for p in e.absolute_path) or '(top)', e.message[:300]))\n"
    "print('%s, jsonschema %s: %d error(s)' % (cls.__name__, getattr(jsonschema, '__file__', '?'), len(errors)))\n"
    "sys.exit(1 if errors else 0)\n";

const char *docs_python_jsonschema(void)
{
    static int probed;
    static const char *found;
    if (probed)
        return found;
    probed = 1;
    const char *candidates[] = {"/usr/bin/python3", "python3"};
    for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++) {
        clk_test_proc p;
        clk_test_exec(ARGS(candidates[i], "-c", "import jsonschema; jsonschema.Draft202012Validator"), NO_DETECTOR,
                      NULL, 0, &p);
        int ok = p.status == 0;
        clk_test_proc_free(&p);
        if (ok) {
            found = candidates[i];
            break;
        }
    }
    return found;
}

const char *docs_need_jsonschema(void)
{
    const char *py = docs_python_jsonschema();
    if (!py)
        cr_skip_test("no python3 imports jsonschema with Draft 2020-12 (Debian: apt-get install -y python3-jsonschema)");
    return py;
}

int docs_validate(const char *json_path, char **why)
{
    const char *py = docs_need_jsonschema();
    char *schema = clk_test_path(clk_test_source_root(), "docs/report.schema.json");
    clk_test_proc p;
    clk_test_exec(ARGS(py, "-c", validate_py, schema, json_path), NO_DETECTOR, NULL, 0, &p);
    int rc = p.status;
    if (why) {
        size_t n = p.out_len + p.err_len + 2;
        *why = malloc(n);
        snprintf(*why, n, "%s%s", p.out, p.err);
    }
    clk_test_proc_free(&p);
    free(schema);
    return rc;
}

void docs_assert_valid(const clk_test_run *r, const char *what)
{
    clk_assert_report(r);
    char *why = NULL;
    int rc = docs_validate(r->json_path, &why);
    cr_assert_eq(rc, 0, "%s: the report does not validate against docs/report.schema.json:\n%s\n--- report:\n%s",
                 what, why, clk_test_excerpt(r->json_text));
    free(why);
}

char *docs_write(const char *dir, const char *name, const char *text)
{
    char *path = clk_test_path(dir, name);
    cr_assert_eq(clk_test_write_file(path, text, strlen(text)), 0, "cannot write %s", path);
    return path;
}

void docs_assert_documented(const char *what, const char *help, const char *man, const char *ref)
{
    clk_test_proc p;
    clk_test_exec(ARGS(clk_test_cli(), "--help"), NO_DETECTOR, NULL, 0, &p);
    cr_assert_eq(p.status, 0, "connleak --help: status %d", p.status);
    cr_assert(clk_test_contains(p.out, help), "--help does not document %s ('%s'):\n%s", what, help,
              clk_test_excerpt(p.out));
    clk_test_proc_free(&p);
    const char *files[] = {"harness/connleak.1", "docs/reference.md"}, *needles[] = {man, ref};
    for (int i = 0; i < 2; i++) {
        char *path = clk_test_path(clk_test_source_root(), files[i]);
        char *text = clk_test_read_file(path, NULL);
        cr_assert(text && clk_test_contains(text, needles[i]), "%s does not document %s ('%s')", path, what,
                  needles[i]);
        free(text);
        free(path);
    }
}
