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

/* conninfo: key = value pairs, values optionally single-quoted with backslash escapes */
static void redact_conninfo(const char *in, struct out *o)
{
    const char *p = in;
    int first = 1;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        if (!*p)
            break;
        const char *k = p;
        while (*p && *p != '=' && *p != ' ' && *p != '\t')
            p++;
        size_t klen = (size_t)(p - k);
        while (*p == ' ' || *p == '\t')
            p++;
        const char *vstart = p, *vend;
        if (*p == '=') {
            p++;
            while (*p == ' ' || *p == '\t')
                p++;
            vstart = p;
            if (*p == '\'') {
                p++;
                while (*p && *p != '\'') {
                    if (*p == '\\' && p[1])
                        p++;
                    p++;
                }
                if (*p == '\'')
                    p++;
            } else {
                while (*p && *p != ' ' && *p != '\t' && *p != '\n') {
                    if (*p == '\\' && p[1])
                        p++;
                    p++;
                }
            }
        }
        vend = p;
        if (is_password_key(k, klen))
            continue;
        if (!first)
            put(o, " ", 1);
        first = 0;
        put(o, k, klen);
        if (vend > vstart || vstart[-1] == '=') {
            put(o, "=", 1);
            put(o, vstart, (size_t)(vend - vstart));
        }
    }
}

size_t clk_redact(const char *in, char *out, size_t cap)
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
    else if (strchr(in, '='))
        redact_conninfo(in, &o);
    else
        put(&o, in, strlen(in));
    out[o.n] = 0;
    return o.n;
}
