// A C interface to hnswlib (Debian: libhnswlib-dev 0.6.2, header-only C++), for LayerIndex.
//
// One index = hnswlib::HierarchicalNSW<float> over hnswlib::InnerProductSpace. Vectors are expected
// to be L2-normalized, so the inner product is the cosine similarity; the distance hnswlib reports
// (and chnsw_search returns) is 1 - inner product, smallest first.
//
// Errors: no C++ exception ever leaves this interface. Every call that can fail returns a CHNSW_*
// code (or NULL / a negative count) and, when `err` is not NULL, writes a NUL-terminated message of
// at most `errlen` bytes into it. There is no global "last error": calls are independent.
//
// Threads: every function may be called from any thread at any time on the same index, except
// chnsw_free. Internally a readers-writer lock lets searches (and saves) run in parallel with one
// another, while adds, deletions, growth and changes of ef take the index exclusively. (hnswlib
// 0.6.2 documents concurrent addPoint + searchKnn as supported, but its searchKnn reads the entry
// point and the top level without its own lock, and ef is one shared field, so we do not rely on it.)
#ifndef CHNSW_H
#define CHNSW_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Result codes. CHNSW_OK is 0; every failure is positive.
enum {
    CHNSW_OK = 0,
    /// A bad argument: dimension, M, a vector with a NaN or infinity, a NULL pointer.
    CHNSW_ERR_ARGUMENT = 1,
    /// chnsw_load: the file does not exist.
    CHNSW_ERR_NOT_FOUND = 2,
    /// A read, write, fsync or rename failed (the message carries strerror).
    CHNSW_ERR_IO = 3,
    /// chnsw_load: the file is not a well-formed hnswlib inner-product index (truncated, foreign,
    /// damaged graph).
    CHNSW_ERR_CORRUPT = 4,
    /// chnsw_load: a well-formed index whose vectors have another dimension.
    CHNSW_ERR_DIMENSION = 5,
    /// An allocation failed.
    CHNSW_ERR_NO_MEMORY = 6,
    /// chnsw_mark_deleted: no such label, or it is already deleted.
    CHNSW_ERR_LABEL = 7,
    /// hnswlib threw something else (an internal consistency check).
    CHNSW_ERR_INTERNAL = 8,
};

/// An index (opaque).
typedef struct chnsw_index chnsw_index;

/// The hnswlib version this was built against ("hnswlib-0.6.2").
const char *chnsw_version(void);

/// A new, empty index for vectors of `dim` floats, with room for `max_elements` before it grows
/// (at least 1). `m`: graph degree (2...10000; hnswlib's default 16). `ef_construction`: the
/// candidate list while inserting (at least 1; hnswlib uses max(ef_construction, m)). `seed` seeds
/// the level generator: with one thread, the same inserts in the same order give the same graph.
/// NULL on failure, with `*code` (if not NULL) and `err` set.
chnsw_index *chnsw_create(size_t dim, size_t max_elements, size_t m, size_t ef_construction,
                          uint64_t seed, int *code, char *err, size_t errlen);

/// Loads an index saved by chnsw_save. The file is validated before and after hnswlib reads it
/// (header fields against each other and against `dim`, the exact file length they imply, every
/// link in the graph, every vector finite), so a truncated, random, foreign or damaged file is
/// CHNSW_ERR_CORRUPT, a missing one CHNSW_ERR_NOT_FOUND, another dimension CHNSW_ERR_DIMENSION.
/// The loaded index has room for max(max_elements, its element count, 1).
chnsw_index *chnsw_load(const char *path, size_t dim, size_t max_elements, int *code, char *err,
                        size_t errlen);

/// Saves durably and atomically: hnswlib writes `path`.tmp, whose length is checked against what
/// it must be, then it is fsynced, renamed over `path`, and the directory is fsynced. On failure
/// `path` is untouched and the temporary file removed. Searches continue meanwhile.
int chnsw_save(chnsw_index *index, const char *path, char *err, size_t errlen);

/// Adds one vector (`dim` floats, copied) under `label`. An existing label's vector is replaced
/// (and undeleted), as hnswlib does. A full index first doubles its capacity.
int chnsw_add(chnsw_index *index, const float *vector, uint64_t label, char *err, size_t errlen);

/// Adds `n` vectors (row-major, n x dim) with their labels, using up to `threads` threads (0 or 1:
/// the calling thread only, in order, deterministic). Capacity is grown once beforehand. On
/// failure some of the batch may have been added.
int chnsw_add_batch(chnsw_index *index, const float *vectors, const uint64_t *labels, size_t n,
                    size_t threads, char *err, size_t errlen);

/// Marks `label` deleted: searches no longer return it; it still occupies its slot. Adding the
/// label again brings it back with the new vector.
int chnsw_mark_deleted(chnsw_index *index, uint64_t label, char *err, size_t errlen);

/// The (at most) `k` nearest neighbours of `query` (`dim` floats), best first: their labels and
/// distances (1 - inner product) in `labels[0..<n]` and `distances[0..<n]`. `ef` is the search's
/// candidate list (hnswlib uses max(ef, k)). Returns n >= 0, or -(error code).
int64_t chnsw_search(chnsw_index *index, const float *query, size_t k, size_t ef,
                     uint64_t *labels, float *distances, char *err, size_t errlen);

/// Elements stored and not deleted.
size_t chnsw_count(chnsw_index *index);
/// Elements marked deleted (they still occupy slots).
size_t chnsw_deleted_count(chnsw_index *index);
/// Slots allocated (grows by doubling).
size_t chnsw_capacity(chnsw_index *index);
/// Floats per vector.
size_t chnsw_dimension(const chnsw_index *index);
/// The graph degree M and ef_construction (as created, or as read from the file).
size_t chnsw_m(chnsw_index *index);
size_t chnsw_ef_construction(chnsw_index *index);

/// Frees the index. No other call on it may be running or follow.
void chnsw_free(chnsw_index *index);

#ifdef __cplusplus
}
#endif
#endif
