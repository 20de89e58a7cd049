/* One call of an AWS JSON-protocol service (awsJson1_0, awsJson1_1), for
 * every binding that speaks one (imgpipe.dynamodb, imgpipe.aws): a POST to
 * the endpoint's root with X-Amz-Target and Content-Type
 * application/x-amz-json-<version>, signed, retried and bounded by the
 * transport (aws_http.h), failures read by its JSON rules (__type, then
 * x-amzn-ErrorType; retryable codes, 5xx, 429), and the answer decoded
 * into a Lua table. */
#ifndef IMGPIPE_AWS_CALL_H
#define IMGPIPE_AWS_CALL_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "aws_http.h"
#include "aws_settings.h"

typedef struct aws_json_call {
    const char *signing_name; /* "dynamodb", "secretsmanager", … */
    const char *target;       /* X-Amz-Target: "DynamoDB_20120810.GetItem" */
    const char *version;      /* "1.0" or "1.1" */
    const char *body;         /* JSON text */
    size_t body_len;
    size_t max_response; /* cap on the answer; 0 = the transport's default */
    int64_t time;        /* signing time, Unix seconds; 0 = the clock */
} aws_json_call;

/* How deep a decoded answer may nest: DynamoDB's 32 levels of M and L
 * take two JSON levels each. */
#define AWS_CALL_JSON_MAX_DEPTH 128

/* Pushes the decode function of a private lua-cjson instance, strict (no
 * NaN, Infinity or hex numbers) and bounded by AWS_CALL_JSON_MAX_DEPTH:
 * scripts that change the shared instance's settings cannot change how
 * answers are read. */
void aws_call_push_decoder(lua_State *L);

/* Sends j to t with the state's client c (its url buffer is used for the
 * URL) and decodes the answer with the function at stack index decode (a
 * cjson decode). An empty answer is an empty table. Pushes the table and
 * returns 1, or pushes nil, err and returns 2 (InvalidResponse when the
 * answer is not a JSON object). Raises only when the URL cannot be built. */
int aws_call_json(lua_State *L, aws_http_client *c, const aws_target *t, const aws_json_call *j, int decode);

#endif
