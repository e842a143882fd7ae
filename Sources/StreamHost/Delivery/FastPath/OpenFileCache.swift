import Glibc
import HTTPTypes
import NIOCore
import Synchronization

/// Open descriptors of objects on local disk, shared by the responses that send them with
/// `sendfile`, as nginx's `open_file_cache` does.
///
/// Why: without it every response to a segment costs three system calls before its first byte
/// (`openat` with a path walk, `fstat`, `close`), as many as answering it. Ten thousand
/// listeners ask for a few hundred distinct files; each is opened once per ``timeToLive``.
///
/// Each event loop has its own descriptor of a file: NIO lets one thread at a time use a
/// `NIOFileHandle` (a second, concurrent `sendfile` fails with `EBUSY`), and one loop's writes
/// never overlap.
///
/// Coherence: ``LocalDiskStorage`` drops the entries it overwrites or deletes, so its own writes
/// are seen at once; a write by another process to the same directory is seen within
/// ``timeToLive`` (the entry is then opened again). A dropped entry's descriptor closes when
/// the last response sending it ends.
///
/// Hand-written: NIO has no shared, reference-counted descriptor cache.
final class OpenFileCache: Sendable {
    /// An open file and what `fstat` said of it; closed when the last holder lets go. A
    /// response keeps it until the write of its last region has completed.
    final class File: Sendable {
        let handle: NIOFileHandle
        let info: ObjectInfo
        /// The fields of a 200 with the whole file, computed once
        /// (`unconditionalPlan(contentType:cacheControl:)`): most requests carry no range and no
        /// validator.
        let fullResponse = Mutex<(contentType: String, cacheControl: String, fields: HTTPFields)?>(nil)

        init(descriptor: CInt, info: ObjectInfo) {
            handle = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: descriptor)
            self.info = info
        }

        deinit { try? handle.close() }
    }

    private struct Entry {
        var file: File
        var opened: NIODeadline
    }

    /// A file as one event loop uses it.
    private struct Key: Hashable {
        var path: String
        var loop: ObjectIdentifier
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        var nextSweep = NIODeadline.uptimeNanoseconds(0)
    }

    /// Files kept open at most (nginx's benchmark configuration: 1,000).
    let capacity: Int
    /// How long an entry is used before the file is opened again.
    let timeToLive: TimeAmount
    private let state = Mutex(State())

    init(capacity: Int = 1024, timeToLive: TimeAmount = .seconds(10)) {
        self.capacity = capacity
        self.timeToLive = timeToLive
    }

    /// The open file at `path` (`key` names it in errors) for the event loop `loop` (see
    /// ``OpenFileCache``; `ObjectIdentifier(eventLoop)`), opened now if no live entry has it;
    /// nil when there is no regular file there or it cannot be opened (the caller reports it
    /// through the usual, uncached path).
    func file(path: String, key: String, loop: ObjectIdentifier, now: NIODeadline = .now()) -> File? {
        let cacheKey = Key(path: path, loop: loop)
        if let live = state.withLock({ state -> File? in
            guard let entry = state.entries[cacheKey], now - entry.opened < timeToLive else { return nil }
            return entry.file
        }) {
            return live
        }
        // Opened outside the lock: the other event loops go on meanwhile. Two loops opening the
        // same file at once keep the later one; the other closes with its last response.
        guard case .success(let (descriptor, info)?) = LocalDiskStorage.openFile(path, key: key) else {
            _ = state.withLock { $0.entries.removeValue(forKey: cacheKey) }
            return nil
        }
        let file = File(descriptor: descriptor, info: info)
        state.withLock { state in
            if now >= state.nextSweep || state.entries.count >= capacity {
                state.nextSweep = now + timeToLive
                state.entries = state.entries.filter { now - $0.value.opened < timeToLive }
                if state.entries.count >= capacity { state.entries.removeAll(keepingCapacity: true) }
            }
            state.entries[cacheKey] = Entry(file: file, opened: now)
        }
        return file
    }

    /// Drops the entries of `path` (the file was replaced or deleted).
    func forget(path: String) {
        state.withLock { state in
            state.entries = state.entries.filter { $0.key.path != path }
        }
    }

    /// Drops every entry whose path starts with `prefix`.
    func forget(prefix: String) {
        state.withLock { state in
            state.entries = state.entries.filter { !$0.key.path.hasPrefix(prefix) }
        }
    }

    /// Files open in the cache now.
    var count: Int { state.withLock { $0.entries.count } }
}

extension OpenFileCache.File {
    /// ``ObjectResponder/plan(info:request:contentType:cacheControl:now:)`` for a request without
    /// range or validators: a 200 whose fields (validators, dates, length) are the file's own, so
    /// they are computed on first use and kept with the open file.
    func unconditionalPlan(contentType: String, cacheControl: String) -> ObjectResponder.Plan {
        if let kept = fullResponse.withLock({ $0 }), kept.contentType == contentType, kept.cacheControl == cacheControl {
            return .full(kept.fields)
        }
        let plan = ObjectResponder.plan(info: info, request: [:], contentType: contentType, cacheControl: cacheControl)
        if case .full(let fields) = plan { fullResponse.withLock { $0 = (contentType, cacheControl, fields) } }
        return plan
    }
}
