/* Small XML reader for AWS answers, on expat.
 *
 * aws_xml_flatten turns a document into a flat list of events that callers
 * walk without holding any parser state: one START event per element and one
 * TEXT event per leaf element (an element without child elements), each with
 * the path of local names from the root ("ListBucketResult/Contents/Key").
 * Namespace prefixes are dropped; DTDs and entity declarations are refused. */
#ifndef IMGPIPE_AWS_XML_H
#define IMGPIPE_AWS_XML_H

#include <stddef.h>

#include "buf.h"

#define AWS_XML_MAX_DEPTH 32

enum { AWS_XML_START = 'S', AWS_XML_TEXT = 'T' };

/* Parses len bytes of data into events appended to out (bounded by out's
 * maximum). Returns 0, or -1 with a message in err. */
int aws_xml_flatten(const char *data, size_t len, buf *out, char *err, size_t errlen);

typedef struct aws_xml_event {
    int kind;         /* AWS_XML_START or AWS_XML_TEXT */
    const char *path; /* NUL-terminated, as is text */
    size_t path_len;
    const char *text; /* TEXT only: the element's character data */
    size_t text_len;
} aws_xml_event;

typedef struct aws_xml_iter {
    const char *p, *end;
} aws_xml_iter;

void aws_xml_iter_init(aws_xml_iter *it, const buf *events);
/* 1 and fills ev while there is an event, then 0. */
int aws_xml_next(aws_xml_iter *it, aws_xml_event *ev);
/* 1 when ev's path equals path. */
int aws_xml_path_is(const aws_xml_event *ev, const char *path);

/* The text of the first leaf at path, NULL when absent; convenience for
 * answers with a handful of fields. */
const char *aws_xml_find(const buf *events, const char *path, size_t *len);

/* The text of the first leaf ("Code", "Message") of an <Error> element in
 * an AWS error document: <Error> itself (REST-XML, S3), <ErrorResponse>
 * <Error> (query protocol, S3 Control), <Response><Errors><Error> (EC2);
 * NULL when absent. */
const char *aws_xml_find_error(const buf *events, const char *leaf, size_t *len);

#endif
