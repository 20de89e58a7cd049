#include "aws_json.h"

#include <string.h>

#define JSON_MAX_DEPTH 64

typedef struct json_reader {
    const char *p, *end;
} json_reader;

static void skip_space(json_reader *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static int put_utf8(buf *out, unsigned cp) {
    unsigned char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | (cp >> 6));
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | (cp >> 18));
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return buf_append(out, b, n);
}

/* Reads a string at r->p (the opening quote); appends its value to out when
 * out is not NULL. */
static int read_string(json_reader *r, buf *out) {
    if (r->p >= r->end || *r->p != '"') return -1;
    r->p++;
    while (r->p < r->end) {
        const char *run = r->p;
        while (r->p < r->end && *r->p != '"' && *r->p != '\\') {
            if ((unsigned char)*r->p < 0x20) return -1;
            r->p++;
        }
        if (out && r->p > run && buf_append(out, run, (size_t)(r->p - run))) return -1;
        if (r->p >= r->end) return -1;
        if (*r->p == '"') {
            r->p++;
            return 0;
        }
        /* backslash */
        if (r->end - r->p < 2) return -1;
        char c = r->p[1];
        r->p += 2;
        char lit = 0;
        switch (c) {
        case '"': lit = '"'; break;
        case '\\': lit = '\\'; break;
        case '/': lit = '/'; break;
        case 'b': lit = '\b'; break;
        case 'f': lit = '\f'; break;
        case 'n': lit = '\n'; break;
        case 'r': lit = '\r'; break;
        case 't': lit = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (r->end - r->p < 4 || hex4(r->p, &cp)) return -1;
            r->p += 4;
            if (cp >= 0xD800 && cp < 0xDC00) {
                if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' || hex4(r->p + 2, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return -1;
                r->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return -1;
            }
            if (out && put_utf8(out, cp)) return -1;
            continue;
        }
        default: return -1;
        }
        if (out && buf_append(out, &lit, 1)) return -1;
    }
    return -1;
}

static int skip_value(json_reader *r, int depth);

static int skip_container(json_reader *r, int depth, char close, int object) {
    if (depth >= JSON_MAX_DEPTH) return -1;
    r->p++;
    skip_space(r);
    if (r->p < r->end && *r->p == close) {
        r->p++;
        return 0;
    }
    for (;;) {
        if (object) {
            skip_space(r);
            if (read_string(r, NULL)) return -1;
            skip_space(r);
            if (r->p >= r->end || *r->p != ':') return -1;
            r->p++;
        }
        if (skip_value(r, depth + 1)) return -1;
        skip_space(r);
        if (r->p >= r->end) return -1;
        if (*r->p == ',') {
            r->p++;
            continue;
        }
        if (*r->p == close) {
            r->p++;
            return 0;
        }
        return -1;
    }
}

static int skip_value(json_reader *r, int depth) {
    skip_space(r);
    if (r->p >= r->end) return -1;
    switch (*r->p) {
    case '"': return read_string(r, NULL);
    case '{': return skip_container(r, depth, '}', 1);
    case '[': return skip_container(r, depth, ']', 0);
    default: {
        /* numbers, true, false, null: a run of their characters */
        const char *start = r->p;
        while (r->p < r->end && strchr("0123456789+-.eEtrufalsn", *r->p))
            r->p++;
        return r->p > start ? 0 : -1;
    }
    }
}

int aws_json_string_member(const char *json, size_t len, const char *key, buf *out) {
    json_reader r = {json, json + len};
    buf name;
    buf_init(&name, 4096);
    int found = 0, rc = -1;
    skip_space(&r);
    if (r.p >= r.end || *r.p != '{') goto cleanup;
    r.p++;
    skip_space(&r);
    if (r.p < r.end && *r.p == '}') {
        rc = 0;
        goto cleanup;
    }
    for (;;) {
        skip_space(&r);
        buf_reset(&name);
        if (read_string(&r, &name)) goto cleanup;
        skip_space(&r);
        if (r.p >= r.end || *r.p != ':') goto cleanup;
        r.p++;
        skip_space(&r);
        if (!found && !strcmp(buf_str(&name), key) && name.len == strlen(key) && r.p < r.end && *r.p == '"') {
            if (read_string(&r, out)) goto cleanup;
            found = 1;
        } else if (skip_value(&r, 1)) {
            goto cleanup;
        }
        skip_space(&r);
        if (r.p >= r.end) goto cleanup;
        if (*r.p == ',') {
            r.p++;
            continue;
        }
        if (*r.p == '}') break;
        goto cleanup;
    }
    rc = found;
cleanup:
    buf_free(&name);
    return rc;
}
