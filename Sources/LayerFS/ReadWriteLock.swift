#if canImport(Glibc)
import Glibc
#endif

/// A pthread read-write lock: many holders in shared mode, or one in exclusive mode.
///
/// The present's namespace lock: operations that resolve a node id to its path and act on it
/// (lookup, getattr, readdir, open, create, write commits, chmod...) hold it shared; operations
/// that change which path an object has (rename, unlink, rmdir) hold it exclusively, so no commit
/// can write to a path that a concurrent rename has just moved away. Never taken recursively.
final class ReadWriteLock: @unchecked Sendable {
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>

    init() {
        lock = .allocate(capacity: 1)
        lock.initialize(to: pthread_rwlock_t())
        precondition(pthread_rwlock_init(lock, nil) == 0, "pthread_rwlock_init failed")
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    func shared<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    func exclusive<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }
}
