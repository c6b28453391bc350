/* The few declarations of twemproxy's headers that its hashkit/nc_ketama.c,
 * nc_md5.c and nc_fnv.c use, so that those files compile unmodified. */
#ifndef TXSCALES_KETAMA_SHIM_H
#define TXSCALES_KETAMA_SHIM_H
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef int rstatus_t;
#define NC_OK 0
#define NC_ERROR -1
#define NC_ENOMEM -2
#define ASSERT(x)
#define log_debug(...)
#define log_error(...)
#define nc_realloc(p, n) realloc((p), (n))

struct string { uint32_t len; uint8_t *data; };
struct continuum { uint32_t index; uint32_t value; };
struct server { struct string name; uint32_t weight; int64_t next_retry; };
struct array { uint32_t nelem; struct server *elem; };
#define array_n(a) ((a)->nelem)
#define array_get(a, i) (&(a)->elem[(i)])

struct server_pool {
    uint32_t idx;
    struct string name;
    struct array server;
    uint32_t ncontinuum;
    uint32_t nserver_continuum;
    struct continuum *continuum;
    uint32_t nlive_server;
    int64_t next_rebuild;
    int auto_eject_hosts;
};

static inline int64_t nc_usec_now(void) { return 1; }

void md5_signature(const unsigned char *key, unsigned long length, unsigned char *result);
uint32_t hash_md5(const char *key, size_t key_length);
uint32_t hash_fnv1a_64(const char *key, size_t key_length);
rstatus_t ketama_update(struct server_pool *pool);
uint32_t ketama_dispatch(const struct continuum *continuum, uint32_t ncontinuum, uint32_t hash);
#endif
