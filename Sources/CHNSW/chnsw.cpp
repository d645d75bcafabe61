// The C interface of chnsw.h over hnswlib 0.6.2 (Debian libhnswlib-dev, header-only).
//
// hnswlib is used through its public members only; nothing of it is copied here. Three things this
// file adds around it:
//  - no exception crosses the C boundary (every entry point catches everything);
//  - loadIndex trusts the sizes in the file, so a file is validated before hnswlib reads it (the
//    header's fields against each other and the dimension, the exact length they imply) and the
//    graph after (every link in range and on an existing level, the entry point on the top level,
//    labels unique, vectors finite): a truncated, random or foreign file is an error, not a crash;
//  - a readers-writer lock (see chnsw.h) and an atomic, durable save.
//
// Quirks of hnswlib 0.6.2 met on the way (checked with ASan/UBSan/TSan builds of this file):
//  - loadIndex never initializes num_deleted_ (it only increments it): zeroed here before loading;
//  - its SSE prefetch in searchBaseLayer reads the word after a full upper-level link list, up to
//    3 bytes past that list's malloc block (allocated with +1 byte): ASan reports it; with glibc's
//    malloc those bytes are always mapped, so it cannot fault;
//  - labels sit at 4-byte alignment inside an element (UBSan -fsanitize=alignment): fine on x86-64;
//  - searchKnn reads the entry point and the top level without a lock, so it must not run during
//    an addPoint that raises the top level: hence adds are exclusive here;
//  - hnswlib's addPoint takes per-element locks in an order TSan calls a potential inversion; with
//    one adder at a time (chnsw_add) no other thread takes them.

#include "chnsw.h"

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hnswlib/hnswlib.h>

namespace {

using HNSW = hnswlib::HierarchicalNSW<float>;
using hnswlib::labeltype;
using hnswlib::linklistsizeint;
using hnswlib::tableint;

// Bounds on what we create and accept from a file.
constexpr size_t kMaxDimension = 1 << 16;
constexpr size_t kMaxM = 10000;              // hnswlib caps M here
constexpr size_t kMaxEfConstruction = 1 << 20;
constexpr int kMaxLevel = 255;               // with M >= 2 real levels stay below ~60
constexpr size_t kMaxElements = std::numeric_limits<tableint>::max() - 1;  // -1 is "no entry point"

// The fixed header hnswlib's saveIndex writes, field by field in this order (native endianness).
struct Header {
    uint64_t offset_level0;
    uint64_t max_elements;
    uint64_t cur_element_count;
    uint64_t size_data_per_element;
    uint64_t label_offset;
    uint64_t offset_data;
    int32_t maxlevel;
    uint32_t enterpoint_node;
    uint64_t max_m;
    uint64_t max_m0;
    uint64_t m;
    double mult;
    uint64_t ef_construction;
};
constexpr size_t kHeaderSize = 6 * 8 + 4 + 4 + 3 * 8 + 8 + 8;  // 96 bytes, no padding on disk

static_assert(sizeof(size_t) == 8, "hnswlib's file format here assumes a 64-bit size_t");
static_assert(sizeof(labeltype) == 8, "labels are 64-bit");
static_assert(sizeof(tableint) == 4 && sizeof(linklistsizeint) == 4, "hnswlib 0.6.x layout");

struct Failure {
    int code;
    std::string message;
};

int report(char *err, size_t errlen, int code, const std::string &message) {
    if (err != nullptr && errlen > 0) std::snprintf(err, errlen, "%s", message.c_str());
    return code;
}

std::string errno_text(int e) { return std::string(std::strerror(e)); }

// Runs `body`, turning any exception into a code and a message.
template <typename Body>
int guarded(char *err, size_t errlen, const char *what, Body body) {
    try {
        return body();
    } catch (const Failure &f) {
        return report(err, errlen, f.code, f.message);
    } catch (const std::bad_alloc &) {
        return report(err, errlen, CHNSW_ERR_NO_MEMORY, std::string(what) + ": out of memory");
    } catch (const std::exception &e) {
        // hnswlib signals allocation failures with runtime_error("Not enough memory...").
        std::string m = e.what();
        int code = m.find("Not enough memory") != std::string::npos ? CHNSW_ERR_NO_MEMORY
                                                                     : CHNSW_ERR_INTERNAL;
        return report(err, errlen, code, std::string(what) + ": hnswlib: " + m);
    } catch (...) {
        return report(err, errlen, CHNSW_ERR_INTERNAL, std::string(what) + ": unknown exception");
    }
}

bool all_finite(const float *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!std::isfinite(v[i])) return false;
    return true;
}

size_t size_links_level0(size_t max_m0) { return max_m0 * sizeof(tableint) + sizeof(linklistsizeint); }
size_t size_links_upper(size_t max_m) { return max_m * sizeof(tableint) + sizeof(linklistsizeint); }

// A FILE* that closes itself.
struct File {
    FILE *f = nullptr;
    ~File() {
        if (f != nullptr) std::fclose(f);
    }
};

[[noreturn]] void corrupt(const std::string &path, const std::string &why) {
    throw Failure{CHNSW_ERR_CORRUPT, path + ": not a valid hnswlib index (" + why + ")"};
}

// Reads and checks the header and the layout of `path` without trusting anything in it; returns the
// header. Throws Failure.
Header validate_file(const std::string &path, size_t dim) {
    File file;
    file.f = std::fopen(path.c_str(), "rb");
    if (file.f == nullptr) {
        int e = errno;
        if (e == ENOENT)
            throw Failure{CHNSW_ERR_NOT_FOUND, path + ": no such file"};
        throw Failure{CHNSW_ERR_IO, path + ": cannot open: " + errno_text(e)};
    }
    struct stat st;
    if (fstat(fileno(file.f), &st) != 0)
        throw Failure{CHNSW_ERR_IO, path + ": cannot stat: " + errno_text(errno)};
    if (!S_ISREG(st.st_mode)) throw Failure{CHNSW_ERR_IO, path + ": not a regular file"};
    const uint64_t file_size = static_cast<uint64_t>(st.st_size);
    if (file_size < kHeaderSize)
        corrupt(path, std::to_string(file_size) + " bytes, shorter than the " +
                          std::to_string(kHeaderSize) + "-byte header");

    Header h;
    unsigned char raw[kHeaderSize];
    if (std::fread(raw, 1, kHeaderSize, file.f) != kHeaderSize)
        throw Failure{CHNSW_ERR_IO, path + ": cannot read the header: " + errno_text(errno)};
    {
        size_t at = 0;
        auto take = [&](auto &field) {
            std::memcpy(&field, raw + at, sizeof(field));
            at += sizeof(field);
        };
        take(h.offset_level0);
        take(h.max_elements);
        take(h.cur_element_count);
        take(h.size_data_per_element);
        take(h.label_offset);
        take(h.offset_data);
        take(h.maxlevel);
        take(h.enterpoint_node);
        take(h.max_m);
        take(h.max_m0);
        take(h.m);
        take(h.mult);
        take(h.ef_construction);
    }

    // The graph parameters, as hnswlib's constructor derives them from M.
    if (h.m < 2 || h.m > kMaxM) corrupt(path, "M = " + std::to_string(h.m));
    if (h.max_m != h.m || h.max_m0 != 2 * h.m) corrupt(path, "maxM/maxM0 do not match M");
    const double mult = 1.0 / std::log(static_cast<double>(h.m));
    if (!std::isfinite(h.mult) || std::fabs(h.mult - mult) > 1e-9 * mult)
        corrupt(path, "level multiplier does not match M");
    if (h.ef_construction < h.m || h.ef_construction > kMaxEfConstruction)
        corrupt(path, "ef_construction = " + std::to_string(h.ef_construction));

    // The element layout: [level-0 links][vector][label], as for an inner-product space.
    const uint64_t links0 = size_links_level0(h.max_m0);
    if (h.offset_level0 != 0 || h.offset_data != links0) corrupt(path, "element layout");
    if (h.label_offset <= h.offset_data || (h.label_offset - h.offset_data) % sizeof(float) != 0 ||
        h.label_offset - h.offset_data > kMaxDimension * sizeof(float))
        corrupt(path, "element layout");
    if (h.size_data_per_element != h.label_offset + sizeof(labeltype)) corrupt(path, "element size");
    const uint64_t file_dim = (h.label_offset - h.offset_data) / sizeof(float);
    if (file_dim != dim)
        throw Failure{CHNSW_ERR_DIMENSION, path + ": the index holds vectors of dimension " +
                                               std::to_string(file_dim) + ", expected " +
                                               std::to_string(dim)};

    // Counts and the entry point.
    const uint64_t n = h.cur_element_count;
    if (n > h.max_elements || n > kMaxElements)
        corrupt(path, "element count " + std::to_string(n) + " exceeds capacity " +
                          std::to_string(h.max_elements));
    if (n > (file_size - kHeaderSize) / h.size_data_per_element)
        corrupt(path, "truncated: " + std::to_string(n) + " elements of " +
                          std::to_string(h.size_data_per_element) + " bytes do not fit in " +
                          std::to_string(file_size) + " bytes");
    if (n == 0) {
        if (h.maxlevel != -1 || h.enterpoint_node != std::numeric_limits<uint32_t>::max())
            corrupt(path, "empty index with an entry point");
    } else if (h.maxlevel < 0 || h.maxlevel > kMaxLevel || h.enterpoint_node >= n) {
        corrupt(path, "entry point " + std::to_string(h.enterpoint_node) + " at level " +
                          std::to_string(h.maxlevel));
    }

    // The upper-level link lists: for each element a 32-bit byte count, then that many bytes, a
    // whole number of levels, no more than the top level. The file must end exactly there.
    const uint64_t per_level = size_links_upper(h.max_m);
    uint64_t pos = kHeaderSize + n * h.size_data_per_element;
    if (fseeko(file.f, static_cast<off_t>(pos), SEEK_SET) != 0)
        throw Failure{CHNSW_ERR_IO, path + ": cannot seek: " + errno_text(errno)};
    for (uint64_t i = 0; i < n; i++) {
        uint32_t bytes;
        if (pos + sizeof(bytes) > file_size)
            corrupt(path, "truncated in the link lists (element " + std::to_string(i) + " of " +
                              std::to_string(n) + ")");
        if (std::fread(&bytes, sizeof(bytes), 1, file.f) != 1)
            throw Failure{CHNSW_ERR_IO, path + ": read failed: " + errno_text(errno)};
        pos += sizeof(bytes);
        if (bytes % per_level != 0 || bytes / per_level > static_cast<uint64_t>(h.maxlevel))
            corrupt(path, "element " + std::to_string(i) + " has a link list of " +
                              std::to_string(bytes) + " bytes");
        if (i == h.enterpoint_node && bytes / per_level != static_cast<uint64_t>(h.maxlevel))
            corrupt(path, "the entry point is not on the top level");
        if (pos + bytes > file_size)
            corrupt(path, "truncated in the link lists (element " + std::to_string(i) + " of " +
                              std::to_string(n) + ")");
        pos += bytes;
        if (bytes > 0 && fseeko(file.f, static_cast<off_t>(bytes), SEEK_CUR) != 0)
            throw Failure{CHNSW_ERR_IO, path + ": cannot seek: " + errno_text(errno)};
    }
    if (pos != file_size)
        corrupt(path, std::to_string(file_size - pos) + " bytes after the end of the index");
    return h;
}

// After hnswlib has loaded a validated file: every link points at an element that exists on that
// level, no list is longer than allowed, the labels are distinct and the vectors finite.
void validate_graph(const HNSW &h, const std::string &path, size_t dim) {
    const size_t n = h.cur_element_count;
    if (h.label_lookup_.size() != n) corrupt(path, "duplicate labels");
    for (size_t i = 0; i < n; i++) {
        const tableint id = static_cast<tableint>(i);
        const int level = h.element_levels_[i];
        for (int l = 0; l <= level; l++) {
            linklistsizeint *list = h.get_linklist_at_level(id, l);
            const size_t count = h.getListCount(list);
            if (count > (l == 0 ? h.maxM0_ : h.maxM_))
                corrupt(path, "element " + std::to_string(i) + " has " + std::to_string(count) +
                                  " links at level " + std::to_string(l));
            const tableint *links = reinterpret_cast<const tableint *>(list + 1);
            for (size_t j = 0; j < count; j++) {
                if (links[j] >= n || h.element_levels_[links[j]] < l)
                    corrupt(path, "element " + std::to_string(i) + " links to " +
                                      std::to_string(links[j]) + " at level " + std::to_string(l));
            }
        }
        if (!all_finite(reinterpret_cast<const float *>(h.getDataByInternalId(id)), dim))
            corrupt(path, "element " + std::to_string(i) + " has a non-finite component");
    }
}

// Makes room for `extra` more elements, doubling. Caller holds the lock exclusively.
void ensure_room(HNSW &h, size_t extra) {
    const size_t needed = h.cur_element_count + extra;
    if (needed <= h.max_elements_) return;
    if (needed > kMaxElements) throw Failure{CHNSW_ERR_ARGUMENT, "index full: too many elements"};
    size_t capacity = h.max_elements_ > 0 ? h.max_elements_ : 1;
    while (capacity < needed) capacity = capacity > kMaxElements / 2 ? kMaxElements : capacity * 2;
    h.resizeIndex(capacity);
}

std::string directory_of(const std::string &path) {
    const size_t slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

}  // namespace

struct chnsw_index {
    const size_t dim;
    hnswlib::InnerProductSpace space;  // must outlive hnsw (hnsw points at its dimension)
    HNSW *hnsw = nullptr;
    std::shared_mutex rw;
    std::mutex saving;

    explicit chnsw_index(size_t d) : dim(d), space(d) {}
    ~chnsw_index() { delete hnsw; }
    chnsw_index(const chnsw_index &) = delete;
    chnsw_index &operator=(const chnsw_index &) = delete;
};

extern "C" const char *chnsw_version(void) { return "hnswlib-0.6.2"; }

extern "C" chnsw_index *chnsw_create(size_t dim, size_t max_elements, size_t m,
                                     size_t ef_construction, uint64_t seed, int *code, char *err,
                                     size_t errlen) {
    chnsw_index *result = nullptr;
    int rc = guarded(err, errlen, "create", [&]() -> int {
        if (dim == 0 || dim > kMaxDimension)
            throw Failure{CHNSW_ERR_ARGUMENT, "dimension " + std::to_string(dim) + " out of range"};
        if (m < 2 || m > kMaxM)
            throw Failure{CHNSW_ERR_ARGUMENT, "M = " + std::to_string(m) + " out of range 2...10000"};
        if (ef_construction == 0 || ef_construction > kMaxEfConstruction)
            throw Failure{CHNSW_ERR_ARGUMENT,
                          "ef_construction = " + std::to_string(ef_construction) + " out of range"};
        if (max_elements > kMaxElements)
            throw Failure{CHNSW_ERR_ARGUMENT, "capacity " + std::to_string(max_elements) + " too large"};
        auto index = std::make_unique<chnsw_index>(dim);
        index->hnsw = new HNSW(&index->space, max_elements > 0 ? max_elements : 1, m,
                               ef_construction, static_cast<size_t>(seed));
        result = index.release();
        return CHNSW_OK;
    });
    if (code != nullptr) *code = rc;
    return result;
}

extern "C" chnsw_index *chnsw_load(const char *path, size_t dim, size_t max_elements, int *code,
                                   char *err, size_t errlen) {
    chnsw_index *result = nullptr;
    int rc = guarded(err, errlen, "load", [&]() -> int {
        if (path == nullptr) throw Failure{CHNSW_ERR_ARGUMENT, "no path"};
        if (dim == 0 || dim > kMaxDimension)
            throw Failure{CHNSW_ERR_ARGUMENT, "dimension " + std::to_string(dim) + " out of range"};
        const std::string where(path);
        const Header header = validate_file(where, dim);

        auto index = std::make_unique<chnsw_index>(dim);
        // The one-argument constructor initializes nothing; loadIndex sets the rest. Set what it
        // does not (num_deleted_ is only incremented there) and what the destructor frees, so an
        // exception halfway through (out of memory) can be cleaned up.
        HNSW *h = new HNSW(&index->space);
        h->num_deleted_ = 0;
        h->cur_element_count = 0;
        h->data_level0_memory_ = nullptr;
        h->linkLists_ = nullptr;
        h->visited_list_pool_ = nullptr;
        h->metric_distance_computations = 0;
        h->metric_hops = 0;
        size_t capacity = max_elements;
        if (capacity < header.cur_element_count) capacity = header.cur_element_count;
        if (capacity == 0) capacity = 1;
        try {
            h->loadIndex(where, &index->space, capacity);
        } catch (...) {
            // Per-element link lists read so far leak (only on allocation failure); the rest is freed.
            h->cur_element_count = 0;
            delete h;
            throw;
        }
        index->hnsw = h;  // from here the index owns it
        if (h->cur_element_count != header.cur_element_count || h->max_elements_ != capacity)
            corrupt(where, "the file changed while it was read");
        validate_graph(*h, where, dim);
        result = index.release();
        return CHNSW_OK;
    });
    if (code != nullptr) *code = rc;
    return result;
}

extern "C" int chnsw_save(chnsw_index *index, const char *path, char *err, size_t errlen) {
    if (index == nullptr || path == nullptr)
        return report(err, errlen, CHNSW_ERR_ARGUMENT, "save: no index or no path");
    const std::string target(path);
    const std::string temp = target + ".tmp";
    return guarded(err, errlen, "save", [&]() -> int {
        std::lock_guard<std::mutex> one_save(index->saving);
        std::shared_lock<std::shared_mutex> reading(index->rw);  // saveIndex only reads
        HNSW &h = *index->hnsw;

        // saveIndex writes through an std::ofstream and reports nothing; open the file ourselves
        // first for a real error, and check its length afterwards.
        int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) throw Failure{CHNSW_ERR_IO, temp + ": cannot create: " + errno_text(errno)};
        ::close(fd);

        uint64_t expected = kHeaderSize + h.cur_element_count * h.size_data_per_element_;
        for (size_t i = 0; i < h.cur_element_count; i++) {
            expected += sizeof(uint32_t);
            if (h.element_levels_[i] > 0)
                expected += h.size_links_per_element_ * static_cast<uint64_t>(h.element_levels_[i]);
        }

        auto fail_io = [&](const std::string &what, int e) -> Failure {
            ::unlink(temp.c_str());
            return Failure{CHNSW_ERR_IO, what + ": " + errno_text(e)};
        };
        try {
            h.saveIndex(temp);
        } catch (...) {
            ::unlink(temp.c_str());
            throw;
        }
        struct stat st;
        if (::stat(temp.c_str(), &st) != 0) throw fail_io(temp + ": cannot stat", errno);
        if (static_cast<uint64_t>(st.st_size) != expected) {
            ::unlink(temp.c_str());
            throw Failure{CHNSW_ERR_IO, temp + ": short write (" + std::to_string(st.st_size) +
                                            " of " + std::to_string(expected) +
                                            " bytes; disk full?)"};
        }
        fd = ::open(temp.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) throw fail_io(temp + ": cannot reopen", errno);
        if (::fsync(fd) != 0) {
            int e = errno;
            ::close(fd);
            throw fail_io(temp + ": fsync", e);
        }
        ::close(fd);
        if (::rename(temp.c_str(), target.c_str()) != 0)
            throw fail_io("rename " + temp + " -> " + target, errno);
        const std::string dir = directory_of(target);
        int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) throw Failure{CHNSW_ERR_IO, dir + ": cannot open directory: " + errno_text(errno)};
        if (::fsync(dfd) != 0) {
            int e = errno;
            ::close(dfd);
            throw Failure{CHNSW_ERR_IO, dir + ": fsync: " + errno_text(e)};
        }
        ::close(dfd);
        return CHNSW_OK;
    });
}

extern "C" int chnsw_add(chnsw_index *index, const float *vector, uint64_t label, char *err,
                         size_t errlen) {
    if (index == nullptr || vector == nullptr)
        return report(err, errlen, CHNSW_ERR_ARGUMENT, "add: no index or no vector");
    if (!all_finite(vector, index->dim))
        return report(err, errlen, CHNSW_ERR_ARGUMENT,
                      "add: the vector for label " + std::to_string(label) +
                          " has a NaN or infinite component");
    return guarded(err, errlen, "add", [&]() -> int {
        std::unique_lock<std::shared_mutex> writing(index->rw);
        HNSW &h = *index->hnsw;
        if (h.label_lookup_.find(label) == h.label_lookup_.end()) ensure_room(h, 1);
        h.addPoint(vector, static_cast<labeltype>(label));
        return CHNSW_OK;
    });
}

extern "C" int chnsw_add_batch(chnsw_index *index, const float *vectors, const uint64_t *labels,
                               size_t n, size_t threads, char *err, size_t errlen) {
    if (n == 0) return CHNSW_OK;
    if (index == nullptr || vectors == nullptr || labels == nullptr)
        return report(err, errlen, CHNSW_ERR_ARGUMENT, "add: no index, vectors or labels");
    const size_t dim = index->dim;
    for (size_t i = 0; i < n; i++)
        if (!all_finite(vectors + i * dim, dim))
            return report(err, errlen, CHNSW_ERR_ARGUMENT,
                          "add: the vector for label " + std::to_string(labels[i]) +
                              " has a NaN or infinite component");
    return guarded(err, errlen, "add", [&]() -> int {
        std::unique_lock<std::shared_mutex> writing(index->rw);
        HNSW &h = *index->hnsw;
        ensure_room(h, n);  // may over-reserve when labels repeat; never under
        if (threads <= 1 || n < 2) {
            for (size_t i = 0; i < n; i++) h.addPoint(vectors + i * dim, labels[i]);
            return CHNSW_OK;
        }
        // hnswlib supports concurrent addPoint calls (with nothing else running: we hold the lock).
        std::atomic<size_t> next{0};
        std::atomic<bool> stop{false};
        std::mutex first_error_guard;
        std::exception_ptr first_error;
        auto work = [&]() {
            while (!stop.load(std::memory_order_relaxed)) {
                const size_t i = next.fetch_add(1);
                if (i >= n) return;
                try {
                    h.addPoint(vectors + i * dim, labels[i]);
                } catch (...) {
                    std::lock_guard<std::mutex> g(first_error_guard);
                    if (!first_error) first_error = std::current_exception();
                    stop = true;
                }
            }
        };
        std::vector<std::thread> pool;
        const size_t spawn = std::min(threads, n) - 1;
        try {
            for (size_t t = 0; t < spawn; t++) pool.emplace_back(work);
        } catch (...) {
            // Could not start a thread: finish with those that did start.
        }
        work();
        for (auto &t : pool) t.join();
        if (first_error) std::rethrow_exception(first_error);
        return CHNSW_OK;
    });
}

extern "C" int chnsw_mark_deleted(chnsw_index *index, uint64_t label, char *err, size_t errlen) {
    if (index == nullptr) return report(err, errlen, CHNSW_ERR_ARGUMENT, "delete: no index");
    return guarded(err, errlen, "delete", [&]() -> int {
        std::unique_lock<std::shared_mutex> writing(index->rw);
        HNSW &h = *index->hnsw;
        auto found = h.label_lookup_.find(label);
        if (found == h.label_lookup_.end())
            throw Failure{CHNSW_ERR_LABEL, "delete: no label " + std::to_string(label)};
        if (h.isMarkedDeleted(found->second))
            throw Failure{CHNSW_ERR_LABEL, "delete: label " + std::to_string(label) + " already deleted"};
        h.markDelete(label);
        return CHNSW_OK;
    });
}

extern "C" int64_t chnsw_search(chnsw_index *index, const float *query, size_t k, size_t ef,
                                uint64_t *labels, float *distances, char *err, size_t errlen) {
    if (index == nullptr || query == nullptr || (k > 0 && (labels == nullptr || distances == nullptr)))
        return -report(err, errlen, CHNSW_ERR_ARGUMENT, "search: no index, query or output");
    if (k == 0) return 0;
    if (!all_finite(query, index->dim))
        return -report(err, errlen, CHNSW_ERR_ARGUMENT, "search: the query has a NaN or infinite component");
    const size_t want_ef = ef > 0 ? ef : 1;
    int64_t found = 0;
    int rc = guarded(err, errlen, "search", [&]() -> int {
        std::priority_queue<std::pair<float, labeltype>> result;  // worst on top
        bool done = false;
        {
            std::shared_lock<std::shared_mutex> reading(index->rw);
            if (index->hnsw->ef_ == want_ef) {
                result = index->hnsw->searchKnn(query, k);
                done = true;
            }
        }
        if (!done) {
            // ef is one field of the index: change it only with the index to ourselves.
            std::unique_lock<std::shared_mutex> writing(index->rw);
            index->hnsw->setEf(want_ef);
            result = index->hnsw->searchKnn(query, k);
        }
        found = static_cast<int64_t>(result.size());
        for (int64_t i = found - 1; i >= 0; i--) {
            distances[i] = result.top().first;
            labels[i] = static_cast<uint64_t>(result.top().second);
            result.pop();
        }
        return CHNSW_OK;
    });
    return rc == CHNSW_OK ? found : -static_cast<int64_t>(rc);
}

extern "C" size_t chnsw_count(chnsw_index *index) {
    if (index == nullptr) return 0;
    std::shared_lock<std::shared_mutex> reading(index->rw);
    return index->hnsw->cur_element_count - index->hnsw->num_deleted_;
}

extern "C" size_t chnsw_deleted_count(chnsw_index *index) {
    if (index == nullptr) return 0;
    std::shared_lock<std::shared_mutex> reading(index->rw);
    return index->hnsw->num_deleted_;
}

extern "C" size_t chnsw_capacity(chnsw_index *index) {
    if (index == nullptr) return 0;
    std::shared_lock<std::shared_mutex> reading(index->rw);
    return index->hnsw->max_elements_;
}

extern "C" size_t chnsw_dimension(const chnsw_index *index) { return index == nullptr ? 0 : index->dim; }

extern "C" size_t chnsw_m(chnsw_index *index) {
    if (index == nullptr) return 0;
    std::shared_lock<std::shared_mutex> reading(index->rw);
    return index->hnsw->M_;
}

extern "C" size_t chnsw_ef_construction(chnsw_index *index) {
    if (index == nullptr) return 0;
    std::shared_lock<std::shared_mutex> reading(index->rw);
    return index->hnsw->ef_construction_;
}

extern "C" void chnsw_free(chnsw_index *index) { delete index; }
