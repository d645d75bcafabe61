#ifndef LAYERFS_COPENSSL_SHIM_H
#define LAYERFS_COPENSSL_SHIM_H
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/err.h>
#include <openssl/crypto.h>
#endif
