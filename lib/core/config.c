/*
 * config.c - YAML configuration with SVC_* environment overrides.
 *
 * Loading walks libyaml's event stream once and flattens the document into
 * a sorted table of dotted keys; the environment's SVC_* variables are
 * copied into a second sorted table at the same moment. After that nothing
 * changes, so getters are lock-free binary searches:
 *
 *   app.yaml                          entries (sorted)
 *   http:                  ──►        "http"           MAP     line 1
 *     port: 9000                      "http.origins"   SEQ     line 3  [a, b]
 *     origins: [a, b]                 "http.port"      SCALAR  line 2  "9000"
 *
 *   env SVC_HTTP_PORT=80   ──►        env table: SVC_HTTP_PORT → "80"
 *
 * A getter maps its key to the variable name (SVC_ + upper case, '.' and
 * '-' → '_') and looks there first.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <yaml.h>

#include "svcinfra/config.h"

#include "../internal.h"
#include "core/parse.h"

#define CFG_MAX_BYTES (4u * 1024u * 1024u)
#define CFG_MAX_DEPTH 32
#define CFG_ECHO_MAX 60 /* bytes of a bad value quoted in an error */

extern char **environ;

/* Shared with log.c. */
bool svc__log_key_is_secret(const char *key);
svc_status svc__config_fail(const svc_config *c, const char *key, const char *expected);
/* Shared with opts.c (declared in opts.h). */
int svc__config_has(const svc_config *c, const char *key);

typedef enum { K_SCALAR, K_SEQ, K_MAP } node_kind;

typedef struct cfg_entry {
    char *key;
    node_kind kind;
    char *value;    /* K_SCALAR */
    bool is_null;   /* K_SCALAR: plain empty, ~ or null */
    char **items;   /* K_SEQ: scalar items */
    size_t nitems;
    int bad_item_line; /* K_SEQ: line of the first non-scalar item, 0 if none */
    int line;
} cfg_entry;

typedef struct env_entry {
    char *name;
    char *value;
} env_entry;

struct svc_config {
    char *file; /* the path as given, or "<string>"; NULL when env only */
    cfg_entry *entries;
    size_t nentries;
    env_entry *env;
    size_t nenv;
    svc__err err;
    svc__ref ref;
};

/* What a getter found for a key: from the file or from the environment. */
typedef struct cfg_value {
    node_kind kind;
    const char *s; /* K_SCALAR */
    const cfg_entry *e;
    char where[300]; /* "app.yaml:12" or "env SVC_HTTP_PORT" */
} cfg_value;

/* ---- helpers ------------------------------------------------------------------ */

static void set_errbuf(char *errbuf, size_t errlen, const char *fmt, ...) SVC_PRINTF(3, 4);
static void set_errbuf(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (!errbuf || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const cfg_entry *)a)->key, ((const cfg_entry *)b)->key);
}

static int cmp_env(const void *a, const void *b)
{
    return strcmp(((const env_entry *)a)->name, ((const env_entry *)b)->name);
}

static void entry_clear(cfg_entry *e)
{
    svc_free(e->key);
    svc_free(e->value);
    for (size_t i = 0; i < e->nitems; i++)
        svc_free(e->items[i]);
    svc_free(e->items);
}

svc_config *svc_config_ref(const svc_config *c)
{
    svc_config *m = (svc_config *)c; /* the count is the only mutable part */
    if (m)
        svc__ref_take(&m->ref);
    return m;
}

void svc_config_free(svc_config *c)
{
    if (!c || !svc__ref_drop(&c->ref))
        return;
    for (size_t i = 0; i < c->nentries; i++)
        entry_clear(&c->entries[i]);
    svc_free(c->entries);
    for (size_t i = 0; i < c->nenv; i++) {
        svc_free(c->env[i].name);
        svc_free(c->env[i].value);
    }
    svc_free(c->env);
    svc_free(c->file);
    svc__err_destroy(&c->err);
    svc_free(c);
}

static svc_config *config_new(const char *file)
{
    svc_config *c = svc__calloc(1, sizeof *c);
    if (c)
        svc__ref_init(&c->ref);
    if (!c)
        return NULL;
    svc__err_init(&c->err);
    if (file && !(c->file = svc__strdup(file))) {
        svc_config_free(c);
        return NULL;
    }
    return c;
}

/* Copies the SVC_* variables with a non-empty value, sorted by name. */
static svc_status snapshot_env(svc_config *c)
{
    size_t n = 0;
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, "SVC_", 4) == 0)
            n++;
    if (n == 0)
        return SVC_OK;
    c->env = svc__calloc(n, sizeof *c->env);
    if (!c->env)
        return SVC_ENOMEM;
    for (char **e = environ; e && *e && c->nenv < n; e++) {
        if (strncmp(*e, "SVC_", 4) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        if (!eq || eq[1] == '\0')
            continue;
        env_entry *v = &c->env[c->nenv];
        v->name = svc__strndup(*e, (size_t)(eq - *e));
        v->value = svc__strdup(eq + 1);
        c->nenv++;
        if (!v->name || !v->value)
            return SVC_ENOMEM;
    }
    qsort(c->env, c->nenv, sizeof *c->env, cmp_env);
    return SVC_OK;
}

/* ---- YAML → entries ---------------------------------------------------------- */

typedef struct parse_state {
    yaml_parser_t parser;
    const char *name;
    svc_config *c;
    size_t cap;
    svc__buf path;
    char *errbuf;
    size_t errlen;
} parse_state;

static svc_status next_event(parse_state *ps, yaml_event_t *ev)
{
    if (yaml_parser_parse(&ps->parser, ev))
        return SVC_OK;
    const yaml_parser_t *p = &ps->parser;
    if (p->error == YAML_MEMORY_ERROR) {
        set_errbuf(ps->errbuf, ps->errlen, "%s: out of memory while parsing", ps->name);
        return SVC_ENOMEM;
    }
    set_errbuf(ps->errbuf, ps->errlen, "%s:%zu:%zu: YAML syntax error: %s%s%s", ps->name,
               (size_t)p->problem_mark.line + 1, (size_t)p->problem_mark.column + 1,
               p->problem ? p->problem : "malformed document", p->context ? " " : "",
               p->context ? p->context : "");
    return SVC_EPARSE;
}

static int ev_line(const yaml_event_t *ev) { return (int)ev->start_mark.line + 1; }

static cfg_entry *add_entry(parse_state *ps, node_kind kind, int line)
{
    svc_config *c = ps->c;
    if (c->nentries == ps->cap) {
        size_t ncap = ps->cap ? ps->cap * 2 : 16;
        cfg_entry *ne = svc_realloc(c->entries, ncap * sizeof *ne);
        if (!ne)
            return NULL;
        c->entries = ne;
        ps->cap = ncap;
    }
    cfg_entry *e = &c->entries[c->nentries];
    *e = (cfg_entry){.kind = kind, .line = line};
    e->key = svc__strdup(ps->path.data ? ps->path.data : "");
    if (!e->key)
        return NULL;
    c->nentries++;
    return e;
}

static bool is_plain_null(const yaml_event_t *ev)
{
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)ev->data.scalar.value;
    return !*v || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
           strcmp(v, "NULL") == 0;
}

static svc_status too_deep(parse_state *ps, const yaml_event_t *ev)
{
    set_errbuf(ps->errbuf, ps->errlen, "%s:%d: nesting deeper than %d levels", ps->name,
               ev_line(ev), CFG_MAX_DEPTH);
    return SVC_ETOOBIG;
}

static svc_status alias_refused(parse_state *ps, const yaml_event_t *ev)
{
    set_errbuf(ps->errbuf, ps->errlen, "%s:%d: YAML aliases are not supported", ps->name,
               ev_line(ev));
    return SVC_ECONFIG;
}

/* Consumes the rest of a collection whose start event was just read. */
static svc_status skip_collection(parse_state *ps, int depth)
{
    int nest = 1;
    while (nest > 0) {
        yaml_event_t ev;
        svc_status st = next_event(ps, &ev);
        if (st != SVC_OK)
            return st;
        if (ev.type == YAML_MAPPING_START_EVENT || ev.type == YAML_SEQUENCE_START_EVENT) {
            if (depth + ++nest > CFG_MAX_DEPTH)
                st = too_deep(ps, &ev);
        } else if (ev.type == YAML_MAPPING_END_EVENT || ev.type == YAML_SEQUENCE_END_EVENT) {
            nest--;
        } else if (ev.type == YAML_ALIAS_EVENT) {
            st = alias_refused(ps, &ev);
        }
        yaml_event_delete(&ev);
        if (st != SVC_OK)
            return st;
    }
    return SVC_OK;
}

static svc_status parse_value(parse_state *ps, yaml_event_t *ev, int depth, int line);

static svc_status parse_sequence(parse_state *ps, int line, int depth)
{
    cfg_entry *e = add_entry(ps, K_SEQ, line);
    if (!e)
        return SVC_ENOMEM;
    size_t cap = 0;
    for (;;) {
        yaml_event_t ev;
        svc_status st = next_event(ps, &ev);
        if (st != SVC_OK)
            return st;
        /* `e` may move when entries grow; nothing adds entries in here */
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return SVC_OK;
        }
        if (ev.type == YAML_SCALAR_EVENT) {
            if (e->nitems == cap) {
                size_t ncap = cap ? cap * 2 : 8;
                char **ni = svc_realloc(e->items, ncap * sizeof *ni);
                if (!ni)
                    st = SVC_ENOMEM;
                else
                    e->items = ni, cap = ncap;
            }
            if (st == SVC_OK) {
                char *item = svc__strdup(is_plain_null(&ev) ? "" : (const char *)ev.data.scalar.value);
                if (!item)
                    st = SVC_ENOMEM;
                else
                    e->items[e->nitems++] = item;
            }
        } else if (ev.type == YAML_MAPPING_START_EVENT || ev.type == YAML_SEQUENCE_START_EVENT) {
            if (!e->bad_item_line)
                e->bad_item_line = ev_line(&ev);
            if (depth + 1 > CFG_MAX_DEPTH)
                st = too_deep(ps, &ev);
            else
                st = skip_collection(ps, depth + 1);
        } else if (ev.type == YAML_ALIAS_EVENT) {
            st = alias_refused(ps, &ev);
        }
        yaml_event_delete(&ev);
        if (st != SVC_OK)
            return st;
    }
}

static svc_status parse_mapping(parse_state *ps, int line, int depth, bool root)
{
    if (!root && !add_entry(ps, K_MAP, line))
        return SVC_ENOMEM;
    for (;;) {
        yaml_event_t kev;
        svc_status st = next_event(ps, &kev);
        if (st != SVC_OK)
            return st;
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            return SVC_OK;
        }
        if (kev.type == YAML_ALIAS_EVENT) {
            st = alias_refused(ps, &kev);
        } else if (kev.type != YAML_SCALAR_EVENT) {
            set_errbuf(ps->errbuf, ps->errlen, "%s:%d: a mapping key must be a plain string",
                       ps->name, ev_line(&kev));
            st = SVC_ECONFIG;
        } else if (kev.data.scalar.length == 0) {
            set_errbuf(ps->errbuf, ps->errlen, "%s:%d: empty mapping key", ps->name,
                       ev_line(&kev));
            st = SVC_ECONFIG;
        }
        if (st != SVC_OK) {
            yaml_event_delete(&kev);
            return st;
        }
        int key_line = ev_line(&kev);
        size_t saved = ps->path.len;
        if (saved)
            svc__buf_putc(&ps->path, '.');
        svc__buf_append(&ps->path, kev.data.scalar.value, kev.data.scalar.length);
        yaml_event_delete(&kev);
        if (!svc__buf_ok(&ps->path))
            return SVC_ENOMEM;

        yaml_event_t vev;
        st = next_event(ps, &vev);
        if (st != SVC_OK)
            return st;
        st = parse_value(ps, &vev, depth + 1, key_line);
        yaml_event_delete(&vev);
        if (st != SVC_OK)
            return st;
        ps->path.len = saved;
        ps->path.data[saved] = '\0';
    }
}

/* Parses the node that starts with `ev` (owned by the caller); `line` is
 * its key's line, the one an error message points at. */
static svc_status parse_value(parse_state *ps, yaml_event_t *ev, int depth, int line)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        cfg_entry *e = add_entry(ps, K_SCALAR, line);
        if (!e)
            return SVC_ENOMEM;
        e->is_null = is_plain_null(ev);
        e->value = svc__strndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
        return e->value ? SVC_OK : SVC_ENOMEM;
    }
    case YAML_SEQUENCE_START_EVENT:
        if (depth > CFG_MAX_DEPTH)
            return too_deep(ps, ev);
        return parse_sequence(ps, line, depth);
    case YAML_MAPPING_START_EVENT:
        if (depth > CFG_MAX_DEPTH)
            return too_deep(ps, ev);
        return parse_mapping(ps, line, depth, false);
    case YAML_ALIAS_EVENT:
        return alias_refused(ps, ev);
    default:
        set_errbuf(ps->errbuf, ps->errlen, "%s:%d: unexpected YAML event", ps->name, ev_line(ev));
        return SVC_EPARSE;
    }
}

/* The whole stream: at most one document, whose top level is a mapping. */
static svc_status parse_stream(parse_state *ps)
{
    int docs = 0;
    for (;;) {
        yaml_event_t ev;
        svc_status st = next_event(ps, &ev);
        if (st != SVC_OK)
            return st;
        yaml_event_type_t t = ev.type;
        if (t == YAML_DOCUMENT_START_EVENT && ++docs > 1) {
            set_errbuf(ps->errbuf, ps->errlen, "%s:%d: more than one YAML document", ps->name,
                       ev_line(&ev));
            st = SVC_ECONFIG;
        } else if (t == YAML_MAPPING_START_EVENT) {
            st = parse_mapping(ps, ev_line(&ev), 1, true);
        } else if (t == YAML_SCALAR_EVENT && is_plain_null(&ev)) {
            /* an empty document: no keys */
        } else if (t == YAML_SCALAR_EVENT || t == YAML_SEQUENCE_START_EVENT ||
                   t == YAML_ALIAS_EVENT) {
            set_errbuf(ps->errbuf, ps->errlen, "%s:%d: the top level must be a mapping",
                       ps->name, ev_line(&ev));
            st = SVC_ECONFIG;
        }
        yaml_event_delete(&ev);
        if (st != SVC_OK)
            return st;
        if (t == YAML_STREAM_END_EVENT)
            return SVC_OK;
    }
}

static svc_status check_duplicates(parse_state *ps)
{
    svc_config *c = ps->c;
    if (c->nentries < 2)
        return SVC_OK;
    qsort(c->entries, c->nentries, sizeof *c->entries, cmp_entry);
    for (size_t i = 1; i < c->nentries; i++) {
        if (strcmp(c->entries[i - 1].key, c->entries[i].key) == 0) {
            int a = c->entries[i - 1].line, b = c->entries[i].line;
            set_errbuf(ps->errbuf, ps->errlen, "%s:%d: duplicate key '%s' (also at line %d)",
                       ps->name, a > b ? a : b, c->entries[i].key, a > b ? b : a);
            return SVC_ECONFIG;
        }
    }
    return SVC_OK;
}

static svc_status build(svc_config **out, const char *name, const char *file, const char *text,
                        size_t len, char *errbuf, size_t errlen)
{
    svc_config *c = config_new(file);
    if (!c) {
        set_errbuf(errbuf, errlen, "out of memory");
        return SVC_ENOMEM;
    }
    svc_status st = SVC_OK;
    if (text) {
        parse_state ps = {.name = name, .c = c, .errbuf = errbuf, .errlen = errlen};
        svc__buf_init(&ps.path);
        if (!yaml_parser_initialize(&ps.parser)) {
            st = SVC_ENOMEM;
        } else {
            yaml_parser_set_input_string(&ps.parser, (const unsigned char *)text, len);
            st = parse_stream(&ps);
            if (st == SVC_OK)
                st = check_duplicates(&ps);
            yaml_parser_delete(&ps.parser);
        }
        svc__buf_free(&ps.path);
    }
    if (st == SVC_OK)
        st = snapshot_env(c);
    if (st != SVC_OK) {
        if (st == SVC_ENOMEM)
            set_errbuf(errbuf, errlen, "%s: out of memory", name);
        svc_config_free(c);
        return st;
    }
    *out = c;
    return SVC_OK;
}

/* The end of svc_config_load()/svc_config_parse(): the reason goes to the
 * caller's errbuf and to svc_last_errmsg(), the one channel of every
 * constructor. */
static svc_status load_done(svc_status st, const char *why, char *errbuf, size_t errlen)
{
    if (st == SVC_OK) {
        svc__fail_new_clear();
        return st;
    }
    set_errbuf(errbuf, errlen, "%s", why);
    return svc__fail_new(st, "config: %s", why[0] ? why : svc_strerror(st));
}

static svc_status config_parse(svc_config **out, const char *yaml_text, char *errbuf,
                               size_t errlen);
static svc_status config_load(svc_config **out, const char *path, char *errbuf, size_t errlen);

svc_status svc_config_parse(svc_config **out, const char *yaml_text, char *errbuf, size_t errlen)
{
    char why[512] = "";
    return load_done(config_parse(out, yaml_text, why, sizeof why), why, errbuf, errlen);
}

svc_status svc_config_load(svc_config **out, const char *path, char *errbuf, size_t errlen)
{
    char why[512] = "";
    return load_done(config_load(out, path, why, sizeof why), why, errbuf, errlen);
}

static svc_status config_parse(svc_config **out, const char *yaml_text, char *errbuf, size_t errlen)
{
    if (!out)
        return SVC_EINVAL;
    *out = NULL;
    if (!yaml_text) {
        set_errbuf(errbuf, errlen, "no YAML text given");
        return SVC_EINVAL;
    }
    size_t len = strlen(yaml_text);
    if (len > CFG_MAX_BYTES) {
        set_errbuf(errbuf, errlen, "<string>: configuration text is %zu bytes, over the %u byte limit",
                   len, CFG_MAX_BYTES);
        return SVC_ETOOBIG;
    }
    return build(out, "<string>", "<string>", yaml_text, len, errbuf, errlen);
}

static svc_status config_load(svc_config **out, const char *path, char *errbuf, size_t errlen)
{
    if (!out)
        return SVC_EINVAL;
    *out = NULL;
    if (!path)
        return build(out, NULL, NULL, NULL, 0, errbuf, errlen);
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_errbuf(errbuf, errlen, "cannot open config file '%s': %s", path, strerror(errno));
        return SVC_EIO;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size > CFG_MAX_BYTES) {
        fclose(f);
        set_errbuf(errbuf, errlen, "config file '%s' is %llu bytes, over the %u byte limit", path,
                   (unsigned long long)sb.st_size, CFG_MAX_BYTES);
        return SVC_ETOOBIG;
    }
    /* read at most one byte past the limit: fstat does not bound pipes */
    svc__buf text;
    svc__buf_init(&text);
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && text.len <= CFG_MAX_BYTES)
        svc__buf_append(&text, chunk, n);
    int rerr = ferror(f) ? errno : 0;
    fclose(f);
    svc_status st;
    if (rerr) {
        set_errbuf(errbuf, errlen, "cannot read config file '%s': %s", path, strerror(rerr));
        st = SVC_EIO;
    } else if (!svc__buf_ok(&text)) {
        set_errbuf(errbuf, errlen, "%s: out of memory", path);
        st = SVC_ENOMEM;
    } else if (text.len > CFG_MAX_BYTES) {
        set_errbuf(errbuf, errlen, "config file '%s' is over the %u byte limit", path,
                   CFG_MAX_BYTES);
        st = SVC_ETOOBIG;
    } else {
        st = build(out, path, path, text.data ? text.data : "", text.len, errbuf, errlen);
    }
    svc__buf_free(&text);
    return st;
}

const char *svc_config_errmsg(const svc_config *c)
{
    if (!c)
        return "";
    return svc__err_get((svc__err *)&c->err);
}

/* ---- lookup ------------------------------------------------------------------ */

/* SVC_ + key with letters upper-cased and '.'/'-' → '_'; false if too long. */
static bool env_name(const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    if (klen + 5 > cap)
        return false;
    memcpy(out, "SVC_", 4);
    for (size_t i = 0; i < klen; i++) {
        unsigned char ch = (unsigned char)key[i];
        out[4 + i] = (ch == '.' || ch == '-') ? '_' : (char)toupper(ch);
    }
    out[4 + klen] = '\0';
    return true;
}

/* Finds `key`: the environment first, then the file. A null YAML value
 * counts as absent. */
static bool lookup(const svc_config *c, const char *key, cfg_value *v)
{
    char name[256];
    if (c->nenv && env_name(key, name, sizeof name)) {
        env_entry probe = {.name = name};
        const env_entry *e = bsearch(&probe, c->env, c->nenv, sizeof *c->env, cmp_env);
        if (e) {
            *v = (cfg_value){.kind = K_SCALAR, .s = e->value};
            snprintf(v->where, sizeof v->where, "env %s", name);
            return true;
        }
    }
    cfg_entry probe = {.key = (char *)key};
    const cfg_entry *e =
        c->nentries ? bsearch(&probe, c->entries, c->nentries, sizeof *c->entries, cmp_entry)
                    : NULL;
    if (!e || (e->kind == K_SCALAR && e->is_null))
        return false;
    *v = (cfg_value){.kind = e->kind, .s = e->value, .e = e};
    snprintf(v->where, sizeof v->where, "%s:%d", c->file ? c->file : "<string>", e->line);
    return true;
}

/* 2: `key` is set in the environment, 1: in the file only, 0: absent. */
int svc__config_has(const svc_config *c, const char *key)
{
    cfg_value v;
    if (!c || !key || !lookup(c, key, &v))
        return 0;
    return strncmp(v.where, "env ", 4) == 0 ? 2 : 1;
}

/* Records "config key 'K' (where): expected T, got X" and returns `st`. */
static svc_status fail(const svc_config *c, svc_status st, const char *key, const cfg_value *v,
                       const char *expected)
{
    svc__err *err = (svc__err *)&c->err;
    if (v->kind != K_SCALAR)
        return svc__err_set(err, st, "config key '%s' (%s): expected %s, got a %s", key,
                            v->where, expected, v->kind == K_SEQ ? "sequence" : "mapping");
    if (svc__log_key_is_secret(key))
        return svc__err_set(err, st, "config key '%s' (%s): expected %s, got a value that is not one",
                            key, v->where, expected);
    size_t n = strlen(v->s);
    bool cut = n > CFG_ECHO_MAX;
    int shown = (int)(cut ? CFG_ECHO_MAX : n);
    if (st == SVC_ERANGE)
        return svc__err_set(err, st, "config key '%s' (%s): \"%.*s%s\" is out of range for %s",
                            key, v->where, shown, v->s, cut ? "..." : "", expected);
    return svc__err_set(err, st, "config key '%s' (%s): expected %s, got \"%.*s%s\"", key,
                        v->where, expected, shown, v->s, cut ? "..." : "");
}

svc_status svc__config_fail(const svc_config *c, const char *key, const char *expected)
{
    cfg_value v;
    if (!lookup(c, key, &v))
        return svc__err_set((svc__err *)&c->err, SVC_ECONFIG, "config key '%s': expected %s", key,
                            expected);
    return fail(c, SVC_ECONFIG, key, &v, expected);
}

/* Common start of the scalar getters: 1 found (scalar in v->s), 0 absent,
 * or a failure status stored in *st. */
static int get_scalar(const svc_config *c, const char *key, const char *expected, cfg_value *v,
                      svc_status *st)
{
    if (!lookup(c, key, v))
        return 0;
    if (v->kind != K_SCALAR) {
        *st = fail(c, SVC_ECONFIG, key, v, expected);
        return -1;
    }
    return 1;
}

/* ---- getters ------------------------------------------------------------------ */

svc_status svc_config_get_string(const svc_config *c, const char *key, const char *def,
                                 const char **out)
{
    if (!c || !key || !out)
        return SVC_EINVAL;
    cfg_value v;
    svc_status st = SVC_OK;
    int r = get_scalar(c, key, "a string", &v, &st);
    if (r < 0)
        return st;
    *out = r ? v.s : def;
    return SVC_OK;
}

/* One body for the typed scalar getters. */
#define TYPED_GETTER(PARSE, TYPE, EXPECTED)                                                       \
    do {                                                                                      \
        if (!c || !key || !out)                                                               \
            return SVC_EINVAL;                                                                \
        cfg_value v;                                                                          \
        svc_status st = SVC_OK;                                                               \
        int r = get_scalar(c, key, EXPECTED, &v, &st);                                        \
        if (r < 0)                                                                            \
            return st;                                                                        \
        if (r == 0) {                                                                         \
            *out = def;                                                                       \
            return SVC_OK;                                                                    \
        }                                                                                     \
        TYPE val;                                                                             \
        st = PARSE(v.s, &val);                                                                \
        if (st != SVC_OK)                                                                     \
            return fail(c, st, key, &v, EXPECTED);                                            \
        *out = val;                                                                           \
        return SVC_OK;                                                                        \
    } while (0)

svc_status svc_config_get_int(const svc_config *c, const char *key, int64_t def, int64_t *out)
{
    TYPED_GETTER(svc__parse_int, int64_t, "an integer");
}

svc_status svc_config_get_bool(const svc_config *c, const char *key, int def, int *out)
{
    TYPED_GETTER(svc__parse_bool, int, "a boolean (true/false, yes/no, on/off, 1/0)");
}

svc_status svc_config_get_double(const svc_config *c, const char *key, double def, double *out)
{
    TYPED_GETTER(svc__parse_double, double, "a number");
}

svc_status svc_config_get_duration_ms(const svc_config *c, const char *key, int64_t def,
                                      int64_t *out)
{
    TYPED_GETTER(svc__parse_duration_ms, int64_t, "a duration (e.g. 250ms, 30s, 5m, 1h; bare number = ms)");
}

svc_status svc_config_parse_duration_ms(const char *text, int64_t *out)
{
    if (!text || !out)
        return SVC_EINVAL;
    return svc__parse_duration_ms(text, out);
}

svc_status svc_config_get_size(const svc_config *c, const char *key, uint64_t def, uint64_t *out)
{
    TYPED_GETTER(svc__parse_size, uint64_t, "a size (e.g. 512, 10kB, 64KiB, 1MiB, 1GiB)");
}

void svc_config_strings_free(char **list, size_t n)
{
    if (!list)
        return;
    for (size_t i = 0; i < n; i++)
        svc_free(list[i]);
    svc_free(list);
}

/* Splits a comma list into new trimmed, non-empty items. */
static svc_status split_commas(const char *s, char ***out, size_t *n)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    char **list = svc__calloc(cap, sizeof *list);
    if (!list)
        return SVC_ENOMEM;
    size_t k = 0;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (b > a) {
            if (!(list[k] = svc__strndup(a, (size_t)(b - a)))) {
                svc_config_strings_free(list, k);
                return SVC_ENOMEM;
            }
            k++;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    if (k == 0) {
        svc_free(list);
        list = NULL;
    }
    *out = list;
    *n = k;
    return SVC_OK;
}

svc_status svc_config_get_strings(const svc_config *c, const char *key, char ***out, size_t *n)
{
    if (!c || !key || !out || !n)
        return SVC_EINVAL;
    cfg_value v;
    if (!lookup(c, key, &v)) {
        *out = NULL;
        *n = 0;
        return SVC_OK;
    }
    if (v.kind == K_SCALAR)
        return split_commas(v.s, out, n);
    if (v.kind == K_MAP)
        return fail(c, SVC_ECONFIG, key, &v, "a list of strings");
    const cfg_entry *e = v.e;
    if (e->bad_item_line)
        return svc__err_set((svc__err *)&c->err, SVC_ECONFIG,
                            "config key '%s' (%s): expected a list of strings, the item at "
                            "line %d is not a string",
                            key, v.where, e->bad_item_line);
    if (e->nitems == 0) {
        *out = NULL;
        *n = 0;
        return SVC_OK;
    }
    char **list = svc__calloc(e->nitems, sizeof *list);
    if (!list)
        return SVC_ENOMEM;
    for (size_t i = 0; i < e->nitems; i++) {
        if (!(list[i] = svc__strdup(e->items[i]))) {
            svc_config_strings_free(list, i);
            return SVC_ENOMEM;
        }
    }
    *out = list;
    *n = e->nitems;
    return SVC_OK;
}
