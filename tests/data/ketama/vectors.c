/* Print which server twemproxy's ketama picks for keys, with its md5 and
 * fnv1a_64 key hashes: see README.  Usage: vectors NAME:WEIGHT... < keys
 * (one key a line); prints "key md5-server fnv1a_64-server" (indexes). */
#include <string.h>
#include "shim.h"

int main(int argc, char **argv) {
    struct server_pool pool;
    struct server servers[256];
    char line[4096];
    int i;

    memset(&pool, 0, sizeof(pool));
    for (i = 1; i < argc; i++) {
        char *colon = strrchr(argv[i], ':');
        *colon = '\0';
        servers[i - 1].name.data = (uint8_t *)argv[i];
        servers[i - 1].name.len = (uint32_t)strlen(argv[i]);
        servers[i - 1].weight = (uint32_t)atoi(colon + 1);
        servers[i - 1].next_retry = 0;
    }
    pool.server.nelem = (uint32_t)(argc - 1);
    pool.server.elem = servers;
    if (ketama_update(&pool) != NC_OK) return 1;
    printf("# points %u\n", pool.ncontinuum);
    while (fgets(line, sizeof(line), stdin) != NULL) {
        size_t n = strlen(line);
        if (n > 0 && line[n - 1] == '\n') line[--n] = '\0';
        printf("%s %u %u\n", line,
               ketama_dispatch(pool.continuum, pool.ncontinuum, hash_md5(line, n)),
               ketama_dispatch(pool.continuum, pool.ncontinuum, hash_fnv1a_64(line, n)));
    }
    return 0;
}
