/* The rules for the names imgpipe checks, in one place. Each returns 1 when
 * the len bytes at s are a valid name of that kind. */
#ifndef IMGPIPE_NAMES_H
#define IMGPIPE_NAMES_H

#include <stddef.h>

/* Pipeline names (a script in the pipelines folder, a route's pipeline,
 * Lambda's _HANDLER): 1 to 255 letters, digits, '_' and '-'. */
int names_pipeline_ok(const char *s, size_t len);

/* Bucket names as the host accepts them: 1 to 255 letters, digits, '.',
 * '-' and '_' (S3's own rules are stricter; the service says which). */
int names_bucket_ok(const char *s, size_t len);

/* DynamoDB table and index names: 3 to 255 letters, digits, '_', '-', '.'. */
int names_table_ok(const char *s, size_t len);

/* S3 user metadata names: 1 to 128 letters, digits, '-', '_' and '.'. */
int names_metadata_ok(const char *s, size_t len);

#endif
