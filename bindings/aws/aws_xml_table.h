/* AWS XML documents as Lua tables and back (imgpipe.aws): enough for the
 * answers and bodies of REST-XML and query-protocol services (S3 Control's
 * CreateJob and DescribeJob, STS, error documents).
 *
 * Reading (from aws_xml_flatten's events): an element with child elements
 * is a table of its children by local name; a leaf is its text (a string,
 * "" when empty); a name that comes more than once under one parent is a
 * list of the values in document order, and so is every name in the lists
 * set even when it comes once (the query protocol's "member"). Attributes,
 * namespace prefixes and the text between child elements are dropped.
 *
 * Writing: <root xmlns="…">…</root> with no declaration. A string, number
 * or boolean is escaped text; a table is its children, ordered by the
 * order ranks and then by name, a list value repeating its element once per
 * item; {} is an empty element. Names must be XML names, text UTF-8 without
 * control characters other than tab and newlines; nesting is bounded. */
#ifndef IMGPIPE_AWS_XML_TABLE_H
#define IMGPIPE_AWS_XML_TABLE_H

#include <lua.h>

#include "buf.h"

/* 1 when the n bytes at s can be an element name: a letter or '_', then
 * letters, digits, '_', '-' and '.' (ASCII; at most 255). */
int aws_xml_name_ok(const char *s, size_t n);

/* Pushes the root element's value and its name (two values) built from
 * events; lists is the stack index of a set {name = true}, or 0. */
void aws_xml_table_push(lua_State *L, const buf *events, int lists);

/* The options of writing: arg and field name the argument for errors;
 * ranks is the stack index of {name = rank} (0: by name only); xmlns may
 * be NULL. */
typedef struct aws_xml_write_opts {
    int arg;
    const char *field;
    int ranks;
    const char *xmlns;
} aws_xml_write_opts;

/* Appends <root …>value</root> for the value at idx to out; raises on a
 * value that cannot be written (naming its place) or a full out. */
void aws_xml_table_write(lua_State *L, const char *root, int idx, buf *out, const aws_xml_write_opts *o);

#endif
