// A C interface to hnswlib (Debian: libhnswlib-dev, header-only C++), for LayerIndex.
#ifndef CHNSW_H
#define CHNSW_H
#ifdef __cplusplus
extern "C" {
#endif

/// The library's version string (placeholder until the index is implemented).
const char *chnsw_version(void);

#ifdef __cplusplus
}
#endif
#endif
