#if canImport(Glibc)
import Glibc
#endif

/// Group commit: many committers, one fdatasync.
///
/// Each committer appends its line (under the store's lock), calls `noteWritten(seq)`, releases
/// the store lock, then calls `waitDurable(seq)`. The first waiter that finds no sync in progress
/// becomes the leader: it syncs everything written so far, and every waiter whose line was
/// written before that sync started returns together. Waiters block their thread on a condition
/// variable; FUSE worker threads and CLI threads are plain threads, so this is the right tool.
///
/// A failed sync poisons the log: the page cache can no longer be trusted to match the disk
/// (the fsync-gate lesson), so that commit and every later one fail until the store is reopened
/// and the log re-read from disk.
final class GroupCommit: @unchecked Sendable {
    // All fields below are protected by `mutex`.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var written: UInt64 = 0
    private var writtenHash: Digest = .zero
    private var synced: UInt64 = 0
    private var syncing = false
    private var failure: LayerError?
    /// Number of fdatasync calls made (for status and benchmarks).
    private(set) var syncCount: UInt64 = 0

    /// Makes the log durable. Called by the leader, outside the mutex.
    private let sync: () throws(LayerError) -> Void
    /// Called by the leader after a successful sync with the last durable event (may lag; cheap).
    private let afterSync: (UInt64, Digest) -> Void

    init(
        initial: UInt64, sync: @escaping () throws(LayerError) -> Void,
        afterSync: @escaping (UInt64, Digest) -> Void
    ) {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
        written = initial
        synced = initial
        self.sync = sync
        self.afterSync = afterSync
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    /// Records that the line of event `seq` (with `hash`) has been written. Calls come in order.
    func noteWritten(_ seq: UInt64, hash: Digest) {
        pthread_mutex_lock(mutex)
        if seq > written {
            written = seq
            writtenHash = hash
        }
        pthread_mutex_unlock(mutex)
    }

    /// The error that poisoned the log, if a sync failed.
    var poisoned: LayerError? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return failure
    }

    var stats: (synced: UInt64, syncs: UInt64) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return (synced, syncCount)
    }

    /// Returns once event `seq` is durable; throws if the sync that covers it failed.
    func waitDurable(_ seq: UInt64) throws(LayerError) {
        pthread_mutex_lock(mutex)
        while true {
            if synced >= seq {
                pthread_mutex_unlock(mutex)
                return
            }
            if let failure {
                pthread_mutex_unlock(mutex)
                throw failure
            }
            if syncing {
                pthread_cond_wait(condition, mutex)
                continue
            }
            // Become the leader for everything written so far.
            syncing = true
            let target = written
            let targetHash = writtenHash
            pthread_mutex_unlock(mutex)
            var error: LayerError?
            do { try sync() } catch let e { error = e }
            if error == nil { afterSync(target, targetHash) }
            pthread_mutex_lock(mutex)
            syncing = false
            syncCount += 1
            if let error {
                failure = error
            } else if target > synced {
                synced = target
            }
            pthread_cond_broadcast(condition)
        }
    }
}
