import NIOCore
import NIOPosix
@testable import StreamHost
import Testing

@Suite("PacingSlots: the paced streams' timers of an event loop, grouped by deadline")
struct PacingSlotsTests {
    @Test("streams waiting for the same deadline share one timer and resume in order, none before its deadline")
    func grouped() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let slots = PacingSlots(loop: loop)
        let done = loop.makePromise(of: [String].self)
        loop.execute {
            let start = NIODeadline.now()
            let first = PlaybackFastPathHandler.coalesced(start + .milliseconds(30))
            let second = first + .milliseconds(40)
            var log: [String] = []
            func record(_ name: String, due: NIODeadline) {
                log.append(NIODeadline.now() >= due ? name : name + " (early)")
                if log.count == 6 { done.succeed(log) }
            }
            slots.schedule(at: first) { record("a", due: first) }
            slots.schedule(at: second) { record("d", due: second) }
            slots.schedule(at: first) { record("b", due: first) }
            slots.schedule(at: first) { record("c", due: first) }
            slots.schedule(at: start - .milliseconds(5)) { record("past", due: start) }
            log.append("deadlines \(slots.pending)")
        }
        let log = try await done.futureResult.get()
        #expect(log == ["deadlines 3", "past", "a", "b", "c", "d"])
        #expect(try await loop.submit { slots.pending }.get() == 0)
        try await group.shutdownGracefully()
    }
}
