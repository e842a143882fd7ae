import Foundation

/// One listening session as the host reconstructs it: from the delivery requests made under
/// its playback token (the server's view) and, when the player sends them, from its beacons.
///
/// ## The server's estimate of listening time (no beacons)
///
/// A player fetches segments ahead of its position and, once its buffer is full, fetches the
/// next segment when it has played one more: between two fetches it plays at most the segment
/// fetched first. So the time listened up to the last fetch is Σ min(gap, d + j) over
/// consecutive segment fetches, d the earlier segment's duration and j a jitter allowance
/// (d/4, at most 1 s) so that late and early requests cancel out: a burst adds nothing, a pause
/// adds its segment (and at most j), not the pause. After the last fetch the player played at most one more segment
/// before the next fetch would have come; half of the last segment is counted, so the error is
/// at most half a segment (plus jitter) per session. A session whose last fetch is the track's
/// last segment is taken to have played what it buffered to the end (a player that downloads
/// the whole track and stops cannot be told apart without beacons); what it buffered is counted
/// from its last jump, as a seek drops the buffer the player had. Never more than the media
/// fetched.
///
/// Progressive files (one long request) are counted by the media their bytes hold; without
/// beacons that is an upper bound, as the host does not yet see where the player stopped.
///
/// ## With beacons
///
/// Listening is the sum of the position advanced while playing (from `play`/`resume`/a seek's
/// target to the next event's position), each stretch no longer than the client time between
/// its two events plus one second. When the last beacon left the player playing, the server's
/// view after that beacon is added (the fetch-gap sum since then plus half a segment, no more
/// than the track left).
struct ListeningSession: Sendable {
    let id: String
    let track: String
    let subjectTag: String?
    let timing: TrackTiming?
    let clientPrefix: String?
    let clientType: String
    /// ISO 3166 code, from the country database.
    let country: String?
    let firstSeen: Double
    var lastSeen: Double
    var firstMedia: Double?
    var lastMedia: Double?
    var playlistRequests = 0
    var mediaRequests = 0
    var bytes: Int64 = 0

    // The server's view.
    /// Segment numbers fetched (bit n of word n / 64).
    private var fetched: [UInt64] = []
    private(set) var coveredSeconds = 0.0
    /// Σ min(gap, earlier segment's duration) over consecutive segment fetches.
    private(set) var consumed = 0.0
    private var lastFetch: (time: Double, duration: Double, number: Int)?
    /// The last ``recentLimit`` segment fetches (time, the segment's duration), oldest first: what
    /// ``wasListening(at:)`` reads, a few seconds behind the newest (48 fetches are minutes of
    /// playing, and more than a player's first burst).
    private var recent: [(time: Double, duration: Double)] = []
    /// After a fetch of the track's last segment: the media then fetched and not yet counted as
    /// listened (the player plays its buffer out after its last request).
    private var remainingAtEnd = 0.0
    static let recentLimit = 48
    private(set) var serverSeeks = 0
    /// Where (media seconds) the segments fetched one after the other up to the last fetch
    /// begin: the start of the track, or of the segment a jump (a seek) went to.
    private(set) var runStart = 0.0
    /// The seconds of media fetched since `runStart`, and ``consumed`` when the run began: what
    /// the player buffered and has not played is their difference (a seek drops the buffer it
    /// had, so what was fetched before it does not count).
    private var runFetched = 0.0
    private var consumedAtRunStart = 0.0
    /// Whether the last segment fetched is the track's last.
    private var lastFetchWasFinal = false
    /// Fetched in the current run and not yet counted in ``consumed``: the buffer a player plays
    /// out after its last request.
    private var runUnplayed: Double { max(0, runFetched - (consumed - consumedAtRunStart)) }
    private(set) var reachedEnd = false
    private(set) var renditionSegments: [String: Int] = [:]
    /// Progressive media fetched, as intervals of seconds.
    private var progressiveCovered: [Range<Double>] = []
    private(set) var progressiveRendition: String?
    /// Counted as a play in the real-time plays-per-minute already.
    var playCounted = false

    // The player's view.
    private(set) var beacons = 0
    private(set) var seenEvents: Set<String> = []
    private var beaconListened = 0.0
    private var playingFrom: (position: Double, clientTime: Double)?
    private var lastBeaconPosition = 0.0
    private var consumedAtLastBeacon = 0.0
    private var lastBeaconAt = 0.0
    private(set) var beaconCompleted = false
    private(set) var beaconSkipped = false
    private(set) var stalls = 0
    private(set) var beaconSeeks = 0
    private(set) var errors = 0
    private var beaconRendition: String?
    /// The last ``recentLimit`` stretches (server times) in which the beacons said the player was
    /// not playing (from a `pause`, `skip`, `complete` or `error` to the next `play` or `resume`,
    /// open while none came): ``wasListening(at:)`` trusts them over the requests.
    private var beaconStops: [(from: Double, to: Double?)] = []

    init(id: String, track: String, subjectTag: String?, timing: TrackTiming?, clientPrefix: String?, clientType: String,
         country: String? = nil, at time: Double) {
        self.country = country
        self.id = id
        self.track = track
        self.subjectTag = subjectTag
        self.timing = timing
        self.clientPrefix = clientPrefix
        self.clientType = clientType
        firstSeen = time
        lastSeen = time
    }

    /// Counts a delivery request answered at `time`.
    mutating func observe(_ object: DeliveredObject, bytes: Int, at time: Double) {
        lastSeen = max(lastSeen, time)
        self.bytes += Int64(bytes)
        switch object {
        case .playlist:
            playlistRequests += 1
        case .initSegment, .other:
            break
        case .segment(let rendition, let number):
            mediaRequests += 1
            noteMedia(time)
            renditionSegments[rendition, default: 0] += 1
            guard let spans = timing?.segments[rendition], number >= 1, number < spans.count else { return }
            let span = spans[number]
            let word = number / 64
            if fetched.count <= word { fetched += [UInt64](repeating: 0, count: word + 1 - fetched.count) }
            let bit = UInt64(1) << UInt64(number % 64)
            if fetched[word] & bit == 0 {
                fetched[word] |= bit
                coveredSeconds += span.duration
            }
            if let last = lastFetch {
                // A late fetch counts up to a jitter allowance more, an early one less, so request
                // timing noise cancels out over the session; a pause counts as its segment plus
                // at most the allowance.
                consumed += min(max(0, time - last.time), last.duration + Self.jitterAllowance(last.duration))
                // The same segment again, later than a quick retry: the player jumped back into
                // it (a seek drops what it had buffered after it).
                let again = number == last.number && time - last.time > Self.jitterAllowance(last.duration)
                let jumped = number != last.number + 1 && (number != last.number || again)
                if jumped {
                    serverSeeks += 1
                    runStart = span.start
                    // The target lies on average in the middle of the segment it falls in.
                    runFetched = -span.duration / 2
                    consumedAtRunStart = consumed
                }
                if number != last.number || jumped { runFetched += span.duration }
            } else {
                runStart = span.start
                runFetched = span.duration
            }
            lastFetch = (time, span.duration, number)
            if recent.count >= Self.recentLimit { recent.removeFirst() }
            recent.append((time, span.duration))
            lastFetchWasFinal = number == spans.count - 1
            if lastFetchWasFinal {
                reachedEnd = true
                remainingAtEnd = runUnplayed
            }
        case .progressive(let file, let range):
            mediaRequests += 1
            noteMedia(time)
            guard let (rendition, size) = timing?.progressive[file], size > 0, let duration = timing?.durationSeconds else { return }
            progressiveRendition = rendition
            let upper = min(range.upperBound, size)
            guard upper > range.lowerBound else { return }
            let media = Double(range.lowerBound) / Double(size) * duration..<Double(upper) / Double(size) * duration
            Self.insert(media, into: &progressiveCovered)
            if upper == size { reachedEnd = true }
        }
    }

    /// How much later than a segment's duration a fetch may come and still count as played
    /// time: a quarter of the segment, at most a second.
    static func jitterAllowance(_ duration: Double) -> Double { min(1, duration / 4) }

    private mutating func noteMedia(_ time: Double) {
        if firstMedia == nil { firstMedia = time }
        lastMedia = max(lastMedia ?? time, time)
    }

    /// Takes a checked beacon received at `time`; false when its id was seen before.
    mutating func receive(_ beacon: PlaybackBeacon, at time: Double) -> Bool {
        guard seenEvents.insert(beacon.id).inserted else { return false }
        beacons += 1
        lastSeen = max(lastSeen, time)
        lastBeaconAt = time
        consumedAtLastBeacon = consumed
        func accrue() {
            guard let from = playingFrom else { return }
            let advanced = beacon.position - from.position
            let allowed = max(0, beacon.clientTime - from.clientTime) + 1
            beaconListened += max(0, min(advanced, allowed))
        }
        switch beacon.kind {
        case .play, .resume:
            accrue()
            playingFrom = (beacon.position, beacon.clientTime)
        case .pause:
            accrue()
            playingFrom = nil
        case .seek:
            beaconSeeks += 1
            let wasPlaying = playingFrom != nil
            accrue()
            playingFrom = wasPlaying ? (beacon.to ?? beacon.position, beacon.clientTime) : nil
        case .qualityChange:
            accrue()
            if playingFrom != nil { playingFrom = (beacon.position, beacon.clientTime) }
            beaconRendition = beacon.rendition ?? beaconRendition
        case .stall:
            stalls += 1
            accrue()
            if playingFrom != nil { playingFrom = (beacon.position, beacon.clientTime) }
        case .skip:
            accrue()
            playingFrom = nil
            beaconSkipped = true
        case .complete:
            accrue()
            playingFrom = nil
            beaconCompleted = true
        case .error:
            errors += 1
            accrue()
            playingFrom = nil
        }
        lastBeaconPosition = beacon.to ?? beacon.position
        let stopOpen = beaconStops.last.map { $0.to == nil } ?? false
        if playingFrom == nil, !stopOpen, beacon.kind != .seek {
            if beaconStops.count >= Self.recentLimit { beaconStops.removeFirst() }
            beaconStops.append((time, nil))
        } else if playingFrom != nil, stopOpen {
            beaconStops[beaconStops.count - 1].to = time
        }
        return true
    }

    /// Whether a player fetched media within the last `window` seconds before `now`.
    func isListening(now: Double, window: Double) -> Bool {
        guard let lastMedia else { return false }
        return now - lastMedia <= window
    }

    /// Whether the player was playing at `time`, as far as its requests tell, once ``evaluationDelay``
    /// has passed after it (a playing player fetches again within a segment and the jitter
    /// allowance; a fetch that does not come means it stopped or paused).
    ///
    /// Consistent with ``serverListenedSeconds``: between two fetches the player played at most
    /// the earlier segment (and the jitter allowance), so a longer gap (a pause) counts half of
    /// that after the first fetch and half before the second; after the last fetch it counts half a segment, or what
    /// was buffered when the last segment was fetched. The errors at the two ends of a stretch
    /// have opposite signs, so concurrent-listener counts are not biased by how many players
    /// start or stop. Where the player's beacons said it was paused or stopped, it was not
    /// playing, whatever its requests (a paused player may still fill its buffer).
    func wasListening(at time: Double) -> Bool {
        guard let firstMedia, time >= firstMedia else { return false }
        if beaconStops.contains(where: { $0.from <= time && time < ($0.to ?? .infinity) }) { return false }
        guard !recent.isEmpty else {
            // Progressive only: the request's span.
            return time <= (lastMedia ?? firstMedia)
        }
        var before: (time: Double, duration: Double)?
        var after: Double?
        for fetch in recent {
            if fetch.time <= time {
                before = fetch
            } else {
                after = fetch.time
                break
            }
        }
        guard let before else {
            // Older than what is kept: only the stretch just before the next fetch.
            return after.map { $0 - time <= recent[0].duration / 2 } ?? false
        }
        if let after {
            let counted = before.duration + Self.jitterAllowance(before.duration)
            if after - before.time <= counted { return true }
            // As ``consumed`` counts it: the segment and the allowance of the gap, half after
            // the first fetch and half before the second (a fetch late by more than the
            // allowance loses only what is beyond it).
            return time - before.time <= counted / 2 || after - time <= counted / 2
        }
        let tail = lastFetchWasFinal ? max(before.duration / 2, remainingAtEnd) : before.duration / 2
        return time - before.time <= tail
    }

    /// How long after an instant ``wasListening(at:)`` can tell for segments up to `longestSegment`
    /// seconds: the longest segment, its jitter allowance and a second for the request.
    static func evaluationDelay(longestSegment: Double) -> Double {
        longestSegment + jitterAllowance(longestSegment) + 1
    }

    /// The seconds of the track fetched (segments and progressive bytes).
    var mediaFetchedSeconds: Double {
        coveredSeconds + progressiveCovered.reduce(0) { $0 + ($1.upperBound - $1.lowerBound) }
    }

    /// Adds `range` to sorted, disjoint `ranges`, merging what overlaps (so a session that asks
    /// for the same bytes again and again keeps one interval).
    static func insert(_ range: Range<Double>, into ranges: inout [Range<Double>]) {
        var merged = range
        var kept: [Range<Double>] = []
        kept.reserveCapacity(ranges.count + 1)
        for existing in ranges {
            if existing.upperBound < merged.lowerBound || existing.lowerBound > merged.upperBound {
                kept.append(existing)
            } else {
                merged = min(existing.lowerBound, merged.lowerBound)..<max(existing.upperBound, merged.upperBound)
            }
        }
        let index = kept.firstIndex { $0.lowerBound > merged.lowerBound } ?? kept.count
        kept.insert(merged, at: index)
        ranges = kept
    }

    /// The server's estimate (see the type's documentation).
    var serverListenedSeconds: Double {
        let fetchedSeconds = mediaFetchedSeconds
        var estimate = consumed
        if let lastFetch {
            estimate += lastFetchWasFinal ? runUnplayed : lastFetch.duration / 2
        }
        estimate += fetchedSeconds - coveredSeconds   // progressive: what its bytes hold
        return min(estimate, fetchedSeconds)
    }

    /// Listening time: the beacons' when there are any (with the server's view after the
    /// last one when it left the player playing), else the server's.
    var listenedSeconds: Double {
        guard beacons > 0 else { return serverListenedSeconds }
        var total = beaconListened
        if playingFrom != nil {
            var tail = consumed - consumedAtLastBeacon
            if let lastFetch, lastFetch.time >= lastBeaconAt { tail += lastFetch.duration / 2 }
            let left = max(0, (timing?.durationSeconds ?? .infinity) - lastBeaconPosition)
            total += min(tail, left)
        }
        return total
    }

    /// The rendition heard most (by segments fetched; a quality change beacon wins last).
    var mainRendition: String? {
        if let beaconRendition { return beaconRendition }
        return renditionSegments.max(by: { ($0.value, $1.key) < ($1.value, $0.key) })?.key ?? progressiveRendition
    }
}
