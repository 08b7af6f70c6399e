/* internal.h — config/'s internal view: the schema row, the value setters that the parser and
 * the defaults share, diagnostics, secrets and the file reader. Only config/ includes this. */
#ifndef ACTIOND_CONFIG_INTERNAL_H
#define ACTIOND_CONFIG_INTERNAL_H

#include "config/config.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum config_type {
    CONFIG_T_SECTION,  /* a mapping of further keys */
    CONFIG_T_STREAMS,  /* the list of stream mappings */
    CONFIG_T_BOOL,     /* bool */
    CONFIG_T_INT,      /* int */
    CONFIG_T_DOUBLE,   /* double */
    CONFIG_T_STRING,   /* char * */
    CONFIG_T_PATH,     /* char *, made absolute */
    CONFIG_T_ENUM,     /* int-sized enum, index into names */
    CONFIG_T_DURATION, /* int64_t milliseconds */
    CONFIG_T_SIZE,     /* uint64_t bytes */
    CONFIG_T_STRLIST,  /* struct config_strlist */
    CONFIG_T_SECRET,   /* char *, given as KEY, KEY_file or KEY_env */
    CONFIG_T_ADDR,     /* struct config_addr */
    CONFIG_T_COUNT
};

#define CONFIG_KEY_RELOADABLE 1u /* a SIGHUP may change it on a running daemon */
#define CONFIG_KEY_REQUIRED 2u
#define CONFIG_KEY_IN_STATE_DIR 4u /* a relative path is under state_dir, not the file's dir */

/* Upper bound on the table's rows, so per-mapping bookkeeping can live on the stack. */
#define CONFIG_MAX_KEYS 64

/* Longest reason a setter writes, to be prefixed with FILE:LINE:COL and the key. */
#define CONFIG_WHY_LEN 200

/* One row of the schema: a key and everything known about it. */
struct config_key {
    const char *path;  /* "http.listen", "streams[].thresholds.exit" */
    enum config_type type;
    unsigned flags;
    double min, max;   /* value (ms, bytes), string length, or list length */
    const char *def;   /* the default, written as in the file; NULL: unset */
    const char *def_doc; /* what unset means, for docs; NULL when def says it */
    const char *const *names; /* CONFIG_T_ENUM: the values, in enum order */
    const char *(*check)(const char *s); /* extra rule for a string: NULL or why not */
    size_t offset;     /* into struct config, or struct config_stream under "streams[]." */
    const char *help;
};

/* How a secret was given: the key itself, KEY_file or KEY_env. */
enum config_secret_form { CONFIG_SECRET_INLINE, CONFIG_SECRET_FILE, CONFIG_SECRET_ENV };

/* schema.c */
extern const struct config_key config_keys[];
extern const size_t config_n_keys;
/* The row for key NAME inside the mapping at PARENT ("" for the top, "streams[]" for a
 * stream); a secret's _file/_env spellings find its row and set *form. NULL if none. */
const struct config_key *config_key_find(const char *parent, const char *name,
                                         enum config_secret_form *form);
const struct config_key *config_key_by_path(const char *path);
size_t config_key_index(const struct config_key *k);
bool config_key_in_stream(const struct config_key *k);
/* True when k sits directly in the mapping at parent. */
bool config_key_is_child(const struct config_key *k, const char *parent);
/* A sibling of NAME under PARENT within edit distance 2, for "did you mean"; NULL if none. */
const char *config_key_suggest(const char *parent, const char *name);
/* "integer", "duration", ... as the docs and messages say it. */
const char *config_type_name(enum config_type t);

/* values.c: every setter writes why (CONFIG_WHY_LEN) on failure and returns ERR_CONFIG, or
 * ERR_NOMEM. base is struct config or struct config_stream, as the key says. */
int config_value_set(const struct config_key *k, void *base, const char *s, const char *dir,
                     char *why);
int config_value_append(const struct config_key *k, void *base, const char *s, char *why);
/* Applies every default of the keys under one base (the top, or one stream). */
int config_defaults_apply(void *base, bool stream);
void config_fields_free(void *base, bool stream);
bool config_field_equal(const struct config_key *k, const void *a, const void *b);
/* "1..60", "100ms..1m", "one of tcp, udp": the bounds as a person reads them. */
void config_bounds_format(const struct config_key *k, char *out, size_t n);
void config_duration_format(int64_t ms, char *out, size_t n);
void config_size_format(uint64_t bytes, char *out, size_t n);
/* dir + "/" + rel unless rel is absolute; NULL (and why) when too long or out of memory. */
char *config_path_join(const char *dir, const char *rel, char *why);
/* Frees a string after wiping it, for secrets. */
void config_secret_wipe(char *s);

/* secret.c: each returns 0 and a new string, or ERR_CONFIG/ERR_NOMEM with why. The reasons
 * never include the secret. */
int config_secret_from_file(const char *path, char **out, bool *world_readable, char *why);
int config_secret_from_env(const char *name, char **out, char *why);
int config_secret_check(const char *value, char *why);

/* diag.c */
void config_diags_reset(struct config_diags *d);
void config_diag_vadd(struct config_diags *d, enum config_diag_kind kind, const char *fmt,
                      va_list ap) __attribute__((format(printf, 3, 0)));
void config_diag_add(struct config_diags *d, enum config_diag_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The first error; NULL if there is none. */
const char *config_diag_first_error(const struct config_diags *d);

/* source.c: the file in memory, checked before libyaml sees it. */
struct config_source {
    unsigned char *buf;
    size_t len;
    char *dir;     /* absolute when the directory exists: the base of relative paths */
    bool world_readable;
};
/* Reads path whole (regular file, at most CONFIG_MAX_FILE_SIZE, UTF-8 without NULs).
 * Problems go to d; returns 0, ERR_NOTFOUND, ERR_IO, ERR_CONFIG or ERR_NOMEM. */
int config_source_read(const char *path, struct config_source *src, struct config_diags *d);
void config_source_fini(struct config_source *src);
/* 1-based line and column (in characters, as libyaml counts them) of a byte offset. */
void config_source_position(const struct config_source *src, size_t offset, size_t *line,
                            size_t *col);

/* parse.c: walks the YAML events into cfg (defaults already applied) and resolves what
 * depends on the whole file. Problems go to d; returns 0 or ERR_NOMEM. */
int config_parse(const char *path, const struct config_source *src, struct config *cfg,
                 struct config_diags *d);

#endif
