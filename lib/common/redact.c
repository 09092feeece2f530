/* redact.c — password removal for connection strings and URLs; no allocation, safe in the host process. */
#include <string.h>
#include <strings.h>

#include "redact.h"

struct out {
    char *p;
    size_t n, cap;
};

static void put(struct out *o, const char *s, size_t len)
{
    for (size_t i = 0; i < len && o->n + 1 < o->cap; i++)
        o->p[o->n++] = s[i];
}

static int is_password_key(const char *k, size_t len)
{
    return (len == 8 && strncasecmp(k, "password", 8) == 0) || (len == 6 && strncasecmp(k, "passwd", 6) == 0) ||
           (len == 3 && strncasecmp(k, "pwd", 3) == 0) || (len == 11 && strncasecmp(k, "passwordsql", 11) == 0);
}

/* URL: scheme://[user[:password]@]host...[?k=v&k=v] */
static void redact_url(const char *in, const char *rest, struct out *o)
{
    put(o, in, (size_t)(rest - in));
    const char *end_auth = rest + strcspn(rest, "/?#");
    const char *at = NULL;
    for (const char *p = rest; p < end_auth; p++)
        if (*p == '@')
            at = p; /* the last @ ends the userinfo */
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        put(o, rest, (size_t)((colon ? colon : at) - rest));
        rest = at; /* keep the '@' */
    }
    const char *q = strchr(rest, '?');
    if (!q) {
        put(o, rest, strlen(rest));
        return;
    }
    put(o, rest, (size_t)(q - rest));
    if (!q[1]) {
        put(o, "?", 1); /* an empty query stays as written */
        return;
    }
    const char *p = q + 1;
    char sep = '?';
    while (*p) {
        size_t len = strcspn(p, "&");
        size_t klen = strcspn(p, "=&");
        if (!is_password_key(p, klen)) {
            put(o, &sep, 1);
            put(o, p, len);
            sep = '&';
        }
        p += len;
        if (*p == '&')
            p++;
    }
}

static size_t redact_structured(const char *in, char *out, size_t cap);

/* ---- anywhere in free text (command-line arguments, values of other keys) ---- */

static int word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* A word naming a password: ends in "password" or "passwd" (PGPASSWORD, --db-password), or is "pwd". */
static int names_password(const char *w, size_t len)
{
    return (len >= 8 && strncasecmp(w + len - 8, "password", 8) == 0) ||
           (len >= 6 && strncasecmp(w + len - 6, "passwd", 6) == 0) || (len == 3 && strncasecmp(w, "pwd", 3) == 0);
}

/* In place (the text only shrinks): scheme://user:secret@host becomes
 * user@host, and the value after a password word and '=' or ':' goes. */
static size_t redact_text(char *s, size_t n)
{
    size_t r = 0, w = 0;
    while (r < n) {
        if (r + 3 <= n && memcmp(s + r, "://", 3) == 0) {
            memmove(s + w, s + r, 3);
            w += 3;
            r += 3;
            size_t auth = r;
            while (auth < n && !strchr("/?# \t\n'\"", s[auth]))
                auth++;
            size_t at = auth;
            for (size_t i = r; i < auth; i++)
                if (s[i] == '@')
                    at = i; /* the last @ ends the userinfo */
            if (at < auth) {
                const char *colon = memchr(s + r, ':', at - r);
                size_t user = colon ? (size_t)(colon - (s + r)) : at - r;
                memmove(s + w, s + r, user);
                w += user;
                r = at;
            }
            continue;
        }
        if (word_char(s[r]) && (r == 0 || !word_char(s[r - 1]))) {
            size_t e = r;
            while (e < n && word_char(s[e]))
                e++;
            /* a file name is no key: /srv/passwd:2024.db, /tmp/my-password=x.db */
            int key = names_password(s + r, e - r) && (r == 0 || s[r - 1] != '/');
            size_t v = e;
            if (v < n && (s[v] == '"' || s[v] == '\'') && key)
                v++; /* "password": "x" */
            while (v < n && (s[v] == ' ' || s[v] == '\t'))
                v++;
            if (key && v < n && (s[v] == '=' || s[v] == ':')) {
                v++;
                while (v < n && (s[v] == ' ' || s[v] == '\t'))
                    v++;
            } else {
                key = 0;
            }
            /* PWD=/home/u is the shell's working directory (ODBC's PWD=secret is not a path) */
            if (key && e - r == 3 && v < n && (s[v] == '/' || s[v] == '~' || s[v] == '.'))
                key = 0;
            if (key) {
                size_t end = v;
                if (end < n && (s[end] == '\'' || s[end] == '"')) {
                    char q = s[end++];
                    while (end < n && s[end] != q)
                        end += s[end] == '\\' && end + 1 < n ? 2 : 1;
                    if (end < n)
                        end++;
                } else {
                    while (end < n && !strchr(" \t\n&;,)'\"", s[end]))
                        end++;
                }
                memmove(s + w, s + r, v - r); /* the key and its '=', not the value */
                w += v - r;
                r = end;
                continue;
            }
            memmove(s + w, s + r, e - r);
            w += e - r;
            r = e;
            continue;
        }
        s[w++] = s[r++];
    }
    s[w] = 0;
    return w;
}

int clk_redact_takes_next(const char *arg)
{
    if (!arg || arg[0] != '-' || strchr(arg, '='))
        return 0;
    while (*arg == '-')
        arg++;
    size_t len = strlen(arg);
    for (size_t i = 0; i < len; i++)
        if (!word_char(arg[i]))
            return 0;
    /* --no-password, --without-password: a switch, no value follows */
    if (!strncasecmp(arg, "no-", 3) || !strncasecmp(arg, "no_", 3) || !strncasecmp(arg, "without", 7))
        return 0;
    return names_password(arg, len);
}

size_t clk_redact(const char *in, char *out, size_t cap)
{
    size_t n = redact_structured(in, out, cap);
    /* then whatever is left anywhere inside: a URL in another key's value, a password option */
    return redact_text(out, n);
}

size_t clk_redact_arg(const char *arg, const char *prev, char *out, size_t cap)
{
    /* psql's --password is a switch: what follows it may be another option */
    if (clk_redact_takes_next(prev) && arg[0] != '-') {
        struct out o = {out, 0, cap};
        if (!cap)
            return 0;
        put(&o, "***", 3);
        out[o.n] = 0;
        return o.n;
    }
    return clk_redact(arg, out, cap);
}

static size_t redact_structured(const char *in, char *out, size_t cap)
{
    struct out o = {out, 0, cap};
    if (!cap)
        return 0;
    if (!in)
        in = "";
    const char *scheme_end = strstr(in, "://");
    if (scheme_end && (size_t)(scheme_end - in) < 32 && strcspn(in, " =") > (size_t)(scheme_end - in))
        redact_url(in, scheme_end + 3, &o);
    else if (strncmp(in, "file:", 5) == 0)
        redact_url(in, in + 5, &o); /* SQLite URI: only its query could carry a secret */
    else
        put(&o, in, strlen(in)); /* conninfo and the rest: redact_text, in place, spacing kept */
    out[o.n] = 0;
    return o.n;
}
