/* http_internal.h — what http.c (libmicrohttpd glue) shares with http_api.c (routes) and
 * http_params.c (query parsing), and with their tests: a request and a response as plain data. */
#ifndef ACTIOND_DAEMON_HTTP_INTERNAL_H
#define ACTIOND_DAEMON_HTTP_INTERNAL_H

#include "daemon/http.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 16 hex digits of id, 8 of checksum, and the NUL. */
#define HTTP_CURSOR_SIZE 25
#define HTTP_LIMIT_DEFAULT 100
/* The live-event stream: the one route that also takes the token as ?token=. */
#define HTTP_LIVE_PATH "/api/v1/events/live"

struct http_param {
    const char *key;
    const char *value; /* NULL for "?key" without '=' */
    size_t value_len;  /* may count an embedded NUL, which is refused */
};

struct http_request {
    const char *method;
    const char *path;      /* percent-decoded by MHD */
    size_t query_len;      /* raw bytes after '?' */
    struct http_param params[HTTP_MAX_PARAMS];
    size_t n_params;
    bool too_many_params;
};

struct http_response {
    int status;
    char *body; /* malloc'd */
    size_t len;
    const char *content_type;
    const char *allow;        /* for 405 */
    bool sse;                 /* route /api/v1/events/live: http.c starts the stream */
};

struct http_ctx {
    struct daemon_state *state;
    struct store *store;
    int sse_max; /* live-event clients at once */
    struct daemon_snapshots *snapshots; /* NULL: none */
    struct http_page_cache *cache;      /* NULL: every list page is made afresh */
};

/* Routes one request (authentication already passed) into rs. Never fails: out of memory
 * becomes a 500 without a body. */
void http_api_handle(const struct http_ctx *c, const struct http_request *rq,
                     struct http_response *rs);
/* rs as {"error": msg} with this status. */
void http_api_error(struct http_response *rs, int status, const char *msg);

/* ---- query parameters (http_params.c) ---- */

enum http_list_kind { HTTP_LIST_EVENTS, HTTP_LIST_DETECTIONS, HTTP_LIST_KINDS };

/* The filters of a list route, with the strings they point to. */
struct http_list_query {
    struct store_query q;
    char stream[DAEMON_STREAM_ID_SIZE];
    char action[DAEMON_ACTION_SIZE];
    uint32_t filter_sum; /* binds a cursor to the filters it was made for */
};

/* Times are ms since the epoch ("1767225600000") or RFC 3339 / ISO-8601 UTC or with an offset
 * ("2026-01-01T00:00:00Z", "2026-01-01T01:00:00.250+01:00"), within 1970..9999. */
int http_parse_time(const char *s, int64_t *ms);
/* 1..STORE_QUERY_LIMIT_MAX, decimal digits only. */
int http_parse_limit(const char *s, int *limit);
/* A stream id as config/ allows it: a-z, 0-9, '_', '-', 1..CONFIG_STREAM_ID_MAX. */
bool http_stream_id_ok(const char *s);
/* An action name: 1..63 bytes of UTF-8 without control characters. */
bool http_action_ok(const char *s);
/* Opaque cursors: the last id of a page, checksummed together with the filters. */
void http_cursor_encode(int64_t id, uint32_t filter_sum, char out[HTTP_CURSOR_SIZE]);
int http_cursor_decode(const char *s, uint32_t filter_sum, int64_t *id);
/* Parses stream, action, since, until, limit and cursor; anything else, a repeat, a bad value
 * is ERR_INVAL with a message fit for the client in em. */
int http_list_query_parse(const struct http_request *rq, enum http_list_kind kind,
                          struct http_list_query *out, struct err_msg *em);

/* ---- the first page of each list, kept between commits (http_cache.c) ---- */

struct http_page_cache;

/* ERR_NOMEM. */
int http_page_cache_new(struct http_page_cache **out);
/* NULL does nothing. */
void http_page_cache_free(struct http_page_cache *c);
/* 0 with a malloc'd copy of the page of this kind when one made at `generation`
 * (store_generation() read before the caller's query would begin) or later is kept; waits
 * while another caller is making it. ERR_NOTFOUND: the caller is to make the page now and
 * must then call http_page_cache_put, with a NULL body if it failed. ERR_NOMEM. */
int http_page_cache_get(struct http_page_cache *c, enum http_list_kind kind, uint64_t generation,
                        char **body, size_t *len);
/* Keeps a copy of body as the page made at `generation` (unless a newer one is kept) and
 * wakes the callers waiting for it. body NULL: making it failed; nothing is kept. */
void http_page_cache_put(struct http_page_cache *c, enum http_list_kind kind, uint64_t generation,
                         const char *body, size_t len);

#endif
