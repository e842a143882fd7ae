import Foundation
import MediaCore
import Testing
import TestSupport

@Suite("AES-128 segments (HLS METHOD=AES-128)")
struct SegmentProtectionTests {
    @Test("the IV is the segment number as 16 big-endian bytes")
    func iv() {
        #expect(AES128Segments.iv(segmentNumber: 1) == [UInt8](repeating: 0, count: 15) + [1])
        #expect(AES128Segments.iv(segmentNumber: 0x0102_0304_0506) == [UInt8](repeating: 0, count: 10) + [1, 2, 3, 4, 5, 6])
    }

    @Test("openssl decrypts what AES128Segments encrypts, for sizes around the block boundary; a wrong key does not give the plaintext and a cut ciphertext is a typed error")
    func againstOpenSSL() throws {
        let key = ContentKey.random()
        #expect("\(key)" == "ContentKey(16 bytes)" && String(reflecting: key) == "ContentKey(16 bytes)", "a key never prints its bytes")
        for size in [0, 1, 15, 16, 17, 4_095, 10_000] {
            let plaintext = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            let sealed = try AES128Segments.encrypt(plaintext, key: key, segmentNumber: size + 3)
            #expect(sealed.count == AES128Segments.encryptedSize(size) && sealed.count % 16 == 0)
            #expect(try AES128Segments.decrypt(sealed, key: key, segmentNumber: size + 3) == plaintext)
            let path = Fixtures.directory + "/aes-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: path); try? FileManager.default.removeItem(atPath: path + ".out") }
            try Data(sealed).write(to: URL(fileURLWithPath: path))
            let hex = { (bytes: [UInt8]) in bytes.map { String(format: "%02x", $0) }.joined() }
            let result = try Subprocess.run("openssl", ["enc", "-d", "-aes-128-cbc", "-K", hex(key.bytes),
                                                        "-iv", hex(AES128Segments.iv(segmentNumber: size + 3)), "-in", path, "-out", path + ".out"])
            #expect(result.succeeded, "\(result.stderr)")
            #expect((try? Data(contentsOf: URL(fileURLWithPath: path + ".out"))) == Data(plaintext), "openssl, \(size) bytes")
        }
        let sealed = try AES128Segments.encrypt(Array(repeating: 9, count: 100), key: key, segmentNumber: 5)
        // A wrong key fails the padding check, except about once in 256 keys: then the bytes are wrong.
        #expect((try? AES128Segments.decrypt(sealed, key: ContentKey.random(), segmentNumber: 5)) != Array(repeating: 9, count: 100))
        #expect(throws: MediaError.self) { try AES128Segments.decrypt(Array(sealed.dropLast()), key: key, segmentNumber: 5) }
    }
}
