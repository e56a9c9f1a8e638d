/* kvpool/c.h: the C API of kvpool.
 *
 * One pool of KV-cache chunks over host memory and SSDs, either opened
 * in-process from a TOML configuration or reached through kvpoold, the
 * per-machine daemon ("unix:/path/to/socket"). The same calls work on both.
 *
 *   kvpool_params p = kvpool_default_params();
 *   p.tenant = "team-a";
 *   kvpool_pool * pool = NULL;
 *   if (kvpool_open("unix:/run/kvpool/kvpoold.sock", &p, &pool) != KVPOOL_OK) {
 *       fprintf(stderr, "%s\n", kvpool_last_error());
 *   }
 *
 * Conventions (as llama.h): opaque handles, a params struct filled by
 * kvpool_default_params(), every fallible call returns a kvpool_status and
 * leaves a message for kvpool_last_error() on the calling thread. No call
 * throws or aborts on bad input. Every function is thread-safe on the same
 * pool unless it says otherwise.
 *
 * Layout of KV in caller memory (kvpool_kv_buffer): segment (chunk c, layer l)
 * occupies kvpool_shape.segment_payload_bytes bytes at
 *   layer_base[l] + (c - first_chunk) * chunk_stride
 * Memory from kvpool_alloc_shared() is read and written by the devices (and
 * the daemon) directly; other memory is served through a copy.
 */
#ifndef KVPOOL_C_H
#define KVPOOL_C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define KVPOOL_API
#else
#define KVPOOL_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes; the same values as kvpool::StatusCode. */
typedef enum kvpool_status {
    KVPOOL_OK               = 0,
    KVPOOL_NOT_FOUND        = 1, /* not there (a miss is not an error)          */
    KVPOOL_INVALID_ARGUMENT = 2, /* the caller's input; the message names it    */
    KVPOOL_IO_ERROR         = 3, /* a device or the daemon failed; retry may help */
    KVPOOL_CORRUPTION       = 4, /* stored bytes failed their checksum          */
    KVPOOL_NO_SPACE         = 5, /* capacity or quota exhausted                 */
    KVPOOL_BUSY             = 6, /* a bounded queue is full; retry later        */
    KVPOOL_UNSUPPORTED      = 7, /* not built in or not offered by the system   */
    KVPOOL_ABORTED          = 8, /* cancelled (pool closing)                    */
} kvpool_status;

typedef struct kvpool_pool    kvpool_pool;    /* opaque */
typedef struct kvpool_request kvpool_request; /* opaque: one asynchronous retrieval */

typedef struct kvpool_chunk_key {
    uint64_t hi;
    uint64_t lo;
} kvpool_chunk_key;

/* The pages of a daemon connection's shared region (the memory of
 * kvpool_alloc_shared, which the daemon's devices read into directly). On a
 * VM a direct read into 4 KiB pages moves one DMA segment per page: about
 * half as fast as into 2 MiB pages on this project's VMs (docs/daemon.md). */
typedef enum kvpool_region_pages {
    KVPOOL_REGION_TRANSPARENT = 0, /* advised for transparent huge pages; 2 MiB pages where
                                      /sys/kernel/mm/transparent_hugepage/shmem_enabled
                                      allows them, 4 KiB otherwise (default)           */
    KVPOOL_REGION_HUGETLB     = 1, /* 2 MiB hugetlb pages (vm.nr_hugepages); TRANSPARENT,
                                      with a warning, when not enough are free         */
    KVPOOL_REGION_SMALL       = 2, /* 4 KiB pages                                      */
} kvpool_region_pages;

typedef struct kvpool_params {
    const char * tenant;       /* daemon: tenant name; NULL = "default"              */
    uint64_t     shared_bytes; /* daemon: bytes of the shared region; 0 = 256 MiB     */
    uint32_t     timeout_ms;   /* daemon: longest wait for an answer; 0 = 10000       */
    bool         reconnect;    /* daemon: reconnect after a lost connection          */
    kvpool_region_pages region_pages; /* daemon: pages of the shared region; 0 = TRANSPARENT */
} kvpool_params;

typedef struct kvpool_shape {
    uint32_t layers;
    uint32_t kv_heads;
    uint32_t head_dim;
    uint32_t dtype_bytes;
    uint32_t chunk_tokens;
    uint64_t segment_payload_bytes; /* bytes of one (chunk, layer) segment       */
    uint64_t fingerprint;           /* kvpool::ModelShape::Fingerprint()         */
} kvpool_shape;

typedef struct kvpool_kv_buffer {
    void *   const * layer_base;   /* n_layers pointers (must equal shape.layers) */
    uint32_t         n_layers;
    size_t           chunk_stride; /* bytes between consecutive chunks of a layer */
    size_t           first_chunk;  /* chunk index held at layer_base[l]           */
} kvpool_kv_buffer;

typedef struct kvpool_stats {
    uint64_t chunks;            /* chunks visible to lookup                    */
    uint64_t segments;
    uint64_t lookups;
    uint64_t hit_chunks;
    uint64_t retrieved_chunks;
    uint64_t offloaded_chunks;
    uint64_t evicted_chunks;
    uint64_t bytes_read_from_copies;
    uint64_t bytes_read_from_home;
    uint64_t capacity_bytes;    /* all devices                                 */
    uint64_t used_bytes;
    uint32_t n_devices;
} kvpool_stats;

/* Called once per layer, in increasing order, when that layer's segments have
 * landed; valid_chunks never grows between calls. Runs on an internal thread
 * and must not call back into the pool. */
typedef void (*kvpool_layer_ready_fn)(void * user_data, uint32_t layer, size_t valid_chunks);

KVPOOL_API kvpool_params kvpool_default_params(void);

/* "ok", "invalid argument", ... (static storage). */
KVPOOL_API const char * kvpool_status_name(kvpool_status status);

/* The message of the last call on this thread that did not return KVPOOL_OK
 * ("" when there was none). Valid until the next kvpool call on this thread. */
KVPOOL_API const char * kvpool_last_error(void);

/* target: "unix:PATH" connects to kvpoold at PATH; anything else is the path
 * of a TOML configuration opened in-process. params may be NULL (defaults).
 * On success *out is a pool to release with kvpool_close. */
KVPOOL_API kvpool_status kvpool_open(const char * target, const kvpool_params * params,
                                     kvpool_pool ** out);

/* Waits for pending offloads, then releases the pool. NULL is ignored. */
KVPOOL_API void kvpool_close(kvpool_pool * pool);

KVPOOL_API kvpool_status kvpool_get_shape(const kvpool_pool * pool, kvpool_shape * out);

/* The namespace of one (model, tenant salt) combination, and the chained keys
 * of every full chunk of tokens (kvpool/keys.h). kvpool_chain_keys writes at
 * most max_keys keys and returns how many full chunks tokens has. */
KVPOOL_API kvpool_chunk_key kvpool_namespace(uint64_t model_fingerprint, const char * tenant_salt);
KVPOOL_API size_t kvpool_chain_keys(kvpool_chunk_key ns, const int32_t * tokens, size_t n_tokens,
                                    uint32_t chunk_tokens, kvpool_chunk_key * keys, size_t max_keys);

/* The key of a partial chunk: the n_tokens tokens (fewer than a chunk) that
 * follow the full chunk parent (a zero key at the start of a prompt). It never
 * equals a full chunk's key, and partial chunks of different lengths never
 * share one. It is a leaf: store it as the last key of its parent's chain, and
 * find it with kvpool_find_child. Returns the zero key, with a message for
 * kvpool_last_error(), when n_tokens is 0 or tokens is NULL. */
KVPOOL_API kvpool_chunk_key kvpool_partial_chunk_key(kvpool_chunk_key ns, kvpool_chunk_key parent,
                                                     const int32_t * tokens, size_t n_tokens);

/* Number of leading chunks of keys (a chained prefix) present. */
KVPOOL_API kvpool_status kvpool_lookup(kvpool_pool * pool, const kvpool_chunk_key * keys,
                                       size_t n_keys, size_t * n_present);

/* *index receives the index of the first of candidates present as a child of
 * prefix[n_prefix - 1] (of no chunk when n_prefix is 0), or n_candidates when
 * none is: one query for a leaf the caller can only guess among several, such
 * as the partial chunks a prompt could continue with, longest first. prefix is
 * what kvpool_lookup found; it is not checked again. A remote tier, when the
 * pool has one, is asked for candidates[0] only. Counts as one lookup. */
KVPOOL_API kvpool_status kvpool_find_child(kvpool_pool * pool, const kvpool_chunk_key * prefix,
                                           size_t n_prefix, const kvpool_chunk_key * candidates,
                                           size_t n_candidates, size_t * index);

/* Reads the leading present chunks into dst (blocking). *n_chunks receives the
 * number of leading chunks now held by the caller, counting dst->first_chunk. */
KVPOOL_API kvpool_status kvpool_retrieve(kvpool_pool * pool, const kvpool_chunk_key * keys,
                                         size_t n_keys, const kvpool_kv_buffer * dst,
                                         size_t * n_chunks);

/* Starts a retrieval; on_layer_ready may be NULL. dst must stay valid until
 * kvpool_request_wait returns. *out is released by kvpool_request_wait. */
KVPOOL_API kvpool_status kvpool_retrieve_async(kvpool_pool * pool, const kvpool_chunk_key * keys,
                                               size_t n_keys, const kvpool_kv_buffer * dst,
                                               kvpool_layer_ready_fn on_layer_ready,
                                               void * user_data, kvpool_request ** out);

/* Waits for the retrieval, stores its chunk count in *n_chunks (may be NULL)
 * and releases the request. */
KVPOOL_API kvpool_status kvpool_request_wait(kvpool_request * request, size_t * n_chunks);

/* Stores chunks [src->first_chunk, n_keys) and waits until they are written.
 * *n_stored (may be NULL) receives the chunks newly stored. */
KVPOOL_API kvpool_status kvpool_offload(kvpool_pool * pool, const kvpool_chunk_key * keys,
                                        size_t n_keys, const kvpool_kv_buffer * src,
                                        size_t * n_stored);

/* Removes chunks; *n_removed (may be NULL) receives how many were present. */
KVPOOL_API kvpool_status kvpool_remove(kvpool_pool * pool, const kvpool_chunk_key * keys,
                                       size_t n_keys, size_t * n_removed);

/* Waits for every offload submitted so far. */
KVPOOL_API kvpool_status kvpool_flush(kvpool_pool * pool);

KVPOOL_API kvpool_status kvpool_get_stats(kvpool_pool * pool, kvpool_stats * out);

/* Everything as JSON (per device; for a daemon also per tenant). *out is
 * released with kvpool_free_string. */
KVPOOL_API kvpool_status kvpool_stats_json(kvpool_pool * pool, char ** out);
KVPOOL_API void          kvpool_free_string(char * s);

/* Page-aligned memory that devices (and the daemon) read and write directly.
 * In-process, from 4 MiB on it is 2 MiB-aligned and advised for transparent
 * huge pages; through kvpoold it lies in the connection's shared region
 * (its pages: docs/daemon.md). Returns NULL (see kvpool_last_error) when
 * none is left. Release with kvpool_free_shared on the same pool, before
 * kvpool_close. */
KVPOOL_API void * kvpool_alloc_shared(kvpool_pool * pool, size_t bytes);
KVPOOL_API void   kvpool_free_shared(kvpool_pool * pool, void * ptr);

#ifdef __cplusplus
}
#endif

#endif /* KVPOOL_C_H */
