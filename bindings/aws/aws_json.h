/* Reading a top-level string member of a JSON object, for the few places in
 * the AWS core that need one without a Lua state: DynamoDB error bodies
 * (__type, message) and container credentials (AccessKeyId, Token, …). */
#ifndef IMGPIPE_AWS_JSON_H
#define IMGPIPE_AWS_JSON_H

#include <stddef.h>

#include "buf.h"

/* Looks for key among the members of the top-level object in json. Returns
 * 1 and appends the unescaped UTF-8 value to out when the member is there
 * and is a string; 0 when absent or not a string; -1 when the text is not
 * a JSON object or out's maximum is reached. */
int aws_json_string_member(const char *json, size_t len, const char *key, buf *out);

#endif
