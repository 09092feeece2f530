/* url.c — connection URLs: which database kind, SQLite filenames and on-disk paths, libpq-ready PostgreSQL strings. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

/* Length of "scheme[+driver]://" at the start of url when scheme is `name`, else 0. */
static size_t scheme_len(const char *url, const char *name)
{
    size_t n = strlen(name);
    if (strncasecmp(url, name, n) != 0)
        return 0;
    const char *p = url + n;
    if (*p == '+') /* SQLAlchemy's dialect+driver form, e.g. postgresql+asyncpg */
        while (*p && (isalnum((unsigned char)*p) || *p == '+' || *p == '_'))
            p++;
    if (strncmp(p, "://", 3) != 0)
        return 0;
    return (size_t)(p + 3 - url);
}

int dbc_url_kind(const char *url, dbconf_kind *kind, char *err, size_t errlen)
{
    if (scheme_len(url, "sqlite") || strncasecmp(url, "file:", 5) == 0) {
        *kind = DBCONF_SQLITE;
        return 0;
    }
    if (scheme_len(url, "postgresql") || scheme_len(url, "postgres")) {
        *kind = DBCONF_POSTGRES;
        return 0;
    }
    if (strchr(url, '=') && !strstr(url, "://")) {
        /* a libpq conninfo; dbconf_config_new has libpq check it */
        *kind = DBCONF_POSTGRES;
        return 0;
    }
    /* the URL itself may hold a password: name only its scheme */
    size_t s = strcspn(url, ":");
    return dbc_fail(err, errlen,
                    "dbconf: unsupported connection URL (scheme \"%.*s\"): expected sqlite:///path, "
                    "sqlite:///:memory:, file:...?mode=memory, postgresql://... or a libpq conninfo",
                    (int)(s < 32 ? s : 32), url);
}

int dbc_url_is_inmemory(const char *url)
{
    return strstr(url, ":memory:") != NULL || strstr(url, "mode=memory") != NULL;
}

/* `query` without its "uri=true" parameter (malloc'd). */
static char *drop_uri_param(const char *query)
{
    char *out = malloc(strlen(query) + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    const char *p = query;
    while (*p) {
        size_t len = strcspn(p, "&");
        if (!(len == 8 && strncasecmp(p, "uri=true", 8) == 0)) {
            if (n)
                out[n++] = '&';
            memcpy(out + n, p, len);
            n += len;
        }
        p += len;
        if (*p == '&')
            p++;
    }
    out[n] = 0;
    return out;
}

char *dbc_sqlite_filename(const char *url, char *err, size_t errlen)
{
    if (strncasecmp(url, "file:", 5) == 0)
        return dbc_strdup(url);
    size_t s = scheme_len(url, "sqlite");
    if (!s) {
        dbc_fail(err, errlen, "dbconf: not an SQLite URL");
        return NULL;
    }
    const char *rest = url + s;
    if (!*rest) /* sqlite:// is an in-memory database */
        return dbc_strdup(":memory:");
    if (*rest != '/') {
        dbc_fail(err, errlen, "dbconf: an SQLite URL has no host: write sqlite:///relative/path or sqlite:////absolute/path");
        return NULL;
    }
    const char *path = rest + 1; /* sqlite:///x -> "x", sqlite:////x -> "/x" */
    if (strncasecmp(path, "file:", 5) == 0)
        return dbc_strdup(path);
    const char *q = strchr(path, '?');
    if (!q)
        return dbc_strdup(*path ? path : ":memory:");
    const char *query = q + 1;
    int uri = 0;
    for (const char *p = query; *p;) {
        size_t len = strcspn(p, "&");
        if (len == 8 && strncasecmp(p, "uri=true", 8) == 0)
            uri = 1;
        p += len;
        if (*p == '&')
            p++;
    }
    if (!uri) {
        dbc_fail(err, errlen,
                 "dbconf: query parameters in an SQLite URL need uri=true (they become an SQLite URI filename)");
        return NULL;
    }
    char *kept = drop_uri_param(query);
    if (!kept) {
        dbc_fail(err, errlen, "dbconf: out of memory");
        return NULL;
    }
    char *fn = *kept ? dbc_printf("file:%.*s?%s", (int)(q - path), path, kept)
                     : dbc_printf("file:%.*s", (int)(q - path), path);
    free(kept);
    return fn;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

char *dbc_sqlite_disk_path(const char *filename)
{
    if (!filename || !*filename || strcmp(filename, ":memory:") == 0)
        return NULL;
    if (strncasecmp(filename, "file:", 5) != 0)
        return dbc_strdup(filename);
    if (dbc_url_is_inmemory(filename))
        return NULL;
    const char *p = filename + 5;
    if (strncmp(p, "//", 2) == 0) { /* file://authority/path: the authority is empty or localhost */
        p += 2;
        p += strcspn(p, "/");
    }
    size_t len = strcspn(p, "?#");
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '%' && i + 2 < len && hexval(p[i + 1]) >= 0 && hexval(p[i + 2]) >= 0) {
            out[n++] = (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
            i += 2;
        } else {
            out[n++] = p[i];
        }
    }
    out[n] = 0;
    if (!*out || strcmp(out, ":memory:") == 0) {
        free(out);
        return NULL;
    }
    return out;
}

char *dbc_pg_conninfo(const char *url)
{
    size_t s = scheme_len(url, "postgresql");
    if (!s)
        s = scheme_len(url, "postgres");
    if (s && memchr(url, '+', s)) /* libpq does not know the +driver suffix */
        return dbc_printf("postgresql://%s", url + s);
    return dbc_strdup(url);
}
