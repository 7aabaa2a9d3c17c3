/*
 * GET /dashboard: the operations page (handlers/dashboard.html, compiled in
 * by cmake/embed.cmake). The page is static; it polls GET /v1/stats from
 * the browser. Its Content-Security-Policy lets it run its own inline
 * script and style and talk to this origin only: no other host is ever
 * contacted, and nothing can be framed, submitted or loaded from outside.
 */
#include "handlers/handlers.h"

extern const char bistore_dashboard_html[];
extern const unsigned long bistore_dashboard_html_len;

/* 'unsafe-inline' is the page's own inline script and style: it fetches
 * nothing else (connect-src 'self' is the /v1/stats poll). */
#define DASHBOARD_CSP                                                                              \
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "                  \
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "                     \
    "frame-ancestors 'none'"

void handle_dashboard(struct app *app, const struct request *req, struct response *res)
{
    (void)app;
    (void)req;
    res->status = 200;
    res->raw = bistore_dashboard_html;
    res->raw_len = bistore_dashboard_html_len;
    res->content_type = "text/html; charset=utf-8";
    response_header(res, "Content-Security-Policy", "%s", DASHBOARD_CSP);
    response_header(res, "X-Content-Type-Options", "nosniff");
    response_header(res, "Referrer-Policy", "no-referrer");
    response_header(res, "Cache-Control", "no-cache");
}
