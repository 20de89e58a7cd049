/* A request header as the AWS layer passes it around: borrowed strings. */
#ifndef IMGPIPE_AWS_HEADER_H
#define IMGPIPE_AWS_HEADER_H

typedef struct aws_header {
    const char *name;
    const char *value;
} aws_header;

#endif
