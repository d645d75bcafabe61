#if canImport(Glibc)
import Glibc
#endif

/// Group commit: many committers, one `write(2)` and one `fdatasync` per batch.
///
/// A committer builds its line under the store's lock and hands it to `enqueue`, which appends it
/// to an in-memory buffer (so lines stay in sequence order) and returns a `Ticket`. The committer
/// then leaves the store's lock and calls `waitDurable`. The first waiter that finds no flush in
/// progress becomes the *leader*: it takes the whole buffer, writes it to the log with one
/// `write(2)`, calls `fdatasync`, and wakes everyone whose line was in that batch. While a flush
/// runs, new committers fill the next buffer, so with N writers a batch holds up to N−1 lines, and
/// nothing writes to the log while it is being synced (writes during a sync slow the sync down).
///
/// Until a line is written, reads of it are served from memory (`pendingBytes`).
///
/// Failure: if the write or the sync fails, the leader cuts the batch's bytes off the log
/// (`ftruncate` to where the batch began) and calls `rollback`, which rebuilds the store's state
/// from the durable log. Every line of that batch and of the buffer behind it belongs to the failed
/// *generation*: their committers get the error, nothing of theirs was acknowledged, and the next
/// commit starts a new generation at the durable head. A sync that fails with an I/O error (not
/// ENOSPC) also poisons the log, following the lesson of PostgreSQL's fsync failures: the disk is
/// not trusted again until the store is reopened.
final class GroupCommit: @unchecked Sendable {
    struct Ticket: Sendable {
        let seq: UInt64
        let generation: UInt64
    }

    // Everything below is protected by `mutex`. Lock order: the store's state lock, then `mutex`.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// Signalled when the last committer in progress has enqueued (or given up).
    private let arrivals = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// Committers that have started a commit but not yet enqueued their line.
    private var arriving = 0
    /// Lines in the buffer, and in the last batch flushed.
    private var bufferCommits = 0
    private var lastBatchCommits = 0
    /// Lines enqueued but not yet taken by a leader, starting at file offset `bufferStart`.
    private var buffer: [UInt8] = []
    private var bufferStart: UInt64
    private var bufferLast: (seq: UInt64, hash: Digest)?
    /// The batch a leader is writing and syncing right now.
    private var inFlight: (start: UInt64, bytes: [UInt8])?
    private var durable: UInt64
    private var flushing = false
    private var generation: UInt64 = 0
    private var failures: [UInt64: LayerError] = [:]
    private var poison: LayerError?
    private var syncs: UInt64 = 0

    /// How long a leader waits for committers already in progress before it flushes.
    static let gatherMicroseconds = 100
    /// How long a leader waits for concurrent writers when the last batch held several commits.
    static let siblingMicroseconds = 60

    private let fd: Int32
    private let path: String
    /// Called by the leader after a successful sync with the last durable event (cheap; may lag).
    private let afterSync: (UInt64, Digest) -> Void
    /// Called by the leader after a failed flush, once the log is cut back to its durable length.
    /// Must rebuild the store's state from the log and call `restart`; runs under no lock of this
    /// class. Set once, right after the store is initialized.
    var rollback: (() -> Void)?

    init(fd: Int32, path: String, length: UInt64, durable: UInt64, afterSync: @escaping (UInt64, Digest) -> Void) {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
        pthread_cond_init(arrivals, nil)
        self.fd = fd
        self.path = path
        self.bufferStart = length
        self.durable = durable
        self.afterSync = afterSync
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_cond_destroy(arrivals)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
        arrivals.deallocate()
    }

    private func locked<T>(_ body: () throws(LayerError) -> T) throws(LayerError) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// A committer starts: a leader about to flush waits (briefly) for it to enqueue, so that one
    /// sync covers it too. Every `arrive` is followed by exactly one `enqueue` or `depart`.
    func arrive() {
        pthread_mutex_lock(mutex)
        arriving += 1
        pthread_mutex_unlock(mutex)
    }

    /// A committer that arrived gives up without enqueueing (invalid change, no-op, error).
    func depart() {
        pthread_mutex_lock(mutex)
        arriving -= 1
        if arriving == 0 { pthread_cond_signal(arrivals) }
        pthread_mutex_unlock(mutex)
    }

    /// Appends the line of event `seq` (with `hash`) to the buffer. Calls come in sequence order,
    /// under the store's lock, each after an `arrive`. Throws if the log is poisoned.
    func enqueue(_ line: [UInt8], seq: UInt64, hash: Digest) throws(LayerError) -> Ticket {
        try locked { () throws(LayerError) -> Ticket in
            if let poison { throw poison }  // the caller then departs
            arriving -= 1
            if arriving == 0 { pthread_cond_signal(arrivals) }
            buffer.append(contentsOf: line)
            bufferLast = (seq, hash)
            bufferCommits += 1
            return Ticket(seq: seq, generation: generation)
        }
    }

    /// A ticket for an event that is already in the log (for seal and close).
    func ticket(for seq: UInt64) -> Ticket {
        (try? locked { Ticket(seq: seq, generation: generation) }) ?? Ticket(seq: seq, generation: 0)
    }

    /// The error that poisoned the log, if a sync failed with an I/O error.
    var poisoned: LayerError? { try? locked { poison } }

    var stats: (durable: UInt64, syncs: UInt64) { (try? locked { (durable, syncs) }) ?? (0, 0) }

    /// The bytes at `offset..<offset+count` if they are still in memory (not yet written).
    func pendingBytes(offset: UInt64, count: Int) -> [UInt8]? {
        try? locked { () -> [UInt8]? in
            for (start, bytes) in [inFlight, (bufferStart, buffer)].compactMap({ $0 }) where offset >= start {
                let from = Int(offset - start)
                guard from + count <= bytes.count else { continue }
                return Array(bytes[from..<(from + count)])
            }
            return nil
        }
    }

    /// Returns once the ticket's event is durable; throws if the flush that covered it failed.
    func waitDurable(_ ticket: Ticket) throws(LayerError) {
        pthread_mutex_lock(mutex)
        while true {
            if ticket.generation != generation {
                let error = failures[ticket.generation] ?? LayerError(.io, "the commit was rolled back", errno: EIO)
                pthread_mutex_unlock(mutex)
                throw error
            }
            if durable >= ticket.seq {
                pthread_mutex_unlock(mutex)
                return
            }
            if let poison {
                pthread_mutex_unlock(mutex)
                throw poison
            }
            if flushing {
                // A leader is writing and syncing; our line is in its batch or in the next one.
                pthread_cond_wait(condition, mutex)
                continue
            }
            guard !buffer.isEmpty else {
                pthread_mutex_unlock(mutex)
                preconditionFailure("event \(ticket.seq) is neither durable nor pending (durable: \(durable))")
            }
            // Become the leader. A commit takes microseconds to enqueue and a sync hundreds, so it
            // pays to wait a little for others (as PostgreSQL's commit_delay/commit_siblings do):
            // - committers already in progress (`arriving`): up to `gatherMicroseconds`;
            // - if the last batch held several commits, writers are concurrent: the ones it just
            //   released are on their way back (woken, not yet running); wait `siblingMicroseconds`
            //   for them. A lone writer (last batch of one) never waits.
            flushing = true
            if arriving > 0 || lastBatchCommits > 1 {
                let wait = lastBatchCommits > 1 ? Self.siblingMicroseconds : Self.gatherMicroseconds
                var deadline = timespec()
                clock_gettime(CLOCK_REALTIME, &deadline)
                deadline.tv_nsec += wait * 1000
                if deadline.tv_nsec >= 1_000_000_000 {
                    deadline.tv_sec += 1
                    deadline.tv_nsec -= 1_000_000_000
                }
                // With concurrent writers, wait out the window (arrivals signal as they come);
                // otherwise only until the committers in progress have enqueued.
                while lastBatchCommits > 1 || arriving > 0 {
                    if pthread_cond_timedwait(arrivals, mutex, &deadline) == ETIMEDOUT { break }
                    if lastBatchCommits > 1 && arriving == 0 && bufferCommits >= lastBatchCommits { break }
                }
            }
            lastBatchCommits = bufferCommits
            bufferCommits = 0
            let batch = buffer
            let start = bufferStart
            let last = bufferLast!
            inFlight = (start, batch)
            buffer = []
            buffer.reserveCapacity(batch.count)
            bufferStart = start + UInt64(batch.count)
            pthread_mutex_unlock(mutex)

            var failure: LayerError?
            do throws(LayerError) {
                try FileSystem.writeAll(fd, batch, path: path)
                try FileSystem.dataSync(fd, path: path)
            } catch {
                failure = error
            }
            if let failure {
                recover(from: failure, batchStart: start)
            } else {
                afterSync(last.seq, last.hash)
            }

            pthread_mutex_lock(mutex)
            flushing = false
            inFlight = nil
            syncs += 1
            if failure == nil, last.seq > durable { durable = last.seq }
            pthread_cond_broadcast(condition)
        }
    }

    /// After a failed write or sync: cut the log back, fail the generation, rebuild the state.
    private func recover(from error: LayerError, batchStart: UInt64) {
        let truncated: LayerError? = {
            do throws(LayerError) {
                try FileSystem.truncate(fd, to: batchStart, path: path)
                return nil
            } catch { return error }
        }()
        let retryable = error.code == .noSpace && truncated == nil
        // The store rebuilds its state from the (now cut back) log; while it holds its own lock,
        // it calls `restart` below, which ends the generation.
        pendingFailure = (error, retryable ? nil : (truncated ?? error))
        rollback?()
        if pendingFailure != nil { restart(length: batchStart) }  // no rollback hook: still end the generation
    }

    /// Set by the leader during `recover`, consumed by `restart` (both on the leader's thread).
    private var pendingFailure: (error: LayerError, poison: LayerError?)?

    /// Called by the store's rollback while it holds the state lock: every enqueued line is
    /// dropped, the waiters of the current generation fail, and a new generation starts at the
    /// durable head (`length` bytes of log).
    func restart(length: UInt64) {
        pthread_mutex_lock(mutex)
        if let pending = pendingFailure {
            failures[generation] = pending.error
            if let p = pending.poison { poison = p }
        }
        pendingFailure = nil
        generation += 1
        buffer = []
        bufferCommits = 0
        bufferLast = nil
        bufferStart = length
        inFlight = nil
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }
}
