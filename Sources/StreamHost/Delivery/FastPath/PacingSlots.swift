import Foundation
import Glibc
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Prometheus
import Logging
import NIOCore
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOHTTP1
import StreamKit
import Synchronization

/// The timers of the paced streams of one event loop, grouped by deadline: one NIO timer per
/// deadline in use, however many streams wait for it. Paced streams resume on a 20 ms grid
/// (``PlaybackFastPathHandler/coalesced(_:)``), so at most 50 timers a second per loop remain,
/// against one per stream and second before: with 1,000 progressive listeners, inserting into
/// and popping from NIO's timer heap (which also holds a timer per connection, 10,000 with as
/// many listeners) took about 3.5 % of the host's CPU (perf, 2026-12-02).
///
/// Hand-written: NIO has no grouped timers. Its state lives in NIO's loop-bound box, which
/// checks that every access is on the loop, so it needs no lock; nothing is cancelled (a
/// resumed stream that is gone does nothing).
final class PacingSlots: Sendable {
    let loop: any EventLoop
    /// What resumes at each deadline (in `uptimeNanoseconds`).
    private let waiting: NIOLoopBoundBox<[UInt64: [() -> Void]]>

    init(loop: any EventLoop) {
        self.loop = loop
        waiting = .makeBoxSendingValue([:], eventLoop: loop)
    }

    /// Calls `resume` on the loop at `deadline` (or at once if it has passed).
    func schedule(at deadline: NIODeadline, _ resume: @escaping () -> Void) {
        let key = deadline.uptimeNanoseconds
        let isNew = waiting.withValue { waiting in
            if waiting[key]?.append(resume) != nil { return false }
            waiting[key] = [resume]
            return true
        }
        guard isNew else { return }
        loop.assumeIsolated().scheduleTask(deadline: deadline) { self.fire(key) }
    }

    /// Deadlines with streams waiting (for tests).
    var pending: Int { waiting.value.count }

    private func fire(_ key: UInt64) {
        guard let due = waiting.withValue({ $0.removeValue(forKey: key) }) else { return }
        for resume in due { resume() }
    }
}
