/* docs_common.h — what suites/docs share: the fixtures' paths, JSON Schema validation with python3-jsonschema. */
#ifndef DOCS_COMMON_H
#define DOCS_COMMON_H

#include "clk_assert.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
/* The environment of every CLI run: no detector around connleak itself, and no BoxFort worker mark (BXFI_MAP:
 * a Criterion binary started from a test worker would take itself for that worker and abort). */
#define NO_DETECTOR ARGS("LD_PRELOAD", "CONNLEAK_OPTIONS", "BXFI_MAP")

/* A python3 that imports jsonschema (Debian's /usr/bin/python3 first: what users of
 * python3-jsonschema have), NULL when none does. */
const char *docs_python_jsonschema(void);
/* Skips the test, saying why, when no python3 imports jsonschema. */
const char *docs_need_jsonschema(void);
/* Validates the JSON file against docs/report.schema.json; returns 0 when valid, else puts
 * python's message (malloc'd) in *why. */
int docs_validate(const char *json_path, char **why);
/* Asserts that the run wrote a report and that it validates. */
void docs_assert_valid(const clk_test_run *r, const char *what);
/* `connleak --help` holds help, the man page man and docs/reference.md ref: what documents an option. */
void docs_assert_documented(const char *what, const char *help, const char *man, const char *ref);
/* A file in the test's directory with this text; malloc'd path. */
char *docs_write(const char *dir, const char *name, const char *text);

#endif
