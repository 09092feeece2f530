/* html_test.c — --format html in a real browser: a run of 3 Criterion tests over 2 backends with a double close is
 * rendered, checked to fetch nothing, loaded in Debian's headless chromium (the DOM after the page's own script ran,
 * with #selftest unfolding a folded stack and trying the filter), and screenshotted into the build directory
 * (docs-html-report.png, kept for a person to look at). Hostile names are escaped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "docs_common.h"

#define TIMEOUT .timeout = 300

static const char *chromium(void)
{
    const char *names[] = {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (access(names[i], X_OK) == 0)
            return names[i];
    cr_skip_test("no chromium to load the page in (Debian: apt-get install -y chromium)");
    return NULL;
}

/* Headless chromium on a file; its stdout (the DOM with --dump-dom). */
static char *browse(const char *browser, const char *dir, const char *what, const char *url)
{
    char profile[4200];
    snprintf(profile, sizeof profile, "--user-data-dir=%s/chromium-profile", dir);
    clk_test_proc p;
    clk_test_exec(ARGS(browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                       "--no-first-run", "--disable-extensions", "--disable-background-networking",
                       "--hide-scrollbars", profile, what, "--window-size=1280,2000", url),
                  NO_DETECTOR, NULL, 180, &p);
    cr_assert_eq(p.status, 0, "%s %s %s: status %d\n--- stderr:\n%s", browser, what, url, p.status,
                 clk_test_excerpt(p.err));
    char *out = strdup(p.out);
    clk_test_proc_free(&p);
    return out;
}

static void assert_self_contained(const char *html, const char *path)
{
    cr_assert(html, "no page at %s", path);
    cr_assert(!clk_test_contains(html, "http://") && !clk_test_contains(html, "https://"),
              "%s names an http(s) URL", path);
    cr_assert(!clk_test_contains(html, "<link") && !clk_test_contains(html, " src=") &&
                  !clk_test_contains(html, "url(") && !clk_test_contains(html, "@import"),
              "%s loads something from outside", path);
    cr_assert(clk_test_contains(html, "<style>") && clk_test_contains(html, "<script>"), "no inline CSS and JS");
}

Test(html, three_tests_two_backends_in_chromium, TIMEOUT)
{
    const char *browser = chromium();
    char *dir = clk_test_mkdtemp();
    char *page = clk_test_path(dir, "report.html");
    clk_test_run r;
    clk_test_connleak(ARGS("--format", "html", "--output", page), ARGS(FX_DOCS_TESTS, "--jobs", "1"), NO_DETECTOR, &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    long long leaks = clk_test_summary(r.report, "leaks"), doubles = clk_test_summary(r.report, "double_closes");
    cr_assert_eq(leaks, 2, "%s", clk_test_dump(r.report));
    cr_assert_eq(doubles, 1, "%s", clk_test_dump(r.report));
    char *html = clk_test_read_file(page, NULL);
    assert_self_contained(html, page);
    /* kept beside the screenshot */
    char *kept = clk_test_path(DOCS_BUILD_DIR, "docs-html-report.html");
    clk_test_write_file(kept, html, strlen(html));

    char url[4300];
    snprintf(url, sizeof url, "file://%s#selftest", page);
    char *dom = browse(browser, dir, "--dump-dom", url);
    const char *want[] = {
        /* the openers */
        "open_settings_cache", "connect_orders_db", "open_session", "end_session_again",
        /* the tests */
        "settings::cache_leaks", "orders::connection_leaks", "session::closed_twice",
        /* the counts, and both backends */
        "id=\"count-leaks\">2<", "id=\"count-double_closes\">1<", "<td class=\"backend\">sqlite</td>",
        "<td class=\"backend\">postgres</td>",
        /* the page's script ran: a folded stack unfolded, the filter found a finding */
        "data-result=\"pass\"", "unfold:ok", "filter:ok",
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        cr_assert(clk_test_contains(dom, want[i]), "chromium's DOM lacks '%s':\n%s", want[i], clk_test_excerpt(dom));
    /* a runtime-frames toggle exists folded in the page, and is open in the DOM the self-test left */
    cr_assert(clk_test_contains(html, "<details class=\"runtime\"><summary>"), "no folded stack in the page");
    cr_assert(clk_test_contains(dom, "<details class=\"runtime\" open=\"\">"), "no unfolded stack in the DOM");

    /* the screenshot, kept under the build directory */
    char *png = clk_test_path(DOCS_BUILD_DIR, "docs-html-report.png");
    unlink(png);
    char shot[4300];
    snprintf(shot, sizeof shot, "--screenshot=%s", png);
    snprintf(url, sizeof url, "file://%s", page);
    free(browse(browser, dir, shot, url));
    size_t len = 0;
    char *img = clk_test_read_file(png, &len);
    cr_assert(img && len > 20000 && !memcmp(img, "\x89PNG\r\n\x1a\n", 8), "no screenshot at %s (%zu bytes)", png, len);
    cr_log_info("screenshot: %s", png);
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

/* Names, files, targets and tests are the program's text: markup in them stays text, and no URL in them turns into
 * one in the page. A JSON report made by hand goes through `connleak report --format html`. */
Test(html, hostile_names_are_escaped, TIMEOUT)
{
    const char *browser = chromium();
    char *dir = clk_test_mkdtemp();
    const char *frame = "{\"function\":\"<script>document.title='pwned'</script>\",\"file\":\"/src/a\\\"b<i>.c\","
                        "\"line\":3,\"module\":\"/bin/x&y\",\"offset\":\"0x10\"}";
    char json[4096];
    snprintf(json, sizeof json,
             "{\"version\":1,\"command\":[\"./t\",\"<b>bold</b>\"],\"summary\":{\"processes\":1,\"connects\":1,"
             "\"closes\":0,\"leaks\":1,\"double_closes\":0,\"unknown_closes\":0,\"suppressed\":0,\"baselined\":0},"
             "\"leaks\":[{\"backend\":\"sqlite\",\"target\":\"https://evil.example/x.js\",\"test\":\"s::<img "
             "onerror=alert(1)>\",\"pids\":[7],\"count\":1,\"fingerprint\":\"0123456789abcdef0123456789abcdef\","
             "\"checkout\":false,\"opened_at\":[%s]}],\"left_field_closes\":[],\"suppressed\":[],"
             "\"notes\":[\"note with <tag> & http://x\"]}",
             frame);
    char *in = docs_write(dir, "hostile.json", json);
    char *page = clk_test_path(dir, "hostile.html");
    clk_test_proc p;
    clk_test_exec(ARGS(clk_test_cli(), "report", "--quiet", "--format", "html", "--output", page, in), NO_DETECTOR, NULL,
                  0, &p);
    cr_assert_eq(p.status, 23, "report: %d %s", p.status, p.err);
    clk_test_proc_free(&p);
    char *html = clk_test_read_file(page, NULL);
    assert_self_contained(html, page);
    cr_assert(!clk_test_contains(html, "<script>document") && !clk_test_contains(html, "<img") &&
                  !clk_test_contains(html, "<b>bold") && !clk_test_contains(html, "<tag>") &&
                  !clk_test_contains(html, "<i>.c"),
              "markup from the report reached the page");
    cr_assert(clk_test_contains(html, "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;"), "%s",
              clk_test_excerpt(html));
    char url[4300];
    snprintf(url, sizeof url, "file://%s", page);
    char *dom = browse(browser, dir, "--dump-dom", url);
    cr_assert(!clk_test_contains(dom, "<title>pwned"), "the script in a function name ran");
    cr_assert(!clk_test_contains(dom, "<img"), "an element from a test name was made");
    cr_assert(clk_test_contains(dom, "evil.example/x.js"), "the target is not shown:\n%s", clk_test_excerpt(dom));
    clk_test_rmtree(dir);
}

Test(html, documented, .timeout = 60)
{
    docs_assert_documented("--format html", "github or html", ".B html", "| `html` |");
}
