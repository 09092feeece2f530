/* json_out.c — a streaming JSON writer laid out exactly as jansson's dumps (compact or indented), without building a tree. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

int clk_utf8_len(const unsigned char *p)
{
    if (p[0] < 0x80)
        return 1;
    int len = (p[0] & 0xe0) == 0xc0 ? 2 : (p[0] & 0xf0) == 0xe0 ? 3 : (p[0] & 0xf8) == 0xf0 ? 4 : 0;
    unsigned cp = p[0] & (0x7f >> len);
    for (int i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    static const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
    return len && cp >= min[len] && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff) ? len : 0;
}

void clk_json_init(struct clk_json *j, FILE *out, int indent, const char *bad_byte)
{
    memset(j, 0, sizeof *j);
    j->out = out;
    j->indent = indent;
    j->bad_byte = bad_byte;
}

int clk_json_end(struct clk_json *j)
{
    clk_buf_flush(&j->b, j->out, 0);
    free(j->b.p);
    j->b.p = NULL;
    return ferror(j->out) ? -1 : 0;
}

void clk_json_raw(struct clk_json *j, const char *s)
{
    clk_buf_puts(&j->b, s);
}

static void newline(struct clk_json *j, int depth)
{
    static const char spaces[] = "                                ";
    clk_buf_putc(&j->b, '\n');
    for (size_t n = (size_t)depth * (size_t)j->indent; n;) {
        size_t k = n < sizeof spaces - 1 ? n : sizeof spaces - 1;
        clk_buf_add(&j->b, spaces, k);
        n -= k;
    }
}

/* What goes before a value or a key: nothing after a key, else a comma after a sibling,
 * and with indentation a new line (jansson's layout: "[" NL item "," NL item NL "]"). */
static void before(struct clk_json *j)
{
    if (j->after_key) {
        j->after_key = 0;
        return;
    }
    if (!j->depth)
        return;
    if (!j->empty)
        clk_buf_putc(&j->b, ',');
    if (j->indent)
        newline(j, j->depth);
    j->empty = 0;
}

/* Bytes that go out as they are: printable ASCII but the quote and the backslash; DEL too, as jansson left it. */
static const unsigned char plain[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    R16(0), R16(0),
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* '"' */
    R16(1), R16(1),
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* '\\' */
    R16(1), R16(1),
#undef R16
};

/* Whether any of 8 bytes is not plain: a control, a quote, a backslash or not ASCII (bit tricks
 * that are exact for "any", so most of a path is copied a word at a time). */
static inline int special8(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\');
    return (((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((bs - ones) & ~bs) | w) & highs ? 1 : 0;
}

/* Escapes as jansson does: \" \\ \b \f \n \r \t, other controls \u00XX, the rest as is.
 * A byte that is not part of well-formed UTF-8 (a file name is bytes) becomes j->bad_byte.
 * Written straight into the buffer, with room made once for the worst case. */
static void string(struct clk_json *j, const char *s)
{
    size_t n = strlen(s), nbad = strlen(j->bad_byte);
    clk_buf_reserve(&j->b, n * (nbad > 6 ? nbad : 6) + 2);
    char *o = j->b.p + j->b.n;
    *o++ = '"';
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        uint64_t w;
        if (end - p >= 8 && (memcpy(&w, p, 8), !special8(w))) {
            memcpy(o, p, 8);
            o += 8;
            p += 8;
            continue;
        }
        unsigned char c = *p;
        if (plain[c]) {
            *o++ = (char)c;
            p++;
            continue;
        }
        if (c >= 0x80) {
            int len = clk_utf8_len(p);
            if (len) {
                memcpy(o, p, (size_t)len);
                o += len;
                p += len;
            } else {
                memcpy(o, j->bad_byte, nbad);
                o += nbad;
                p++;
            }
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            memcpy(o, "u00", 3);
            o[3] = "0123456789ABCDEF"[c >> 4];
            o[4] = "0123456789ABCDEF"[c & 15];
            o += 5;
        }
        p++;
    }
    *o++ = '"';
    *o = 0;
    j->b.n = (size_t)(o - j->b.p);
}

void clk_json_open(struct clk_json *j, char bracket)
{
    before(j);
    clk_buf_putc(&j->b, bracket);
    j->depth++;
    j->empty = 1;
}

void clk_json_close(struct clk_json *j, char bracket)
{
    j->depth--;
    if (!j->empty && j->indent)
        newline(j, j->depth);
    clk_buf_putc(&j->b, bracket);
    j->empty = 0;
}

void clk_json_flush(struct clk_json *j)
{
    clk_buf_flush(&j->b, j->out, CLK_FLUSH_AT);
}

size_t clk_json_value_start(struct clk_json *j)
{
    before(j);
    j->after_key = 1;
    return j->b.n;
}

void clk_json_value_text(struct clk_json *j, const char *text, size_t n)
{
    before(j);
    clk_buf_add(&j->b, text, n);
}

void clk_json_key_n(struct clk_json *j, const char *key, size_t n)
{
    before(j);
    clk_buf_putc(&j->b, '"');
    clk_buf_add(&j->b, key, n);
    clk_buf_add(&j->b, "\": ", j->indent ? 3 : 2);
    j->after_key = 1;
}

void clk_json_str(struct clk_json *j, const char *s)
{
    if (!s) {
        clk_json_null(j);
        return;
    }
    before(j);
    string(j, s);
}

void clk_json_int(struct clk_json *j, long long v)
{
    before(j);
    clk_buf_int(&j->b, v);
}

void clk_json_bool(struct clk_json *j, int v)
{
    before(j);
    clk_buf_puts(&j->b, v ? "true" : "false");
}

void clk_json_null(struct clk_json *j)
{
    before(j);
    clk_buf_add(&j->b, "null", 4);
}
