/* render_html.c — --format html: one self-contained page (inline CSS and JS, nothing fetched): the summary, findings
 * by test and by opener with stacks folded (the program's frames first, runtime and library frames behind a toggle),
 * the notes, open connections per process, and a text filter. Every string from the report is escaped. */
#include <stdlib.h>
#include <string.h>

#include "connleak.h"
#include "harness.h"

#ifndef CLK_MESON_VERSION
#define CLK_MESON_VERSION CONNLEAK_VERSION
#endif

/* Untrusted text as HTML text or a quoted attribute's value: markup characters become entities, bytes that are not
 * well-formed UTF-8 U+FFFD, control characters (but tab and newline) '?', and the ':' of a "//" gets an entity so
 * that no URL scheme ("http://") appears in the page as written. */
static void esc(struct clk_buf *b, const char *s)
{
    if (!s)
        return;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        if (*p >= 0x80) {
            int len = clk_utf8_len(p);
            if (len) {
                clk_buf_add(b, (const char *)p, (size_t)len);
                p += len;
            } else {
                clk_buf_puts(b, "\xef\xbf\xbd");
                p++;
            }
            continue;
        }
        switch (*p) {
        case '&': clk_buf_puts(b, "&amp;"); break;
        case '<': clk_buf_puts(b, "&lt;"); break;
        case '>': clk_buf_puts(b, "&gt;"); break;
        case '"': clk_buf_puts(b, "&quot;"); break;
        case '\'': clk_buf_puts(b, "&#39;"); break;
        case ':':
            if (p[1] == '/' && p[2] == '/')
                clk_buf_puts(b, "&#58;");
            else
                clk_buf_putc(b, ':');
            break;
        default:
            clk_buf_putc(b, *p < 0x20 && *p != '\t' && *p != '\n' ? '?' : (char)*p);
        }
        p++;
    }
}

/* The same text lower-cased for the filter's data-text (ASCII only; the filter lower-cases what is typed). */
static void esc_lower(struct clk_buf *b, const char *s)
{
    size_t start = b->n;
    esc(b, s);
    for (size_t i = start; i < b->n; i++)
        if (b->p[i] >= 'A' && b->p[i] <= 'Z')
            b->p[i] = (char)(b->p[i] - 'A' + 'a');
}

static const char *kind_label(enum clk_kind k)
{
    return k == CLK_LEAK ? "leak" : k == CLK_DOUBLE_CLOSE ? "double close" : "unknown close";
}

/* A frame of the runtime rather than the program: libc and the loader, interpreters' C frames, the database
 * libraries, language runtimes, the test framework. Frames of an interpreted language are the user's code. */
static int runtime_frame(const struct clk_frame *f)
{
    if (f->language)
        return 0;
    static const char *const fns[] = {"_start", "__libc_start_main", "__libc_start_call_main", "__libc_start_main_impl",
                                      "start_thread", "clone", "clone3", "__clone", "__clone3"};
    if (f->function)
        for (size_t i = 0; i < sizeof fns / sizeof *fns; i++)
            if (!strcmp(f->function, fns[i]))
                return 1;
    if (f->file && (!strncmp(f->file, "./csu/", 6) || !strncmp(f->file, "../sysdeps/", 11) ||
                    !strncmp(f->file, "./nptl/", 7) || !strncmp(f->file, "../nptl/", 8)))
        return 1;
    const char *m = f->module ? clk_basename(f->module) : NULL;
    if (!m)
        return 0;
    static const char *const libs[] = {"libc.so", "libc-", "ld-linux", "ld64.so", "ld.so", "libpthread", "libdl.",
                                       "libm.so", "libpython", "python2", "python3", "_sqlite3.", "libsqlite3",
                                       "libpq.", "libstdc++", "libgcc_s", "libssl", "libcrypto", "libcriterion",
                                       "libconnleak", "libunwind", "libffi", "libruby", "libperl", "perl",
                                       "ruby", "node", "libjvm", "libgo", "libasan", "libtsan", "libubsan"};
    for (size_t i = 0; i < sizeof libs / sizeof *libs; i++)
        if (!strncmp(m, libs[i], strlen(libs[i])))
            return 1;
    return 0;
}

static void frame_li(struct clk_buf *b, const struct clk_frame *f, int i, const struct clk_render_opts *o)
{
    clk_buf_printf(b, "<li%s><span class=\"no\">#%d</span> <span class=\"fn\">", f->language ? " class=\"py\"" : "", i);
    if (f->function)
        esc(b, f->function);
    else
        clk_buf_puts(b, "??");
    clk_buf_puts(b, "</span>");
    if (f->file) {
        clk_buf_puts(b, " <span class=\"loc\">");
        esc(b, clk_relative_path(o, f->file));
        if (f->line > 0)
            clk_buf_printf(b, ":%d", f->line);
        clk_buf_puts(b, "</span>");
    }
    if (f->language) {
        clk_buf_puts(b, " <span class=\"mod\">(");
        esc(b, f->language);
        clk_buf_puts(b, ")</span>");
    } else if (f->module) {
        clk_buf_puts(b, " <span class=\"mod\">");
        esc(b, clk_basename(f->module));
        if (f->has_offset)
            clk_buf_printf(b, "+0x%llx", (unsigned long long)f->offset);
        clk_buf_puts(b, "</span>");
    }
    clk_buf_puts(b, "</li>");
}

/* A stack, folded: the program's frames in order, then the runtime's behind a <details> toggle (all shown when the
 * program has none). */
static void stack(struct clk_buf *b, const char *title, const struct clk_stack *s, const struct clk_render_opts *o)
{
    clk_buf_printf(b, "<div class=\"stack\"><h4>%s</h4>", title);
    if (!s->n) {
        clk_buf_puts(b, "<p class=\"none\">(no stack recorded)</p></div>");
        return;
    }
    int user = 0;
    for (int i = 0; i < s->n; i++)
        user += !runtime_frame(&s->f[i]);
    clk_buf_puts(b, "<ol class=\"frames\">");
    for (int i = 0; i < s->n; i++)
        if (!user || !runtime_frame(&s->f[i]))
            frame_li(b, &s->f[i], i, o);
    clk_buf_puts(b, "</ol>");
    if (user && user < s->n) {
        clk_buf_printf(b, "<details class=\"runtime\"><summary>%d runtime frame%s (libc, loader, libraries)</summary>"
                          "<ol class=\"frames\">",
                       s->n - user, s->n - user == 1 ? "" : "s");
        for (int i = 0; i < s->n; i++)
            if (runtime_frame(&s->f[i]))
                frame_li(b, &s->f[i], i, o);
        clk_buf_puts(b, "</ol></details>");
    }
    clk_buf_puts(b, "</div>");
}

/* The stack that names a finding: where it was opened, else (an unknown close) where it was closed. */
static const struct clk_stack *naming_stack(const struct clk_finding *f)
{
    return f->opened_at.n || f->kind == CLK_LEAK ? &f->opened_at : &f->closed_at;
}

/* The first frame of the program's own (else the first), by function name: who opened it. */
static const char *opener(const struct clk_finding *f)
{
    const struct clk_stack *s = naming_stack(f);
    for (int i = 0; i < s->n; i++)
        if (!runtime_frame(&s->f[i]) && s->f[i].function)
            return s->f[i].function;
    return clk_first_function(s);
}

static void pid_list(struct clk_buf *b, const struct clk_finding *f)
{
    for (size_t i = 0; i < f->npids && i < 8; i++)
        clk_buf_printf(b, "%s%d", i ? ", " : "", f->pids[i]);
    if (f->npids > 8)
        clk_buf_printf(b, ", ... (%zu in all)", f->npids);
}

/* Everything the filter searches, lower-cased. */
static void filter_text(struct clk_buf *b, const struct clk_finding *f)
{
    clk_buf_puts(b, " data-text=\"");
    const char *fields[] = {kind_label(f->kind), f->backend, f->via, f->target, f->test ? f->test : "(outside tests)",
                            f->fingerprint};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        esc_lower(b, fields[i]);
        clk_buf_putc(b, ' ');
    }
    const struct clk_stack *st[] = {&f->opened_at, &f->closed_at, &f->first_closed_at, &f->thread_created_at};
    for (size_t k = 0; k < 4; k++)
        for (int i = 0; i < st[k]->n; i++) {
            esc_lower(b, st[k]->f[i].function);
            clk_buf_putc(b, ' ');
            if (st[k]->f[i].file) {
                esc_lower(b, clk_basename(st[k]->f[i].file));
                clk_buf_putc(b, ' ');
            }
        }
    clk_buf_puts(b, "\"");
}

/* A finding's test, in a <span class="test">. */
static void test_span(struct clk_buf *b, const char *test)
{
    clk_buf_puts(b, "<span class=\"test\">");
    esc(b, test ? test : "(outside tests)");
    clk_buf_puts(b, "</span>");
}

/* One finding as an article with id "<prefix><id>"; finalized: a connection a garbage collector closed. */
static void finding(struct clk_buf *b, const struct clk_finding *f, const char *prefix, size_t id, int finalized,
                    const struct clk_render_opts *o)
{
    const char *cls = finalized ? "finalized" : f->kind == CLK_LEAK ? "leak" : f->kind == CLK_DOUBLE_CLOSE ? "double" : "unknown";
    clk_buf_printf(b, "<article class=\"finding filterable %s%s\" id=\"%s%zu\"", cls, f->suppressed ? " suppressed" : "",
                   prefix, id);
    filter_text(b, f);
    clk_buf_printf(b, "><h3><span class=\"badge %s\">%s</span> ", cls,
                   finalized ? "closed by the garbage collector"
                   : f->checkout && f->kind == CLK_LEAK ? "checkout never returned" : kind_label(f->kind));
    unsigned long long n = (unsigned long long)f->count;
    if (f->kind == CLK_LEAK)
        clk_buf_printf(b, "<span class=\"count\">%llu</span> ", n);
    else if (n > 1)
        clk_buf_printf(b, "<span class=\"count\">%llu</span>&times; ", n);
    clk_buf_puts(b, "<span class=\"backend\">");
    esc(b, f->backend);
    clk_buf_printf(b, "</span> connection%s", f->kind == CLK_LEAK && n != 1 ? "s" : "");
    if (f->target) {
        clk_buf_puts(b, " to <code class=\"target\">");
        esc(b, f->target);
        clk_buf_puts(b, "</code>");
    }
    const char *who = opener(f);
    if (who) {
        clk_buf_printf(b, " <span class=\"by\">%s <code class=\"opener\">", naming_stack(f) == &f->closed_at ? "closed by"
                                                                                                               : "opened by");
        esc(b, who);
        clk_buf_puts(b, "</code></span>");
    }
    clk_buf_puts(b, "</h3><p class=\"meta\">");
    if (f->baselined)
        clk_buf_puts(b, "<span class=\"badge known\">baselined</span> ");
    if (f->suppressed)
        clk_buf_puts(b, "<span class=\"badge known\">suppressed</span> ");
    clk_buf_puts(b, "test ");
    test_span(b, f->test);
    clk_buf_printf(b, " &middot; pid%s ", f->npids == 1 ? "" : "s");
    pid_list(b, f);
    if (f->via) {
        clk_buf_puts(b, " &middot; via ");
        esc(b, f->via);
    }
    clk_buf_printf(b, " &middot; <span class=\"fp\">%s</span></p>", f->fingerprint);
    switch (f->kind) {
    case CLK_LEAK:
        stack(b, f->checkout ? "checked out at" : "opened at", &f->opened_at, o);
        if (f->thread_created_at.n)
            stack(b, "thread created at", &f->thread_created_at, o);
        if (f->closed_at.n)
            stack(b, "closed by the garbage collector at", &f->closed_at, o);
        break;
    case CLK_DOUBLE_CLOSE:
        stack(b, "closed again at", &f->closed_at, o);
        stack(b, "first closed at", &f->first_closed_at, o);
        stack(b, "opened at", &f->opened_at, o);
        break;
    case CLK_UNKNOWN_CLOSE:
        stack(b, "closed at (never seen open)", &f->closed_at, o);
        break;
    }
    clk_buf_puts(b, "</article>\n");
}

/* A short line naming a finding, for the by-opener and per-process views. */
static void finding_ref(struct clk_buf *b, const struct clk_finding *f, size_t id)
{
    clk_buf_printf(b, "<a href=\"#f%zu\">%s</a> ", id, kind_label(f->kind));
    clk_buf_printf(b, "&times;%llu ", (unsigned long long)f->count);
    esc(b, f->backend);
    if (f->target) {
        clk_buf_puts(b, " <code>");
        esc(b, f->target);
        clk_buf_puts(b, "</code>");
    }
    clk_buf_puts(b, " &middot; ");
    test_span(b, f->test);
}

static int cmp_str(const char *a, const char *b)
{
    if (!a || !b)
        return !a - !b; /* none last */
    return strcmp(a, b);
}

static const struct clk_report *sort_report;
static int by_test(const void *x, const void *y)
{
    size_t i = *(const size_t *)x, j = *(const size_t *)y;
    int c = cmp_str(sort_report->findings[i]->test, sort_report->findings[j]->test);
    return c ? c : (i > j) - (i < j);
}
static int by_opener(const void *x, const void *y)
{
    size_t i = *(const size_t *)x, j = *(const size_t *)y;
    int c = cmp_str(opener(sort_report->findings[i]), opener(sort_report->findings[j]));
    return c ? c : (i > j) - (i < j);
}
static int by_int(const void *x, const void *y)
{
    int a = *(const int *)x, b = *(const int *)y;
    return (a > b) - (a < b);
}

static const char css[] =
    "*{box-sizing:border-box}body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2330;"
    "background:#f4f5f7}header{background:#1d2330;color:#fff;padding:16px 28px}header h1{margin:0;font-size:22px}"
    "header .cmd{font:13px ui-monospace,monospace;color:#c9d1e0;margin:6px 0 0;word-break:break-all}"
    "main{padding:8px 28px 40px;max-width:1280px}h2{font-size:19px;margin:26px 0 10px;border-bottom:2px solid #d7dbe3;"
    "padding-bottom:4px}.tiles{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}.tile{background:#fff;border:1px solid"
    " #d7dbe3;border-radius:8px;padding:10px 14px;flex:1 1 104px}.tile .n{font-size:28px;font-weight:700;display:block}"
    ".tile.bad .n{color:#b3261e}.tile.ok .n{color:#1e7b34}.tile .l{font-size:13px;color:#5b6475}"
    "table{border-collapse:collapse;background:#fff;border:1px solid #d7dbe3}th,td{padding:5px 12px;border-bottom:1px "
    "solid #e6e9ef;text-align:left;font-size:14px}th{background:#eceff4}td.num,th.num{text-align:right}"
    ".filter{position:sticky;top:0;background:#f4f5f7;padding:10px 0;z-index:2;display:flex;gap:12px;align-items:center}"
    ".filter input{font-size:15px;padding:7px 10px;width:420px;border:1px solid #9aa3b5;border-radius:6px}"
    ".filter .shown{color:#5b6475;font-size:14px}details.group{margin:10px 0}details.group>summary{font-weight:600;"
    "cursor:pointer;font-size:16px;padding:4px 0}.finding{background:#fff;border:1px solid #d7dbe3;border-left:5px solid "
    "#b3261e;border-radius:6px;padding:10px 14px;margin:8px 0 8px 14px}.finding.double{border-left-color:#c25e00}"
    ".finding.unknown{border-left-color:#6b5bb3}.finding.finalized{border-left-color:#2f6b1f}.badge.finalized{background:#2f6b1f}"
    ".finding.suppressed{border-left-color:#8a93a5;opacity:.85}"
    ".finding h3{font-size:15px;margin:0 0 4px;font-weight:600}.badge{display:inline-block;font-size:12px;font-weight:700;"
    "text-transform:uppercase;letter-spacing:.03em;padding:1px 7px;border-radius:4px;color:#fff;background:#b3261e;"
    "vertical-align:1px}.badge.double{background:#c25e00}.badge.unknown{background:#6b5bb3}.badge.known{background:#8a93a5}"
    ".count{font-weight:700}code{font:13px ui-monospace,SFMono-Regular,Menlo,monospace;background:#eef1f6;padding:0 4px;"
    "border-radius:3px;word-break:break-all}.meta{margin:0 0 6px;color:#5b6475;font-size:13px}.meta .test{color:#1d2330;"
    "font-weight:600}.fp{font:12px ui-monospace,monospace;color:#8a93a5}.stack h4{margin:6px 0 2px;font-size:13px;"
    "color:#5b6475;font-weight:600}ol.frames{margin:0;padding-left:20px;list-style:none;font:13px/1.5 ui-monospace,SFMono-Regular,"
    "Menlo,monospace}ol.frames .no{color:#8a93a5;display:inline-block;min-width:2.6em}.fn{font-weight:700;color:#0b3d91}"
    "li.py .fn{color:#2f6b1f}.loc{color:#1d2330}.mod{color:#8a93a5}details.runtime{margin:2px 0 4px 24px}"
    "details.runtime>summary{cursor:pointer;color:#5b6475;font-size:13px}details.runtime ol.frames{opacity:.8}"
    ".hidden{display:none!important}.none{color:#8a93a5;margin:0}ul.notes li{margin:4px 0}.note-kind{font-size:12px;"
    "color:#5b6475}.badge.note-info{background:#8a93a5}.badge.note-unseen{background:#c25e00}.badge.note-incomplete{"
    "background:#6b5bb3}.opener-list li{margin:3px 0}#selftest{font:12px monospace;color:#5b6475}footer{color:#8a93a5;"
    "font-size:12px;padding:0 28px 20px}td code.opener,td a code{word-break:normal;white-space:nowrap}";

/* Filter: hides findings (and by-opener and per-process rows) whose text lacks what is typed, and groups left empty.
 * #selftest: opens the first folded stack and tries the filter, and says what happened in #selftest (for the
 * headless-browser test, which sees the DOM after this script ran). */
static const char js[] =
    "(function(){var box=document.getElementById('q'),shown=document.getElementById('shown');"
    "function apply(){var q=box.value.toLowerCase().trim(),n=0,all=0;"
    "document.querySelectorAll('.filterable').forEach(function(e){var t=e.getAttribute('data-text')||'';"
    "var hit=!q||t.indexOf(q)>=0;e.classList.toggle('hidden',!hit);if(e.tagName==='ARTICLE'&&e.closest('#by-test')){"
    "all++;if(hit)n++;}});"
    "document.querySelectorAll('.group').forEach(function(g){g.classList.toggle('hidden',"
    "!g.querySelector('.filterable:not(.hidden)'));});"
    "shown.textContent=q?(n+' of '+all+' findings shown'):(all+' findings');return n;}"
    "box.addEventListener('input',apply);apply();"
    "if(location.hash==='#selftest'){var out=[],d=document.querySelector('details.runtime');"
    "if(d){var was=d.open;d.querySelector('summary').click();out.push('unfold:'+(!was&&d.open?'ok':'failed'));}"
    "else out.push('unfold:none');"
    "var first=document.querySelector('#by-test .finding .opener');if(first){box.value=first.textContent;"
    "var n=apply();out.push('filter:'+(n>=1?'ok':'failed')+' '+n);box.value='';apply();}"
    "var r=document.getElementById('selftest');r.textContent='selftest '+out.join(' ');"
    "r.setAttribute('data-result',out.every(function(s){return s.indexOf('ok')>=0;})?'pass':'fail');}})();";

int clk_render_html(const struct clk_report *r, FILE *out, const struct clk_render_opts *o)
{
    struct clk_buf b = {0};
    uint64_t failing = clk_report_failing(r);
    clk_buf_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                     "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
                     "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n"
                     "<meta name=\"viewport\" content=\"width=device-width\">\n<title>connleak report");
    if (r->ncommand > 0) {
        clk_buf_puts(&b, ": ");
        esc(&b, clk_basename(r->command[0]));
    }
    clk_buf_printf(&b, "</title>\n<style>%s</style></head>\n<body>\n<header><h1>connleak report: %s</h1>"
                       "<p class=\"cmd\">",
                   css, failing ? "connections left open or closed twice" : "no leaks or double closes");
    for (int i = 0; i < r->ncommand; i++) {
        if (i)
            clk_buf_putc(&b, ' ');
        esc(&b, r->command[i]);
    }
    clk_buf_puts(&b, "</p></header>\n<main>\n");

    /* ---- summary ---- */
    clk_buf_puts(&b, "<section id=\"summary\"><h2>Summary</h2><div class=\"tiles\">");
    struct {
        const char *id, *label;
        uint64_t n;
        int bad;
    } tiles[] = {
        {"leaks", "leaked connections", r->summary.leaks, 1},
        {"double_closes", "double closes", r->summary.double_closes, 1},
        {"unknown_closes", "unknown closes", r->summary.unknown_closes, 0},
        {"suppressed", "suppressed", r->summary.suppressed, 0},
        {"baselined", "baselined", r->summary.baselined, 0},
        {"connects", "connects", r->summary.connects, 0},
        {"closes", "closes", r->summary.closes, 0},
        {"processes", "processes", r->summary.processes, 0},
        {"peak_open", "peak open in one process", r->summary.peak_open[0], 0},
        {"closed_by_finalizer", "closed by a garbage collector", r->summary.closed_by_finalizer, 0},
        {"long_held", "held too long", r->nlong_held, 0},
    };
    for (size_t i = 0; i < sizeof tiles / sizeof *tiles; i++)
        clk_buf_printf(&b, "<div class=\"tile%s\"><span class=\"n\" id=\"count-%s\">%llu</span>"
                           "<span class=\"l\">%s</span></div>",
                       tiles[i].bad ? (tiles[i].n ? " bad" : " ok") : "", tiles[i].id, (unsigned long long)tiles[i].n,
                       tiles[i].label);
    clk_buf_puts(&b, "</div>\n");
    /* per backend, from the findings */
    const char *backends[8];
    uint64_t per[8][4] = {{0}};
    size_t nb = 0;
    for (size_t i = 0; i < r->nfindings; i++) {
        const struct clk_finding *f = r->findings[i];
        const char *be = f->backend ? f->backend : "unknown";
        size_t k;
        for (k = 0; k < nb && strcmp(backends[k], be); k++)
            ;
        if (k == nb) {
            if (nb == 8)
                continue;
            backends[nb++] = be;
        }
        per[k][f->suppressed ? 3 : (int)f->kind] += f->count;
    }
    if (nb) {
        clk_buf_puts(&b, "<table id=\"per-backend\"><tr><th>backend</th><th class=\"num\">leaked</th>"
                         "<th class=\"num\">double closes</th><th class=\"num\">unknown closes</th>"
                         "<th class=\"num\">suppressed</th><th class=\"num\">most open at once</th></tr>");
        for (size_t k = 0; k < nb; k++) {
            clk_buf_puts(&b, "<tr><td class=\"backend\">");
            esc(&b, backends[k]);
            /* peak_open[1] is SQLite's, [2] PostgreSQL's (CONNLEAK_RAW_*) */
            int pk = !strcmp(backends[k], "sqlite") ? 1 : !strcmp(backends[k], "postgres") ? 2 : 0;
            clk_buf_printf(&b, "</td><td class=\"num\">%llu</td><td class=\"num\">%llu</td><td class=\"num\">%llu</td>"
                               "<td class=\"num\">%llu</td><td class=\"num\">",
                           (unsigned long long)per[k][0], (unsigned long long)per[k][1], (unsigned long long)per[k][2],
                           (unsigned long long)per[k][3]);
            if (pk)
                clk_buf_printf(&b, "%llu", (unsigned long long)r->summary.peak_open[pk]);
            else
                clk_buf_puts(&b, "&ndash;");
            clk_buf_puts(&b, "</td></tr>");
        }
        clk_buf_puts(&b, "</table>");
    }
    clk_buf_puts(&b, "</section>\n");
    clk_buf_flush(&b, out, CLK_FLUSH_AT);

    /* ---- findings by test ---- */
    size_t nf = 0, *idx = clk_xcalloc(r->nfindings + 1, sizeof *idx);
    for (size_t i = 0; i < r->nfindings; i++)
        if (!r->findings[i]->suppressed)
            idx[nf++] = i;
    clk_buf_puts(&b, "<div class=\"filter\"><input id=\"q\" type=\"search\" placeholder=\"Filter findings: function, "
                     "file, test, target, kind...\" aria-label=\"filter findings\"><span class=\"shown\" id=\"shown\">"
                     "</span><span id=\"selftest\"></span></div>\n");
    clk_buf_puts(&b, "<section id=\"by-test\"><h2>Findings by test</h2>\n");
    if (!nf)
        clk_buf_puts(&b, "<p class=\"none\">No findings.</p>\n");
    sort_report = r;
    qsort(idx, nf, sizeof *idx, by_test);
    for (size_t i = 0; i < nf;) {
        const char *test = r->findings[idx[i]]->test;
        size_t j = i;
        while (j < nf && !cmp_str(r->findings[idx[j]]->test, test))
            j++;
        clk_buf_puts(&b, "<details class=\"group\" open><summary>");
        test_span(&b, test);
        clk_buf_printf(&b, " &mdash; %zu finding%s</summary>\n", j - i, j - i == 1 ? "" : "s");
        for (; i < j; i++) {
            finding(&b, r->findings[idx[i]], "f", idx[i], 0, o);
            clk_buf_flush(&b, out, CLK_FLUSH_AT);
        }
        clk_buf_puts(&b, "</details>\n");
    }
    clk_buf_puts(&b, "</section>\n");

    /* ---- by opener ---- */
    clk_buf_puts(&b, "<section id=\"by-opener\"><h2>Findings by opener</h2>\n");
    if (!nf)
        clk_buf_puts(&b, "<p class=\"none\">No findings.</p>\n");
    qsort(idx, nf, sizeof *idx, by_opener);
    for (size_t i = 0; i < nf;) {
        const char *who = opener(r->findings[idx[i]]);
        size_t j = i;
        uint64_t total = 0;
        while (j < nf && !cmp_str(opener(r->findings[idx[j]]), who))
            total += r->findings[idx[j++]]->count;
        clk_buf_puts(&b, "<details class=\"group\" open><summary><code class=\"opener\">");
        esc(&b, who ? who : "(unknown function)");
        clk_buf_printf(&b, "</code> &mdash; %zu finding%s, %llu in all</summary><ul class=\"opener-list\">\n", j - i,
                       j - i == 1 ? "" : "s", (unsigned long long)total);
        for (; i < j; i++) {
            clk_buf_puts(&b, "<li class=\"filterable\"");
            filter_text(&b, r->findings[idx[i]]);
            clk_buf_putc(&b, '>');
            finding_ref(&b, r->findings[idx[i]], idx[i]);
            clk_buf_puts(&b, "</li>\n");
        }
        clk_buf_puts(&b, "</ul></details>\n");
        clk_buf_flush(&b, out, CLK_FLUSH_AT);
    }
    clk_buf_puts(&b, "</section>\n");

    /* ---- open connections per process ---- */
    clk_buf_puts(&b, "<section id=\"processes\"><h2>Connections open at exit, per process</h2>\n");
    size_t npid = 0, cap = 0;
    int *pids = NULL;
    for (size_t i = 0; i < nf; i++) {
        const struct clk_finding *f = r->findings[idx[i]];
        if (f->kind != CLK_LEAK)
            continue;
        for (size_t k = 0; k < f->npids; k++) {
            size_t m;
            for (m = 0; m < npid && pids[m] != f->pids[k]; m++)
                ;
            if (m < npid)
                continue;
            if (npid == cap)
                pids = clk_xrealloc(pids, (cap = cap ? cap * 2 : 16) * sizeof *pids);
            pids[npid++] = f->pids[k];
        }
    }
    qsort(pids, npid, sizeof *pids, by_int);
    if (!npid)
        clk_buf_puts(&b, "<p class=\"none\">No connection was left open.</p>\n");
    else
        clk_buf_puts(&b, "<table><tr><th>pid</th><th>backend</th><th>target</th><th>opened by</th><th>test</th>"
                         "<th class=\"num\">connections</th></tr>\n");
    for (size_t p = 0; p < npid; p++)
        for (size_t i = 0; i < nf; i++) {
            const struct clk_finding *f = r->findings[idx[i]];
            int in = 0;
            for (size_t k = 0; f->kind == CLK_LEAK && k < f->npids && !in; k++)
                in = f->pids[k] == pids[p];
            if (!in)
                continue;
            clk_buf_puts(&b, "<tr class=\"filterable\"");
            filter_text(&b, f);
            clk_buf_printf(&b, "><td>%d</td><td>", pids[p]);
            esc(&b, f->backend);
            clk_buf_puts(&b, "</td><td><code>");
            esc(&b, f->target ? f->target : "?");
            clk_buf_printf(&b, "</code></td><td><a href=\"#f%zu\"><code class=\"opener\">", idx[i]);
            esc(&b, opener(f) ? opener(f) : "??");
            clk_buf_puts(&b, "</code></a></td><td>");
            esc(&b, f->test ? f->test : "(outside tests)");
            clk_buf_printf(&b, "</td><td class=\"num\">%llu%s</td></tr>\n", (unsigned long long)f->count,
                           f->npids > 1 ? " (over its pids)" : "");
            clk_buf_flush(&b, out, CLK_FLUSH_AT);
        }
    if (npid)
        clk_buf_puts(&b, "</table>\n");
    clk_buf_puts(&b, "</section>\n");
    free(pids);

    /* ---- suppressed ---- */
    size_t ns = r->nfindings - nf;
    if (ns) {
        clk_buf_printf(&b, "<section id=\"suppressed\"><h2>Suppressed</h2><details class=\"group\"><summary>%zu "
                           "suppressed finding%s</summary>\n",
                       ns, ns == 1 ? "" : "s");
        for (size_t i = 0; i < r->nfindings; i++)
            if (r->findings[i]->suppressed) {
                finding(&b, r->findings[i], "f", i, 0, o);
                clk_buf_flush(&b, out, CLK_FLUSH_AT);
            }
        clk_buf_puts(&b, "</details></section>\n");
    }
    free(idx);

    /* ---- closed by a garbage collector (Python's finalizers): reported, failing only with --fail-on finalizer ---- */
    if (r->finalized && r->finalized->nfindings) {
        clk_buf_printf(&b, "<section id=\"finalized\"><h2>Closed by a garbage collector</h2><p class=\"none\">Never "
                           "closed by the program; its runtime's garbage collector or finalizer closed them. %s</p>\n",
                       (r->fail_on & CLK_FAIL_FINALIZER) ? "They fail the run (--fail-on finalizer)."
                                                         : "They do not fail the run (--fail-on finalizer makes them).");
        for (size_t i = 0; i < r->finalized->nfindings; i++) {
            finding(&b, r->finalized->findings[i], "g", i, 1, o);
            clk_buf_flush(&b, out, CLK_FLUSH_AT);
        }
        clk_buf_puts(&b, "</section>\n");
    }

    /* ---- held longer than --held-longer-than: reported, never failing ---- */
    if (r->nlong_held) {
        clk_buf_printf(&b, "<section id=\"long-held\"><h2>Held longer than %llu ms</h2><table><tr><th>pid</th>"
                           "<th>backend</th><th>target</th><th>opened by</th><th>test</th><th class=\"num\">held (ms)</th>"
                           "<th>closed</th></tr>\n",
                       (unsigned long long)r->held_threshold_ms);
        for (size_t i = 0; i < r->nlong_held; i++) {
            const struct clk_long_held *h = &r->long_held[i];
            clk_buf_puts(&b, "<tr class=\"filterable\"");
            filter_text(&b, &h->f);
            clk_buf_printf(&b, "><td>%d</td><td>", h->f.npids ? h->f.pids[0] : 0);
            esc(&b, h->f.backend);
            clk_buf_puts(&b, "</td><td><code>");
            esc(&b, h->f.target ? h->f.target : "?");
            clk_buf_puts(&b, "</code></td><td><code class=\"opener\">");
            esc(&b, opener(&h->f) ? opener(&h->f) : "??");
            clk_buf_puts(&b, "</code></td><td>");
            test_span(&b, h->f.test);
            clk_buf_printf(&b, "</td><td class=\"num\">%llu</td><td>%s</td></tr>\n", (unsigned long long)h->held_ms,
                           h->closed ? "later" : "never (open at exit)");
            clk_buf_flush(&b, out, CLK_FLUSH_AT);
        }
        clk_buf_puts(&b, "</table></section>\n");
    }

    /* ---- notes ---- */
    clk_buf_puts(&b, "<section id=\"notes\"><h2>Notes</h2>\n");
    if (!r->nnotes)
        clk_buf_puts(&b, "<p class=\"none\">No notes.</p>\n");
    else
        clk_buf_puts(&b, "<ul class=\"notes\">\n");
    for (size_t i = 0; i < r->nnotes; i++) {
        enum clk_note_kind k = clk_note_kind(r->notes[i]);
        clk_buf_printf(&b, "<li class=\"note %s\"><span class=\"badge note-%s\">%s%s</span> ", clk_note_kind_name(k),
                       clk_note_kind_name(k), clk_note_kind_name(k), clk_note_fails(r, i) ? ", fails the run" : "");
        esc(&b, r->notes[i]);
        clk_buf_puts(&b, "</li>\n");
    }
    if (r->nnotes)
        clk_buf_puts(&b, "</ul>\n");
    clk_buf_printf(&b, "</section>\n</main>\n<footer>connleak %s</footer>\n<script>%s</script>\n</body></html>\n",
                   CLK_MESON_VERSION, js);
    clk_buf_flush(&b, out, 0);
    free(b.p);
    return ferror(out) ? -1 : 0;
}
