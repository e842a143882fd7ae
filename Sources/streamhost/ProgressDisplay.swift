import Foundation
import Synchronization

/// The CLI's one progress display: a line per item (a file being ingested or packaged), redrawn
/// in place on a terminal; elsewhere (a pipe, a log) each item is printed once, when it is done.
/// Thread-safe: updates may come from any task (the lines live behind a mutex).
final class ProgressDisplay: Sendable {
    private struct Line {
        var label: String
        var fraction: Double
        var status: String
        var done: Bool
    }

    private struct State {
        var lines: [Line]
        var drawn = false
        /// What was last drawn of each line (whole percent and status): redraw only on a change.
        var shown: [String]
    }

    /// Where the lines go.
    enum Output: Sendable { case standardOutput, standardError }

    private let state: Mutex<State>
    private let output: Output
    private let terminal: Bool

    init(labels: [String], output: Output = .standardOutput) {
        state = Mutex(State(lines: labels.map { Line(label: $0, fraction: 0, status: "waiting", done: false) },
                            shown: labels.map { _ in "" }))
        self.output = output
        terminal = isatty(output == .standardOutput ? 1 : 2) != 0
    }

    /// Sets line `index` to `fraction` (0…1) and `status`; `done` ends it.
    func update(_ index: Int, fraction: Double, status: String, done: Bool = false) {
        state.withLock { state in
            let wasDone = state.lines[index].done
            state.lines[index] = Line(label: state.lines[index].label, fraction: min(max(fraction, 0), 1), status: status, done: done)
            if terminal {
                let shown = "\(Int(state.lines[index].fraction * 100)) \(status)"
                guard shown != state.shown[index] else { return }
                state.shown[index] = shown
                write(Self.render(&state))
            } else if done && !wasDone {
                write("\(state.lines[index].label): \(status)\n")
            }
        }
    }

    private func write(_ text: String) {
        (output == .standardOutput ? FileHandle.standardOutput : FileHandle.standardError).write(Data(text.utf8))
    }

    private static func render(_ state: inout State) -> String {
        var out = state.drawn ? "\u{1B}[\(state.lines.count)A" : ""
        for line in state.lines {
            let width = 30
            let filled = Int(line.fraction * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            let label = line.label.count > 24 ? String(line.label.prefix(23)) + "…" : line.label.padding(toLength: 24, withPad: " ", startingAt: 0)
            out += "\u{1B}[2K\(label) \(bar) \(String(format: "%3d", Int(line.fraction * 100)))% \(line.status)\n"
        }
        state.drawn = true
        return out
    }
}
