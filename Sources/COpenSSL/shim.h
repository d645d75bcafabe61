#ifndef LAYERFS_COPENSSL_SHIM_H
#define LAYERFS_COPENSSL_SHIM_H
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/err.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/bio.h>
#include <openssl/rand.h>

/* BIO_get_mem_data is a macro over BIO_ctrl: Swift cannot import it. */
static inline long layerfs_bio_mem_data(BIO *bio, char **data) {
    return BIO_ctrl(bio, BIO_CTRL_INFO, 0, (void *)data);
}
#endif
