import Foundation
@testable import StreamHost
import Testing
import TestSupport

/// The host's MaxMind DB reader against databases built by mmdb-writer and read back by
/// MaxMind's own reader (Tests/scripts/make_mmdb.py), and against damaged copies.
@Suite struct MaxMindDatabaseTests {
    static func build(_ name: String, _ arguments: [String], probes: [String]) throws -> (String, [String: String?]) {
        let path = Fixtures.directory + "/\(name)-\(UUID().uuidString.prefix(6)).mmdb"
        let result = try Subprocess.run("python3", [DeliveryTests.script("make_mmdb.py"), path] + arguments + ["--probe"] + probes)
        #expect(result.succeeded, "\(result.stderr)")
        let found = (try? JSONSerialization.jsonObject(with: result.stdout) as? [String: Any]) ?? [:]
        return (path, Dictionary(uniqueKeysWithValues: probes.map { ($0, found[$0] as? String) }))
    }

    @Test func agreesWithMaxMindsReader() throws {
        let probes = ["203.0.113.5", "203.0.113.255", "198.51.100.7", "192.0.2.1", "10.9.8.7", "2001:db8:1::9", "2001:db8:2::1", "::1",
                      "0.0.0.0", "255.255.255.255"]
        let (v6, expected6) = try Self.build("countries6", ["203.0.113.0/24=NZ", "198.51.100.0/24=BR", "10.0.0.0/8=DE", "2001:db8:1::/48=JP"],
                                              probes: probes)
        let (v4, expected4) = try Self.build("countries4", ["--ipv4", "203.0.113.0/24=NZ", "10.0.0.0/8=DE"], probes: probes)
        defer {
            try? FileManager.default.removeItem(atPath: v6)
            try? FileManager.default.removeItem(atPath: v4)
        }
        for (path, expected) in [(v6, expected6), (v4, expected4)] {
            let database = try MaxMindDatabase(path: path)
            #expect(database.metadata["database_type"]?.string == "Veza-Test-Country")
            for probe in probes {
                let address = try #require(IPAddress(probe))
                #expect(database.country(address) == expected[probe] ?? nil, "\(path): \(probe)")
            }
        }
        // An IPv4-mapped IPv6 address (how a dual-stack socket reports IPv4 peers) is looked up
        // as the IPv4 address; MaxMind's reader takes the text `::ffff:…` as IPv6 and finds nothing.
        let mapped = try #require(IPAddress("::ffff:203.0.113.9"))
        #expect(try MaxMindDatabase(path: v6).country(mapped) == "NZ")
        #expect(try MaxMindDatabase(path: v4).country(mapped) == "NZ")
        // Every type of the record is read.
        let probe = try #require(IPAddress("198.51.100.1"))
        let record = try #require(try MaxMindDatabase(path: v6).lookup(probe))
        #expect(record["country"]?["names"]?["de"]?.string == "Land BR")
        #expect(record["country"]?["geoname_id"]?.unsignedValue == 1001)
        #expect(record["traits"]?["is_anycast"] == .bool(false))
        #expect(record["traits"]?["accuracy"] == .double(1.5))
        #expect(record["traits"]?["tags"] == .array([.string("a"), .string("b"), .string("BR")]))
        #expect(expected6["203.0.113.5"] == "NZ" && expected6["2001:db8:1::9"] == "JP" && expected6["192.0.2.1"] == .some(nil))
    }

    @Test func damagedFilesNeverCrash() throws {
        let (path, _) = try Self.build("damaged", ["203.0.113.0/24=NZ", "2001:db8:1::/48=JP", "10.0.0.0/8=DE"], probes: ["10.0.0.1"])
        defer { try? FileManager.default.removeItem(atPath: path) }
        let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(throws: MaxMindDatabaseError.self) { try MaxMindDatabase(data: Data([1, 2, 3])) }
        #expect(throws: MaxMindDatabaseError.self) { try MaxMindDatabase(path: path + ".missing") }
        var generator = SystemRandomNumberGenerator()
        let addresses = ["203.0.113.5", "10.1.1.1", "2001:db8:1::1", "8.8.8.8"].compactMap { IPAddress($0) }
        var opened = 0
        for round in 0..<3000 {
            var bytes = original
            if round % 10 == 0 {
                bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &generator)))
            } else {
                for _ in 0..<Int.random(in: 1...8, using: &generator) {
                    bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                }
            }
            guard let database = try? MaxMindDatabase(data: Data(bytes)) else { continue }
            opened += 1
            for address in addresses { _ = database.lookup(address); _ = database.country(address) }
        }
        #expect(opened > 1000)
    }
}
