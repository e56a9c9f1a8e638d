/* A C program against the installed kvpool (pkg-config kvpool): opens an
 * in-process pool from the TOML file argv[1], offloads one chunk, retrieves
 * it and compares the bytes. Exit status 0 when they match. */
#include <kvpool/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char* what) {
    fprintf(stderr, "hello.c: %s failed: %s\n", what, kvpool_last_error());
    return 1;
}

/* Offloads one chunk of shape from src, reads it back into dst, compares. */
static int round_trip(kvpool_pool* pool, const kvpool_shape* shape, unsigned char* src,
                      unsigned char* dst) {
    const size_t seg = (size_t)shape->segment_payload_bytes;
    void* src_base[64];
    void* dst_base[64];
    int32_t tokens[4096];
    kvpool_chunk_key key;
    size_t n = 0;
    uint32_t l;
    size_t i;
    if (shape->layers > 64 || shape->chunk_tokens > 4096) return fail("shape check");
    for (i = 0; i < shape->chunk_tokens; ++i) tokens[i] = (int32_t)(i * 13 + 1);
    if (kvpool_chain_keys(kvpool_namespace(shape->fingerprint, ""), tokens, shape->chunk_tokens,
                          shape->chunk_tokens, &key, 1) != 1) {
        return fail("kvpool_chain_keys");
    }
    for (l = 0; l < shape->layers; ++l) {
        src_base[l] = src + l * seg;
        dst_base[l] = dst + l * seg;
    }
    for (i = 0; i < shape->layers * seg; ++i) src[i] = (unsigned char)(i * 7 + 3);
    kvpool_kv_buffer in = {src_base, shape->layers, seg, 0};
    kvpool_kv_buffer out = {dst_base, shape->layers, seg, 0};
    if (kvpool_offload(pool, &key, 1, &in, &n) != KVPOOL_OK || n != 1) {
        return fail("kvpool_offload");
    }
    if (kvpool_lookup(pool, &key, 1, &n) != KVPOOL_OK || n != 1) return fail("kvpool_lookup");
    if (kvpool_retrieve(pool, &key, 1, &out, &n) != KVPOOL_OK || n != 1) {
        return fail("kvpool_retrieve");
    }
    if (memcmp(src, dst, shape->layers * seg) != 0) {
        fprintf(stderr, "hello.c: retrieved bytes differ\n");
        return 1;
    }
    return 0;
}

int main(int argc, char** argv) {
    kvpool_pool* pool = NULL;
    kvpool_shape shape;
    unsigned char* src;
    unsigned char* dst;
    int rc;
    if (argc != 2) {
        fprintf(stderr, "usage: %s POOL.toml\n", argv[0]);
        return 2;
    }
    if (kvpool_open(argv[1], NULL, &pool) != KVPOOL_OK) return fail("kvpool_open");
    if (kvpool_get_shape(pool, &shape) != KVPOOL_OK) return fail("kvpool_get_shape");
    src = malloc(shape.layers * shape.segment_payload_bytes);
    dst = calloc(shape.layers, shape.segment_payload_bytes);
    rc = (src && dst) ? round_trip(pool, &shape, src, dst) : fail("malloc");
    free(src);
    free(dst);
    kvpool_close(pool);
    if (rc == 0) printf("hello.c: ok (%u layers, %u bytes per segment)\n", shape.layers,
                        (unsigned)shape.segment_payload_bytes);
    return rc;
}
