#include "aws_xml.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <expat.h>

#define XML_MAX_PATH 1024
#define XML_MAX_TEXT (4u << 20)

typedef struct flatten_state {
    XML_Parser parser;
    buf *out;
    char path[XML_MAX_PATH];
    size_t path_len;
    size_t saved_len[AWS_XML_MAX_DEPTH]; /* path length before each open element */
    int had_child[AWS_XML_MAX_DEPTH];
    int depth;
    buf text;
    const char *failure; /* why the walk stopped, NULL while fine */
} flatten_state;

static void flatten_fail(flatten_state *s, const char *why) {
    if (!s->failure) s->failure = why;
    XML_StopParser(s->parser, XML_FALSE);
}

static int put_event(buf *out, int kind, const char *path, size_t path_len, const char *text,
                     size_t text_len) {
    unsigned char k = (unsigned char)kind;
    uint32_t pl = (uint32_t)path_len, tl = (uint32_t)text_len;
    if (buf_append(out, &k, 1) || buf_append(out, &pl, sizeof pl) || buf_append(out, path, path_len) ||
        buf_append(out, "", 1) || buf_append(out, &tl, sizeof tl) || buf_append(out, text, text_len) ||
        buf_append(out, "", 1))
        return -1;
    return 0;
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs) {
    (void)attrs;
    flatten_state *s = ud;
    if (s->failure) return;
    if (s->depth >= AWS_XML_MAX_DEPTH) return flatten_fail(s, "XML nested too deeply");
    if (s->depth > 0) s->had_child[s->depth - 1] = 1;
    const char *local = strrchr(name, ':');
    local = local ? local + 1 : name;
    size_t n = strlen(local), sep = s->path_len ? 1 : 0;
    if (s->path_len + sep + n >= sizeof s->path) return flatten_fail(s, "XML element path too long");
    s->saved_len[s->depth] = s->path_len;
    s->had_child[s->depth] = 0;
    if (sep) s->path[s->path_len++] = '/';
    memcpy(s->path + s->path_len, local, n);
    s->path_len += n;
    s->depth++;
    buf_reset(&s->text);
    if (put_event(s->out, AWS_XML_START, s->path, s->path_len, "", 0))
        flatten_fail(s, "XML answer too large");
}

static void XMLCALL on_end(void *ud, const XML_Char *name) {
    (void)name;
    flatten_state *s = ud;
    if (s->failure || s->depth == 0) return;
    s->depth--;
    if (!s->had_child[s->depth] &&
        put_event(s->out, AWS_XML_TEXT, s->path, s->path_len, buf_str(&s->text), s->text.len))
        flatten_fail(s, "XML answer too large");
    buf_reset(&s->text);
    s->path_len = s->saved_len[s->depth];
}

static void XMLCALL on_text(void *ud, const XML_Char *text, int len) {
    flatten_state *s = ud;
    if (s->failure || len <= 0) return;
    if (buf_append(&s->text, text, (size_t)len)) flatten_fail(s, "XML text too long");
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
                               int has_internal_subset) {
    (void)name;
    (void)sysid;
    (void)pubid;
    (void)has_internal_subset;
    flatten_fail(ud, "XML with a DTD refused");
}

static void XMLCALL on_entity(void *ud, const XML_Char *name, int is_param, const XML_Char *value,
                              int value_len, const XML_Char *base, const XML_Char *sysid,
                              const XML_Char *pubid, const XML_Char *notation) {
    (void)name;
    (void)is_param;
    (void)value;
    (void)value_len;
    (void)base;
    (void)sysid;
    (void)pubid;
    (void)notation;
    flatten_fail(ud, "XML entity declarations refused");
}

int aws_xml_flatten(const char *data, size_t len, buf *out, char *err, size_t errlen) {
    flatten_state s;
    memset(&s, 0, sizeof s);
    s.out = out;
    buf_init(&s.text, XML_MAX_TEXT);
    int rc = -1;
    if (len > INT32_MAX) {
        snprintf(err, errlen, "XML answer too large");
        goto cleanup;
    }
    s.parser = XML_ParserCreate("UTF-8");
    if (!s.parser) {
        snprintf(err, errlen, "out of memory");
        goto cleanup;
    }
    XML_SetUserData(s.parser, &s);
    XML_SetElementHandler(s.parser, on_start, on_end);
    XML_SetCharacterDataHandler(s.parser, on_text);
    XML_SetStartDoctypeDeclHandler(s.parser, on_doctype);
    XML_SetEntityDeclHandler(s.parser, on_entity);
    enum XML_Status st = XML_Parse(s.parser, data, (int)len, XML_TRUE);
    if (s.failure) {
        snprintf(err, errlen, "%s", s.failure);
        goto cleanup;
    }
    if (st != XML_STATUS_OK) {
        snprintf(err, errlen, "malformed XML at line %lu: %s",
                 (unsigned long)XML_GetCurrentLineNumber(s.parser),
                 XML_ErrorString(XML_GetErrorCode(s.parser)));
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (s.parser) XML_ParserFree(s.parser);
    buf_free(&s.text);
    return rc;
}

void aws_xml_iter_init(aws_xml_iter *it, const buf *events) {
    it->p = events->data;
    it->end = events->data ? events->data + events->len : NULL;
}

int aws_xml_next(aws_xml_iter *it, aws_xml_event *ev) {
    uint32_t n;
    if (!it->p || it->p >= it->end) return 0;
    ev->kind = (unsigned char)*it->p++;
    memcpy(&n, it->p, sizeof n);
    it->p += sizeof n;
    ev->path = it->p;
    ev->path_len = n;
    it->p += n + 1;
    memcpy(&n, it->p, sizeof n);
    it->p += sizeof n;
    ev->text = it->p;
    ev->text_len = n;
    it->p += n + 1;
    return 1;
}

int aws_xml_path_is(const aws_xml_event *ev, const char *path) {
    size_t n = strlen(path);
    return ev->path_len == n && !memcmp(ev->path, path, n);
}

const char *aws_xml_find(const buf *events, const char *path, size_t *len) {
    aws_xml_iter it;
    aws_xml_event ev;
    aws_xml_iter_init(&it, events);
    while (aws_xml_next(&it, &ev))
        if (ev.kind == AWS_XML_TEXT && aws_xml_path_is(&ev, path)) {
            if (len) *len = ev.text_len;
            return ev.text;
        }
    return NULL;
}

const char *aws_xml_find_error(const buf *events, const char *leaf, size_t *len) {
    char tail[64];
    int n = snprintf(tail, sizeof tail, "Error/%s", leaf);
    if (n < 0 || (size_t)n >= sizeof tail) return NULL;
    aws_xml_iter it;
    aws_xml_event ev;
    aws_xml_iter_init(&it, events);
    while (aws_xml_next(&it, &ev)) {
        size_t t = (size_t)n;
        if (ev.kind != AWS_XML_TEXT || ev.path_len < t || memcmp(ev.path + ev.path_len - t, tail, t))
            continue;
        if (ev.path_len == t || ev.path[ev.path_len - t - 1] == '/') {
            if (len) *len = ev.text_len;
            return ev.text;
        }
    }
    return NULL;
}
