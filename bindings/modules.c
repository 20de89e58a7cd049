#include "modules.h"

/* Adding a module is one line here. Keep sorted. */
/* One module a line, whatever their number: */
/* clang-format off */
const luaL_Reg imgpipe_modules[] = {
    {"imgpipe.aws", luaopen_imgpipe_aws},
    {"imgpipe.cache", luaopen_imgpipe_cache},
    {"imgpipe.digest", luaopen_imgpipe_digest},
    {"imgpipe.dynamodb", luaopen_imgpipe_dynamodb},
    {"imgpipe.image", luaopen_imgpipe_image},
    {"imgpipe.log", luaopen_imgpipe_log},
    {"imgpipe.os", luaopen_imgpipe_os},
    {"imgpipe.presign", luaopen_imgpipe_presign},
    {"imgpipe.random", luaopen_imgpipe_random},
    {"imgpipe.s3", luaopen_imgpipe_s3},
    {"imgpipe.sigv4", luaopen_imgpipe_sigv4},
    {NULL, NULL},
};
/* clang-format on */
