import Foundation

/// Batches waiting for the analytics store, one file each (`<sequence>.sessions` or
/// `<sequence>.peaks`, JSON lines), written to a temporary name, fsynced and renamed, so a crash
/// leaves whole batches or nothing. Bounded by bytes: beyond `maxBytes` the oldest go.
struct AnalyticsSpool: Sendable {
    enum Kind { case sessions, peaks }

    let directory: String
    let maxBytes: Int

    init(directory: String, maxBytes: Int) throws(CatalogError) {
        self.directory = directory
        self.maxBytes = maxBytes
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw CatalogError(.database, "cannot create the analytics buffer directory \(directory): \(error)")
        }
        // Half-written batches of a crash.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasSuffix(".tmp") {
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
        }
    }

    /// Batch files, oldest first.
    func files() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasSuffix(".sessions") || $0.hasSuffix(".peaks") }.sorted()
    }

    /// Writes the batch; returns how many old files were dropped to stay within the bound.
    func append(sessions: [ClickHouseSchema.SessionRow], peaks: [ClickHouseSchema.PeakRow]) throws(CatalogError) -> Int {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let sequence = String(format: "%020llu", UInt64(Date().timeIntervalSince1970 * 1_000_000))
        do {
            if !sessions.isEmpty {
                try write(name: sequence + ".sessions", lines: try sessions.map { String(decoding: try encoder.encode($0), as: UTF8.self) })
            }
            if !peaks.isEmpty {
                try write(name: sequence + ".peaks", lines: try peaks.map { String(decoding: try encoder.encode($0), as: UTF8.self) })
            }
        } catch let error as CatalogError {
            throw error
        } catch {
            throw CatalogError(.database, "cannot write the analytics buffer: \(error)")
        }
        return trim()
    }

    private func write(name: String, lines: [String]) throws(CatalogError) {
        var final = directory + "/" + name
        var n = 1
        while FileManager.default.fileExists(atPath: final) {
            final = directory + "/" + name.replacingOccurrences(of: ".", with: "-\(n).")
            n += 1
        }
        let temporary = final + ".tmp"
        do {
            guard FileManager.default.createFile(atPath: temporary, contents: nil, attributes: [.posixPermissions: 0o600]),
                  let handle = FileHandle(forWritingAtPath: temporary) else {
                throw CatalogError(.database, "cannot create \(temporary)")
            }
            defer { try? handle.close() }
            try handle.write(contentsOf: Data((lines.joined(separator: "\n") + "\n").utf8))
            try handle.synchronize()
            try FileManager.default.moveItem(atPath: temporary, toPath: final)
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw CatalogError(.database, "cannot write the analytics buffer \(final): \(error)")
        }
    }

    private func trim() -> Int {
        var sizes = files().map { ($0, (try? FileManager.default.attributesOfItem(atPath: directory + "/" + $0)[.size] as? Int) ?? 0) }
        var total = sizes.reduce(0) { $0 + $1.1 }
        var dropped = 0
        while total > maxBytes, sizes.count > 1 {
            let (name, size) = sizes.removeFirst()
            remove(name)
            total -= size
            dropped += 1
        }
        return dropped
    }

    func read(_ name: String) -> (Kind, [String]) {
        let text = (try? String(contentsOfFile: directory + "/" + name, encoding: .utf8)) ?? ""
        return (name.hasSuffix(".sessions") ? .sessions : .peaks, text.split(separator: "\n").map(String.init))
    }

    func remove(_ name: String) {
        try? FileManager.default.removeItem(atPath: directory + "/" + name)
    }

    /// Removes the session lines matching `condition` from every batch; returns how many.
    func removeSessions(where condition: (String) -> Bool) -> Int {
        var removed = 0
        for name in files() where name.hasSuffix(".sessions") {
            let (_, lines) = read(name)
            let kept = lines.filter { !condition($0) }
            guard kept.count != lines.count else { continue }
            removed += lines.count - kept.count
            if kept.isEmpty {
                remove(name)
            } else {
                try? Data((kept.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: directory + "/" + name), options: .atomic)
            }
        }
        return removed
    }
}
