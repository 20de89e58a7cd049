/* Lambda mode: the Runtime API loop (imgpipe lambda, or started as bootstrap). */
#ifndef IMGPIPE_LAMBDA_H
#define IMGPIPE_LAMBDA_H

int lambda_main(int argc, char **argv);

#endif
