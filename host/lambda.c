/* Placeholder until the Runtime API loop lands. */
#include <stdio.h>

#include "lambda.h"

int lambda_main(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "imgpipe: lambda mode is not built yet\n");
    return 1;
}
