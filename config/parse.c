/* parse.c — walks libyaml's events with the schema as the map: each value lands in its field,
 * each problem becomes a FILE:LINE:COL diagnostic. Only the schema's shape is ever held in
 * memory; anything else is skipped event by event, so no input can make it grow. */
#include "config/internal.h"
#include "common/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* Longest key name quoted in a message, and longest dotted path built from them. */
#define NAME_MAX_SHOWN 64
#define DISP_MAX 160

/* Where a key was given in the current mapping scope; line 0: not given. Messages about
 * the value point at the value; "first at line" names the key's line (a block mapping's
 * value starts on the next one). */
struct seen {
    size_t line, col; /* the value */
    size_t key_line;
    enum config_secret_form form;
};

struct parse {
    yaml_parser_t yp;
    const char *file;
    const struct config_source *src;
    struct config *cfg;
    struct config_diags *d;
    int depth;
    bool stop;  /* a syntax error, too deep, or too many errors: no more events */
    bool nomem;
    bool said_alias, said_anchor, said_tag; /* each said once: one is enough to fix them all */
    struct seen top[CONFIG_MAX_KEYS];  /* keys outside streams */
    struct seen strm[CONFIG_MAX_KEYS]; /* keys of the stream being read */
    size_t id_line[CONFIG_MAX_STREAMS];
};

struct pos {
    size_t line, col;
};

static struct pos pos_of(yaml_mark_t m)
{
    return (struct pos){m.line + 1, m.column + 1};
}

static void report(struct parse *p, enum config_diag_kind kind, struct pos at, const char *key,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void report(struct parse *p, enum config_diag_kind kind, struct pos at, const char *key,
                   const char *fmt, ...)
{
    if (p->stop && kind == CONFIG_DIAG_ERROR && p->d->errors >= CONFIG_MAX_ERRORS)
        return;
    char msg[CONFIG_DIAG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    config_diag_add(p->d, kind, "%s:%zu:%zu: %s%s%s%s%s", p->file, at.line, at.col,
                    kind == CONFIG_DIAG_WARNING ? "warning: " : "", key ? "key '" : "",
                    key ? key : "", key ? "': " : "", msg);
    if (kind == CONFIG_DIAG_ERROR && p->d->errors == CONFIG_MAX_ERRORS) {
        config_diag_add(p->d, CONFIG_DIAG_ERROR, "%s: stopped after %d errors", p->file,
                        CONFIG_MAX_ERRORS);
        p->stop = true;
    }
}

static void report_syntax(struct parse *p)
{
    const yaml_parser_t *y = &p->yp;
    struct pos at = pos_of(y->problem_mark);
    if (y->error == YAML_MEMORY_ERROR) {
        p->nomem = true;
        report(p, CONFIG_DIAG_ERROR, at, NULL, "out of memory");
    } else if (y->error == YAML_READER_ERROR) {
        config_source_position(p->src, y->problem_offset, &at.line, &at.col);
        report(p, CONFIG_DIAG_ERROR, at, NULL, "YAML: %s", y->problem);
    } else if (y->context) {
        report(p, CONFIG_DIAG_ERROR, at, NULL, "YAML syntax: %s (%s at line %zu)", y->problem,
               y->context, (size_t)y->context_mark.line + 1);
    } else {
        report(p, CONFIG_DIAG_ERROR, at, NULL, "YAML syntax: %s",
               y->problem ? y->problem : "unknown error");
    }
    p->stop = true;
}

/* Anchors and aliases are refused outright: nothing here needs them, and it is the simplest
 * defence against "billion laughs" — no alias is ever expanded. */
static void check_props(struct parse *p, const yaml_event_t *ev)
{
    const yaml_char_t *anchor = NULL, *tag = NULL;
    if (ev->type == YAML_SCALAR_EVENT)
        anchor = ev->data.scalar.anchor, tag = ev->data.scalar.tag;
    else if (ev->type == YAML_SEQUENCE_START_EVENT)
        anchor = ev->data.sequence_start.anchor, tag = ev->data.sequence_start.tag;
    else if (ev->type == YAML_MAPPING_START_EVENT)
        anchor = ev->data.mapping_start.anchor, tag = ev->data.mapping_start.tag;
    struct pos at = pos_of(ev->start_mark);
    if (ev->type == YAML_ALIAS_EVENT && !p->said_alias) {
        p->said_alias = true;
        report(p, CONFIG_DIAG_ERROR, at, NULL,
               "YAML aliases (*%.*s) are not supported; write the value out", NAME_MAX_SHOWN,
               (const char *)ev->data.alias.anchor);
    }
    if (anchor && !p->said_anchor) {
        p->said_anchor = true;
        report(p, CONFIG_DIAG_ERROR, at, NULL, "YAML anchors (&%.*s) are not supported",
               NAME_MAX_SHOWN, (const char *)anchor);
    }
    if (tag && !p->said_tag) {
        /* libyaml expands "!!str" to the long form; show it as it was written. */
        static const char core[] = "tag:yaml.org,2002:";
        const char *t = (const char *)tag;
        bool is_core = strncmp(t, core, sizeof core - 1) == 0;
        p->said_tag = true;
        report(p, CONFIG_DIAG_ERROR, at, NULL, "YAML tags (%s%.*s) are not supported",
               is_core ? "!!" : "", NAME_MAX_SHOWN, is_core ? t + sizeof core - 1 : t);
    }
}

/* The next event, or false once parsing has stopped. */
static bool next(struct parse *p, yaml_event_t *ev)
{
    if (p->stop)
        return false;
    if (!yaml_parser_parse(&p->yp, ev)) {
        report_syntax(p);
        return false;
    }
    check_props(p, ev);
    return true;
}

static bool is_start(const yaml_event_t *ev)
{
    return ev->type == YAML_SEQUENCE_START_EVENT || ev->type == YAML_MAPPING_START_EVENT;
}

static bool enter(struct parse *p, const yaml_event_t *ev)
{
    if (++p->depth > CONFIG_MAX_DEPTH) {
        report(p, CONFIG_DIAG_ERROR, pos_of(ev->start_mark), NULL,
               "nested deeper than %d levels", CONFIG_MAX_DEPTH);
        p->stop = true;
    }
    return !p->stop;
}

/* Consumes the rest of a node whose first event is ev, holding nothing. */
static void skip_node(struct parse *p, const yaml_event_t *first)
{
    if (!is_start(first) || !enter(p, first))
        return;
    int open = 1;
    while (open > 0) {
        yaml_event_t ev;
        if (!next(p, &ev))
            return;
        if (is_start(&ev)) {
            open++;
            if (!enter(p, &ev)) {
                yaml_event_delete(&ev);
                return;
            }
        } else if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) {
            open--;
            p->depth--;
        }
        yaml_event_delete(&ev);
    }
}

static bool is_null(const yaml_event_t *ev)
{
    if (ev->type == YAML_ALIAS_EVENT)
        return true; /* already refused; read on as if absent */
    if (ev->type != YAML_SCALAR_EVENT || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)ev->data.scalar.value;
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
           !strcmp(v, "NULL");
}

static const char *node_kind(const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_MAPPING_START_EVENT: return "a mapping";
    case YAML_SEQUENCE_START_EVENT: return "a list";
    default: return "a single value";
    }
}

static struct seen *seen_for(struct parse *p, const struct config_key *k)
{
    return &(config_key_in_stream(k) ? p->strm : p->top)[config_key_index(k)];
}

static void parse_mapping(struct parse *p, const char *prefix, const char *disp, void *base,
                          const yaml_event_t *start);
static void parse_streams(struct parse *p, const yaml_event_t *start);

/* One item of a list of names; false once the list is full, so the rest is only skipped. */
static bool parse_item(struct parse *p, const struct config_key *k, const char *disp, void *base,
                       const yaml_event_t *ev)
{
    struct pos at = pos_of(ev->start_mark);
    const struct config_strlist *l = (const void *)((const char *)base + k->offset);
    char why[CONFIG_WHY_LEN];
    if (ev->type != YAML_SCALAR_EVENT || is_null(ev)) {
        report(p, CONFIG_DIAG_ERROR, at, disp, "expected a name, got %s",
               ev->type == YAML_SCALAR_EVENT ? "nothing" : node_kind(ev));
    } else if (strlen((const char *)ev->data.scalar.value) != ev->data.scalar.length) {
        report(p, CONFIG_DIAG_ERROR, at, disp, "contains a NUL character");
    } else if ((double)l->count >= k->max) {
        report(p, CONFIG_DIAG_ERROR, at, disp, "more than %.0f items", k->max);
        return false;
    } else {
        int rc = config_value_append(k, base, (const char *)ev->data.scalar.value, why);
        if (rc == ERR_NOMEM)
            p->nomem = p->stop = true;
        else if (rc)
            report(p, CONFIG_DIAG_ERROR, at, disp, "%s", why);
    }
    return true;
}

static void parse_list(struct parse *p, const struct config_key *k, const char *disp,
                       void *base, const yaml_event_t *start)
{
    if (!enter(p, start))
        return;
    bool room = true;
    for (size_t i = 0;; i++) {
        yaml_event_t ev;
        if (!next(p, &ev))
            return;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        char item[DISP_MAX + 24];
        snprintf(item, sizeof item, "%s[%zu]", disp, i);
        if (room)
            room = parse_item(p, k, item, base, &ev);
        skip_node(p, &ev);
        yaml_event_delete(&ev);
    }
    p->depth--;
}

static void parse_secret(struct parse *p, const struct config_key *k,
                         enum config_secret_form form, void *base, const char *disp,
                         const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    struct pos at = pos_of(ev->start_mark);
    char why[CONFIG_WHY_LEN], *value = NULL, *path = NULL;
    bool world = false;
    int rc;
    if (form == CONFIG_SECRET_INLINE) {
        rc = config_secret_check(s, why);
        if (rc == 0 && !(value = strdup(s)))
            rc = ERR_NOMEM;
        world = p->src->world_readable;
    } else if (form == CONFIG_SECRET_FILE) {
        path = config_path_join(p->src->dir, s, why);
        rc = path ? config_secret_from_file(path, &value, &world, why) : ERR_CONFIG;
    } else {
        rc = config_secret_from_env(s, &value, why);
    }
    if (rc == ERR_NOMEM)
        p->nomem = p->stop = true;
    else if (rc)
        report(p, CONFIG_DIAG_ERROR, at, disp, "%s", why);
    else if (world && form == CONFIG_SECRET_INLINE)
        report(p, CONFIG_DIAG_WARNING, at, disp,
               "secret written in a file every user can read; use %s_file or %s_env", k->path,
               k->path);
    else if (world)
        report(p, CONFIG_DIAG_WARNING, at, disp, "%s is readable by every user (chmod o-r)",
               path);
    free(path);
    if (rc == 0) {
        char **field = (char **)((char *)base + k->offset);
        config_secret_wipe(*field);
        *field = value;
    }
}

static void parse_scalar(struct parse *p, const struct config_key *k,
                         enum config_secret_form form, void *base, const char *disp,
                         const yaml_event_t *ev)
{
    struct pos at = pos_of(ev->start_mark);
    if (ev->type != YAML_SCALAR_EVENT && ev->type != YAML_ALIAS_EVENT) {
        char b[128];
        config_bounds_format(k, b, sizeof b);
        report(p, CONFIG_DIAG_ERROR, at, disp, "expected a single %s%s%s, got %s",
               config_type_name(k->type), *b ? " " : "", b, node_kind(ev));
        skip_node(p, ev);
        return;
    }
    if (is_null(ev)) {
        if (k->flags & CONFIG_KEY_REQUIRED)
            report(p, CONFIG_DIAG_ERROR, at, disp, "required, but given no value");
        return;
    }
    if (strlen((const char *)ev->data.scalar.value) != ev->data.scalar.length) {
        report(p, CONFIG_DIAG_ERROR, at, disp, "contains a NUL character");
        return;
    }
    if (k->type == CONFIG_T_SECRET) {
        parse_secret(p, k, form, base, disp, ev);
        return;
    }
    char why[CONFIG_WHY_LEN];
    int rc = config_value_set(k, base, (const char *)ev->data.scalar.value, p->src->dir, why);
    if (rc == ERR_NOMEM)
        p->nomem = p->stop = true;
    else if (rc)
        report(p, CONFIG_DIAG_ERROR, at, disp, "%s", why);
}

static void parse_value(struct parse *p, const struct config_key *k,
                        enum config_secret_form form, void *base, const char *disp,
                        const yaml_event_t *ev)
{
    enum { MAP, SEQ, SCALAR } want = k->type == CONFIG_T_SECTION ? MAP
                                   : (k->type == CONFIG_T_STREAMS || k->type == CONFIG_T_STRLIST)
                                       ? SEQ
                                       : SCALAR;
    if (want == SCALAR) {
        parse_scalar(p, k, form, base, disp, ev);
    } else if (is_null(ev)) {
        return; /* an empty section or list: the defaults stand */
    } else if (want == MAP && ev->type == YAML_MAPPING_START_EVENT) {
        parse_mapping(p, k->path, disp, base, ev);
    } else if (want == SEQ && ev->type == YAML_SEQUENCE_START_EVENT) {
        if (k->type == CONFIG_T_STREAMS)
            parse_streams(p, ev);
        else
            parse_list(p, k, disp, base, ev);
    } else {
        report(p, CONFIG_DIAG_ERROR, pos_of(ev->start_mark), disp, "expected %s, got %s",
               want == MAP ? "a mapping of keys" : "a list", node_kind(ev));
        skip_node(p, ev);
    }
}

static void join_disp(char *out, const char *disp, const char *name)
{
    snprintf(out, DISP_MAX, "%s%s%.*s%s", disp, *disp ? "." : "", NAME_MAX_SHOWN, name,
             strlen(name) > NAME_MAX_SHOWN ? "..." : "");
}

static void unknown_key(struct parse *p, const char *prefix, const char *disp, const char *name,
                        struct pos at)
{
    const char *hint = config_key_suggest(prefix, name);
    if (hint)
        report(p, CONFIG_DIAG_ERROR, at, disp, "unknown key (did you mean '%s'?)", hint);
    else
        report(p, CONFIG_DIAG_ERROR, at, disp, "unknown key");
}

static void given_twice(struct parse *p, const struct config_key *k, const struct seen *first,
                        enum config_secret_form form, const char *disp, struct pos at)
{
    static const char *const suffix[] = {"", "_file", "_env"};
    if (form == first->form) {
        report(p, CONFIG_DIAG_ERROR, at, disp, "given twice (first at line %zu)",
               first->key_line);
        return;
    }
    const char *leaf = strrchr(k->path, '.');
    report(p, CONFIG_DIAG_ERROR, at, disp,
           "secret already given as '%s%s' at line %zu; give it one way only",
           leaf ? leaf + 1 : k->path, suffix[first->form], first->key_line);
}

/* One "key: value" pair of the mapping at prefix; kev is the key's event. */
static void parse_entry(struct parse *p, const char *prefix, const char *disp, void *base,
                        const yaml_event_t *kev)
{
    yaml_event_t vev;
    struct pos at = pos_of(kev->start_mark);
    if (kev->type != YAML_SCALAR_EVENT) {
        report(p, CONFIG_DIAG_ERROR, at, *disp ? disp : NULL, "keys must be plain names, not %s",
               node_kind(kev));
        skip_node(p, kev);
        if (next(p, &vev)) {
            skip_node(p, &vev);
            yaml_event_delete(&vev);
        }
        return;
    }
    const char *name = (const char *)kev->data.scalar.value;
    char path[DISP_MAX];
    join_disp(path, disp, name);
    if (!next(p, &vev))
        return;
    enum config_secret_form form = CONFIG_SECRET_INLINE;
    const struct config_key *k = strlen(name) == kev->data.scalar.length
                                     ? config_key_find(prefix, name, &form)
                                     : NULL;
    struct seen *seen = k ? seen_for(p, k) : NULL;
    if (!k) {
        unknown_key(p, prefix, path, name, at);
        skip_node(p, &vev);
    } else if (seen->line) {
        given_twice(p, k, seen, form, path, at);
        skip_node(p, &vev);
    } else {
        struct pos v = pos_of(vev.start_mark);
        *seen = (struct seen){v.line, v.col, at.line, form};
        parse_value(p, k, form, base, path, &vev);
    }
    yaml_event_delete(&vev);
}

static void check_required(struct parse *p, const char *prefix, const char *disp, struct pos at)
{
    for (size_t i = 0; i < config_n_keys; i++) {
        const struct config_key *k = &config_keys[i];
        if (!(k->flags & CONFIG_KEY_REQUIRED) || !config_key_is_child(k, prefix) ||
            seen_for(p, k)->line)
            continue;
        char path[DISP_MAX];
        join_disp(path, disp, strrchr(k->path, '.') ? strrchr(k->path, '.') + 1 : k->path);
        report(p, CONFIG_DIAG_ERROR, at, path, "required, but missing");
    }
}

static void parse_mapping(struct parse *p, const char *prefix, const char *disp, void *base,
                          const yaml_event_t *start)
{
    if (!enter(p, start))
        return;
    for (;;) {
        yaml_event_t kev;
        if (!next(p, &kev))
            return;
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            break;
        }
        parse_entry(p, prefix, disp, base, &kev);
        yaml_event_delete(&kev);
        if (p->stop)
            return;
    }
    p->depth--;
    check_required(p, prefix, disp, pos_of(start->start_mark));
}

/* "streams[2].thresholds.exit" from the schema path of a stream key. */
static void stream_disp(char *out, size_t i, const char *path)
{
    snprintf(out, DISP_MAX, "streams[%zu]%s", i, path + strlen("streams[]"));
}

/* The position of a stream key if it was given, else fallback. */
static struct pos stream_pos(struct parse *p, const char *path, struct pos fallback)
{
    const struct seen *s = seen_for(p, config_key_by_path(path));
    return s->line ? (struct pos){s->line, s->col} : fallback;
}

static void check_stream(struct parse *p, size_t i, struct pos start)
{
    const struct config_stream *s = &p->cfg->streams[i];
    char disp[DISP_MAX];
    if (s->thresholds.exit > s->thresholds.enter) {
        bool exit_given = seen_for(p, config_key_by_path("streams[].thresholds.exit"))->line;
        const char *which = exit_given ? "streams[].thresholds.exit" : "streams[].thresholds.enter";
        stream_disp(disp, i, which);
        report(p, CONFIG_DIAG_ERROR, stream_pos(p, which, start), disp,
               "exit (%g) must not be above enter (%g)", s->thresholds.exit,
               s->thresholds.enter);
    }
    struct pos id_at = stream_pos(p, "streams[].id", start);
    p->id_line[i] = id_at.line;
    for (size_t j = 0; s->id && j < i; j++) {
        if (p->cfg->streams[j].id && strcmp(p->cfg->streams[j].id, s->id) == 0) {
            stream_disp(disp, i, "streams[].id");
            report(p, CONFIG_DIAG_ERROR, id_at, disp,
                   "duplicate stream id '%s' (first at line %zu)", s->id, p->id_line[j]);
            break;
        }
    }
}

static void parse_stream(struct parse *p, const yaml_event_t *start)
{
    struct config *cfg = p->cfg;
    struct config_stream *grown = realloc(cfg->streams, (cfg->n_streams + 1) * sizeof *grown);
    if (!grown) {
        p->nomem = p->stop = true;
        return;
    }
    cfg->streams = grown;
    struct config_stream *s = &grown[cfg->n_streams];
    memset(s, 0, sizeof *s);
    size_t i = cfg->n_streams++; /* counted at once, so config_free releases it */
    if (config_defaults_apply(s, true) != 0) {
        p->nomem = p->stop = true;
        return;
    }
    memset(p->strm, 0, sizeof p->strm);
    char disp[DISP_MAX];
    snprintf(disp, sizeof disp, "streams[%zu]", i);
    parse_mapping(p, "streams[]", disp, s, start);
    if (!p->stop)
        check_stream(p, i, pos_of(start->start_mark));
}

static void parse_streams(struct parse *p, const yaml_event_t *start)
{
    if (!enter(p, start))
        return;
    for (size_t i = 0;; i++) {
        yaml_event_t ev;
        if (!next(p, &ev))
            return;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        char disp[DISP_MAX];
        snprintf(disp, sizeof disp, "streams[%zu]", i);
        if (i == CONFIG_MAX_STREAMS)
            report(p, CONFIG_DIAG_ERROR, pos_of(ev.start_mark), disp, "more than %d streams",
                   CONFIG_MAX_STREAMS);
        if (i < CONFIG_MAX_STREAMS && ev.type == YAML_MAPPING_START_EVENT)
            parse_stream(p, &ev);
        else if (i < CONFIG_MAX_STREAMS)
            report(p, CONFIG_DIAG_ERROR, pos_of(ev.start_mark), disp,
                   "expected a mapping (id, url, ...), got %s",
                   is_null(&ev) ? "nothing" : node_kind(&ev));
        if (i >= CONFIG_MAX_STREAMS || ev.type != YAML_MAPPING_START_EVENT)
            skip_node(p, &ev);
        yaml_event_delete(&ev);
        if (p->stop)
            return;
    }
    p->depth--;
}

/* The root node: a mapping, or nothing at all (an empty file says nothing but is no mapping
 * of the wrong kind either). */
static void parse_root(struct parse *p, const yaml_event_t *ev)
{
    if (ev->type == YAML_MAPPING_START_EVENT) {
        parse_mapping(p, "", "", p->cfg, ev);
        return;
    }
    if (!is_null(ev)) {
        report(p, CONFIG_DIAG_ERROR, pos_of(ev->start_mark), NULL,
               "the top level must be a mapping of keys, not %s", node_kind(ev));
        skip_node(p, ev);
        return;
    }
    check_required(p, "", "", pos_of(ev->start_mark));
}

static void parse_document(struct parse *p)
{
    yaml_event_t ev;
    if (!next(p, &ev)) /* stream start */
        return;
    yaml_event_delete(&ev);
    if (!next(p, &ev))
        return;
    if (ev.type == YAML_STREAM_END_EVENT) { /* no document: an empty file */
        check_required(p, "", "", pos_of(ev.start_mark));
        yaml_event_delete(&ev);
        return;
    }
    yaml_event_delete(&ev); /* document start */
    if (!next(p, &ev))
        return;
    parse_root(p, &ev);
    yaml_event_delete(&ev);
    if (!next(p, &ev)) /* document end */
        return;
    yaml_event_delete(&ev);
    if (!next(p, &ev))
        return;
    if (ev.type == YAML_DOCUMENT_START_EVENT)
        report(p, CONFIG_DIAG_ERROR, pos_of(ev.start_mark), NULL,
               "more than one YAML document; the file must hold one");
    yaml_event_delete(&ev);
}

static struct pos top_pos(struct parse *p, const char *path)
{
    const struct seen *s = seen_for(p, config_key_by_path(path));
    return (struct pos){s->line ? s->line : 1, s->line ? s->col : 1};
}

/* Rules between keys, checked once the whole file is read. */
static void check_top(struct parse *p)
{
    const struct config *c = p->cfg;
    if (c->mqtt.password && !c->mqtt.username)
        report(p, CONFIG_DIAG_ERROR, top_pos(p, "mqtt.password"), "mqtt.password",
               "needs mqtt.username too");
    if (!c->mqtt.tls.cert != !c->mqtt.tls.key) {
        const char *given = c->mqtt.tls.cert ? "mqtt.tls.cert" : "mqtt.tls.key";
        report(p, CONFIG_DIAG_ERROR, top_pos(p, given), given,
               "mqtt.tls.cert and mqtt.tls.key go together");
    }
    if (c->mqtt.tls.cert && !c->mqtt.tls.ca)
        report(p, CONFIG_DIAG_ERROR, top_pos(p, "mqtt.tls.cert"), "mqtt.tls.cert",
               "needs mqtt.tls.ca (TLS is on only with a CA)");
    bool loopback = strcmp(c->http.listen.host, "::1") == 0 ||
                    strncmp(c->http.listen.host, "127.", 4) == 0;
    if (!loopback && !c->http.token)
        report(p, CONFIG_DIAG_WARNING, top_pos(p, "http.listen"), "http.listen",
               "listening beyond this machine without http.token: anyone who can reach "
               "the port can read the events");
    if (c->n_streams == 0 && p->d->errors == 0) /* in a broken file it would be noise */
        report(p, CONFIG_DIAG_WARNING, top_pos(p, "streams"), "streams",
               "no streams configured: the daemon will idle until a reload adds one");
}

static char *state_dir_default(void)
{
    /* systemd's StateDirectory= may list several, separated by ':'; ours is the first. */
    const char *env = getenv("STATE_DIRECTORY");
    if (env && env[0] == '/')
        return strndup(env, strcspn(env, ":"));
    return strdup("/var/lib/actiond");
}

/* The paths that depend on other keys or the environment. */
static void resolve_paths(struct parse *p)
{
    struct config *c = p->cfg;
    char why[CONFIG_WHY_LEN];
    if (!c->state_dir && !(c->state_dir = state_dir_default())) {
        p->nomem = true;
        return;
    }
    const char *db = c->store.path ? c->store.path : "actiond.db";
    char *full = config_path_join(c->state_dir, db, why);
    if (!full && strstr(why, "memory")) {
        p->nomem = true;
    } else if (!full) {
        report(p, CONFIG_DIAG_ERROR, top_pos(p, "store.path"), "store.path", "%s", why);
    } else {
        free(c->store.path);
        c->store.path = full;
    }
}

int config_parse(const char *path, const struct config_source *src, struct config *cfg,
                 struct config_diags *d)
{
    struct parse *p = calloc(1, sizeof *p);
    if (!p)
        return ERR_NOMEM;
    p->file = path;
    p->src = src;
    p->cfg = cfg;
    p->d = d;
    if (!yaml_parser_initialize(&p->yp)) {
        free(p);
        return ERR_NOMEM;
    }
    yaml_parser_set_input_string(&p->yp, src->buf, src->len);
    parse_document(p);
    if (!p->stop) {
        check_top(p);
        resolve_paths(p);
    }
    yaml_parser_delete(&p->yp);
    int rc = p->nomem ? ERR_NOMEM : 0;
    free(p);
    return rc;
}
