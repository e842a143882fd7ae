import PropertyBased
import Testing
@testable import StreamKit

/// The reference model: a representation of `length` bytes as a set of byte indices.
enum RangeModel {
    static func bytes(_ spec: RangeSpec, length: Int64) -> Set<Int64> {
        var result = Set<Int64>()
        for index in 0..<length {
            switch spec {
            case .bounded(let first, let last): if index >= first && index <= last { result.insert(index) }
            case .from(let first): if index >= first { result.insert(index) }
            case .suffix(let n): if index >= length - n { result.insert(index) }
            }
        }
        return result
    }

    static func covered(_ ranges: [ClosedRange<Int64>]) -> Set<Int64> {
        ranges.reduce(into: Set<Int64>()) { set, range in for i in range { set.insert(i) } }
    }
}

let specGenerator = zip(Gen.int(in: 0...2), Gen.int64(in: 0...90), Gen.int64(in: 0...90)).map { (t: (Int, Int64, Int64)) -> RangeSpec in
    switch t.0 {
    case 0: .bounded(first: min(t.1, t.2), last: max(t.1, t.2))
    case 1: .from(first: t.1)
    default: .suffix(length: t.1)
    }
}

@Suite struct ByteRangePropertyTests {
    @Test func coalescedResolutionMatchesTheModel() async {
        await propertyCheck(count: 500, input: specGenerator.array(of: 1...8), Gen.int64(in: 0...64)) { specs, length in
            let header = RangeHeader(specs: specs)
            let modelBytes = specs.reduce(into: Set<Int64>()) { $0.formUnion(RangeModel.bytes($1, length: length)) }
            switch header.resolve(length: length) {
            case .partial(let ranges):
                #expect(RangeModel.covered(ranges) == modelBytes)
                #expect(!modelBytes.isEmpty)
                // Ascending, disjoint and not adjacent.
                for (a, b) in zip(ranges, ranges.dropFirst()) { #expect(a.upperBound + 1 < b.lowerBound) }
                for range in ranges { #expect(range.lowerBound >= 0 && range.upperBound < length) }
            case .unsatisfiable:
                #expect(modelBytes.isEmpty)
                #expect(!(length == 0 && specs.contains { if case .suffix(let n) = $0 { n > 0 } else { false } }))
            case .full:
                #expect(length == 0)
            case .tooManyRanges:
                Issue.record("at most 8 specs were sent; the cap is 16")
            }
        }
    }

    @Test func uncoalescedResolutionKeepsRequestOrder() async {
        let policy = ByteRangePolicy(coalesce: false)
        await propertyCheck(count: 300, input: specGenerator.array(of: 1...6), Gen.int64(in: 1...64)) { specs, length in
            let expected = specs.compactMap { spec -> ClosedRange<Int64>? in
                let bytes = RangeModel.bytes(spec, length: length)
                guard let low = bytes.min(), let high = bytes.max() else { return nil }
                return low...high
            }
            let resolution = RangeHeader(specs: specs).resolve(length: length, policy: policy)
            #expect(resolution == (expected.isEmpty ? .unsatisfiable : .partial(expected)))
        }
    }

    @Test func renderThenParseIsIdentity() async {
        await propertyCheck(count: 300, input: specGenerator.array(of: 1...10)) { specs in
            let header = RangeHeader(specs: specs)
            #expect(RangeHeader(parsing: header.rendered) == header)
        }
    }

    @Test func coalescingWithGapMatchesTheModel() async {
        await propertyCheck(count: 300, input: Gen.int64(in: 0...50).array(of: 2...12), Gen.int64(in: 0...5)) { points, gap in
            var ranges: [ClosedRange<Int64>] = []
            for pair in stride(from: 0, to: points.count - 1, by: 2) {
                ranges.append(min(points[pair], points[pair + 1])...max(points[pair], points[pair + 1]))
            }
            let merged = RangeHeader.coalesce(ranges, gap: gap)
            #expect(RangeModel.covered(merged).isSuperset(of: RangeModel.covered(ranges)))
            for (a, b) in zip(merged, merged.dropFirst()) { #expect(b.lowerBound - a.upperBound - 1 > gap) }
            // Only gaps of at most `gap` bytes were filled.
            let added = RangeModel.covered(merged).subtracting(RangeModel.covered(ranges))
            #expect(Int64(added.count) <= gap * Int64(max(0, ranges.count - 1)))
        }
    }
}

@Suite struct ByteRangeTests {
    static let parseCases: [(String, RangeHeader?)] = [
        ("bytes=0-499", RangeHeader(specs: [.bounded(first: 0, last: 499)])),
        ("bytes=500-", RangeHeader(specs: [.from(first: 500)])),
        ("bytes=-500", RangeHeader(specs: [.suffix(length: 500)])),
        ("BYTES=0-0,-1", RangeHeader(specs: [.bounded(first: 0, last: 0), .suffix(length: 1)])),
        ("bytes=0-1, 5-6 ,\t9-", RangeHeader(specs: [.bounded(first: 0, last: 1), .bounded(first: 5, last: 6), .from(first: 9)])),
        ("bytes=0-1,,2-3, ,", RangeHeader(specs: [.bounded(first: 0, last: 1), .bounded(first: 2, last: 3)])),
        ("bytes=99999999999999999999-", RangeHeader(specs: [.from(first: .max)])),
        ("bytes=5-4", nil),
        ("bytes=", nil),
        ("bytes=,", nil),
        ("bytes=-", nil),
        ("bytes=a-b", nil),
        ("bytes=1-2-3", nil),
        ("bytes=+1-2", nil),
        ("bytes 0-1", nil),
        ("items=0-1", nil),
        ("bytes=0-1;x", nil),
        ("", nil),
    ]

    @Test(arguments: parseCases.indices)
    func parsing(_ index: Int) {
        let (text, expected) = Self.parseCases[index]
        #expect(RangeHeader(parsing: text) == expected, "\(text)")
    }

    @Test func resolution() {
        let length: Int64 = 10_000
        func resolve(_ header: String, policy: ByteRangePolicy = ByteRangePolicy()) -> RangeResolution {
            RangeHeader(parsing: header)!.resolve(length: length, policy: policy)
        }
        #expect(resolve("bytes=0-499") == .partial([0...499]))
        #expect(resolve("bytes=9500-") == .partial([9500...9999]))
        #expect(resolve("bytes=-500") == .partial([9500...9999]))
        #expect(resolve("bytes=-20000") == .partial([0...9999]))
        #expect(resolve("bytes=0-") == .partial([0...9999])) // what ffmpeg and Chromium send
        #expect(resolve("bytes=9999-20000") == .partial([9999...9999]))
        #expect(resolve("bytes=10000-") == .unsatisfiable)
        #expect(resolve("bytes=-0") == .unsatisfiable)
        #expect(resolve("bytes=10000-10001,-0") == .unsatisfiable)
        #expect(resolve("bytes=500-600,601-999,0-499") == .partial([0...999]))
        #expect(resolve("bytes=0-1,5-6,10000-") == .partial([0...1, 5...6]))
        #expect(resolve("bytes=0-1,4-6", policy: ByteRangePolicy(coalescingGap: 2)) == .partial([0...6]))
        #expect(resolve("bytes=0-1,5-6", policy: ByteRangePolicy(coalescingGap: 2)) == .partial([0...1, 5...6]))
        let many = "bytes=" + (0..<17).map { "\($0 * 10)-\($0 * 10 + 1)" }.joined(separator: ",")
        #expect(resolve(many) == .tooManyRanges)
        #expect(resolve(many, policy: ByteRangePolicy(excess: .ignoreRangeHeader)) == .full)
        #expect(resolve(many, policy: ByteRangePolicy(maximumRangeCount: 17)).isPartial)
        // Zero-length representation.
        #expect(RangeHeader(parsing: "bytes=0-")!.resolve(length: 0) == .unsatisfiable)
        #expect(RangeHeader(parsing: "bytes=-5")!.resolve(length: 0) == .full)
        #expect(RangeSpec.suffix(length: 5).resolved(against: 0) == nil)
    }

    @Test func entityTags() {
        #expect(EntityTag(parsing: "\"abc\"") == EntityTag(opaqueTag: "abc"))
        #expect(EntityTag(parsing: "W/\"abc\"") == EntityTag(opaqueTag: "abc", isWeak: true))
        #expect(EntityTag(parsing: "\"\"") == EntityTag(opaqueTag: ""))
        #expect(EntityTag(parsing: "abc") == nil)
        #expect(EntityTag(parsing: "\"a\"b\"") == nil)
        #expect(EntityTag(parsing: "\"a b\"") == nil)
        #expect(EntityTag(parsing: "w/\"abc\"") == nil)
        #expect(EntityTag(opaqueTag: "x", isWeak: true).description == "W/\"x\"")
        #expect(EntityTag(opaqueTag: "x").stronglyMatches(EntityTag(opaqueTag: "x")))
        #expect(!EntityTag(opaqueTag: "x").stronglyMatches(EntityTag(opaqueTag: "x", isWeak: true)))
        #expect(!EntityTag(opaqueTag: "x", isWeak: true).stronglyMatches(EntityTag(opaqueTag: "x", isWeak: true)))
        #expect(!EntityTag(opaqueTag: "x").stronglyMatches(EntityTag(opaqueTag: "y")))
    }

    @Test func httpDates() {
        let instant = Timestamp(secondsSince1970: 784_111_777) // Sun, 06 Nov 1994 08:49:37 GMT
        #expect(HTTPDate.render(instant) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDate.render(Timestamp(millisecondsSince1970: 784_111_777_999)) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDate.parse("Sun, 06 Nov 1994 08:49:37 GMT") == instant)
        #expect(HTTPDate.parse("Sunday, 06-Nov-94 08:49:37 GMT") == instant)
        #expect(HTTPDate.parse("Sun Nov  6 08:49:37 1994") == instant)
        #expect(HTTPDate.parse("Tuesday, 01-Jan-30 00:00:00 GMT") == Timestamp(secondsSince1970: 1_893_456_000))
        #expect(HTTPDate.parse("Sun, 06 Nov 1994 08:49:37 UTC") == nil)
        #expect(HTTPDate.parse("Sun, 31 Feb 1994 08:49:37 GMT") == nil)
        #expect(HTTPDate.parse("Sun, 06 Nov 1994 8:49:37 GMT") == nil)
        #expect(HTTPDate.parse("Sun, 06 Foo 1994 08:49:37 GMT") == nil)
        #expect(HTTPDate.parse("Sunday, 06-Nov-1994 08:49:37 GMT") == nil)
        #expect(HTTPDate.parse("yesterday") == nil)
        #expect(HTTPDate.render(Timestamp(secondsSince1970: 951_782_400)) == "Tue, 29 Feb 2000 00:00:00 GMT")
        #expect(HTTPDate.render(Timestamp(secondsSince1970: -1)) == "Wed, 31 Dec 1969 23:59:59 GMT")
    }

    @Test func ifRange() {
        let etag = EntityTag(opaqueTag: "v1-abc")
        let lastModified = Timestamp(secondsSince1970: 1_700_000_000)
        let date = Timestamp(secondsSince1970: 1_700_000_100)
        func evaluate(_ ifRange: String?, etag: EntityTag? = etag, lastModified: Timestamp? = lastModified,
                      date: Timestamp = date) -> RangeResolution {
            RangeRequestEvaluator.evaluate(range: "bytes=0-9", ifRange: ifRange, length: 100, etag: etag,
                                           lastModified: lastModified, responseDate: date)
        }
        let partial = RangeResolution.partial([0...9])
        #expect(evaluate(nil) == partial)
        #expect(evaluate("\"v1-abc\"") == partial)
        #expect(evaluate(" \"v1-abc\" ") == partial)
        #expect(evaluate("\"v2\"") == .full)
        #expect(evaluate("W/\"v1-abc\"") == .full) // weak never matches
        #expect(evaluate("\"v1-abc\"", etag: EntityTag(opaqueTag: "v1-abc", isWeak: true)) == .full)
        #expect(evaluate("\"v1-abc\"", etag: nil) == .full)
        let lastModifiedText = HTTPDate.render(lastModified)
        #expect(evaluate(lastModifiedText) == partial)
        #expect(evaluate(HTTPDate.render(Timestamp(secondsSince1970: 1_700_000_001))) == .full) // not an exact match
        #expect(evaluate(lastModifiedText, lastModified: nil) == .full)
        // Last-Modified must be at least one second before Date to be a strong validator.
        #expect(evaluate(lastModifiedText, date: Timestamp(millisecondsSince1970: 1_700_000_000_900)) == .full)
        #expect(evaluate(lastModifiedText, date: Timestamp(secondsSince1970: 1_700_000_001)) == partial)
        #expect(evaluate("not a validator") == .full)
        #expect(evaluate("W/garbage") == .full)
        // No Range, or an invalid one: full response whatever If-Range says.
        #expect(RangeRequestEvaluator.evaluate(range: nil, ifRange: "\"v1-abc\"", length: 100, etag: etag, lastModified: nil, responseDate: date) == .full)
        #expect(RangeRequestEvaluator.evaluate(range: "bytes=9-1", ifRange: nil, length: 100, etag: etag, lastModified: nil, responseDate: date) == .full)
        #expect(RangeRequestEvaluator.evaluate(range: "bytes=100-", ifRange: nil, length: 100, etag: etag, lastModified: nil, responseDate: date) == .unsatisfiable)
    }

    @Test func contentRangeAndMultipart() throws {
        #expect(ContentRange.render(0...499, completeLength: 1234) == "bytes 0-499/1234")
        #expect(ContentRange.unsatisfied(completeLength: 1234) == "bytes */1234")
        var rng = SplitMix64(seed: 42)
        let boundary = MultipartByteRanges.makeBoundary(using: &rng)
        #expect(boundary.count == 32)
        #expect(MultipartByteRanges.makeBoundary(using: &rng) != boundary)
        let body = try #require(MultipartByteRanges(boundary: "THIS_STRING_SEPARATES", partContentType: "audio/mp4",
                                                    completeLength: 1000, ranges: [0...9, 500...504]))
        #expect(body.contentType == "multipart/byteranges; boundary=THIS_STRING_SEPARATES")
        let data = Array(repeating: UInt8(ascii: "x"), count: 1000)
        var assembled = ""
        for (index, range) in body.ranges.enumerated() {
            assembled += body.header(forPart: index)
            assembled += String(decoding: data[Int(range.lowerBound)...Int(range.upperBound)], as: UTF8.self)
        }
        assembled += body.closingDelimiter
        #expect(assembled == "--THIS_STRING_SEPARATES\r\nContent-Type: audio/mp4\r\nContent-Range: bytes 0-9/1000\r\n\r\nxxxxxxxxxx"
                + "\r\n--THIS_STRING_SEPARATES\r\nContent-Type: audio/mp4\r\nContent-Range: bytes 500-504/1000\r\n\r\nxxxxx"
                + "\r\n--THIS_STRING_SEPARATES--\r\n")
        #expect(body.contentLength == Int64(assembled.utf8.count))
        #expect(MultipartByteRanges(boundary: "", partContentType: "a", completeLength: 1, ranges: [0...0]) == nil)
        #expect(MultipartByteRanges(boundary: "bad boundary", partContentType: "a", completeLength: 1, ranges: [0...0]) == nil)
        #expect(MultipartByteRanges(boundary: "ok", partContentType: "a", completeLength: 1, ranges: []) == nil)
        #expect(MultipartByteRanges(boundary: String(repeating: "a", count: 71), partContentType: "a", completeLength: 1, ranges: [0...0]) == nil)
    }
}

extension RangeResolution {
    var isPartial: Bool {
        if case .partial = self { true } else { false }
    }
}
