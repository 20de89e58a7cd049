/* Kept for the files that include it by this name (image.c): the log line
 * format lives in core/logline.h. */
#ifndef IMGPIPE_LOG_H
#define IMGPIPE_LOG_H

#include "logline.h"

#endif
