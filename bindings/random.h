/* Random identifiers from the CSPRNG (OpenSSL's RAND_bytes). */
#ifndef IMGPIPE_RANDOM_H
#define IMGPIPE_RANDOM_H

/* Writes a version 4 UUID ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx") into out.
 * Returns 0, or -1 when the CSPRNG fails (out is then ""). */
int random_uuid(char out[37]);

#endif
