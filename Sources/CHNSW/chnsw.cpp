#include "chnsw.h"

extern "C" const char *chnsw_version(void) { return "hnswlib-0.6.2"; }
