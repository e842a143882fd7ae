// StreamHost's routes inside your own Hummingbird application: your routes beside the host's
// `/v1/tracks`, `/hls`, `/dash` and `/media`, the host's worker pool as one of your services.
// The embedded default stores under ./example-data (local disk + SQLite).
//
//   swift run EmbedInHummingbird            serves on 127.0.0.1:8090 until Ctrl-C
//   swift run EmbedInHummingbird --check    starts on a free port, asks both kinds of route, stops
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hummingbird
import StreamHost

var configuration = HostConfiguration()
configuration.dataDirectory = "example-data"
configuration.auth.isPublic = true   // a demo: no tokens (never in production)
let host = try await StreamHostServer(configuration: configuration)

let router = Router()
router.get("/hello") { _, _ in "your own route, beside Veza Stream's\n" }
host.register(on: router)            // /v1/tracks, /hls, /dash, /media, /healthz, /readyz, /metrics

let check = CommandLine.arguments.contains("--check")
let app = Application(
    router: router,
    configuration: .init(address: .hostname("127.0.0.1", port: check ? 0 : 8090)),
    services: host.services,
    onServerRunning: { channel in
        let port = channel.localAddress?.port ?? 0
        print("listening on http://127.0.0.1:\(port)")
        guard check else { return }
        // Ask one route of ours and one of the host's, then stop (exit 1 unless both answer 200).
        // In a task of its own: the server starts answering once this closure has returned.
        Task {
            var statuses: [Int] = []
            for path in ["/hello", "/healthz"] {
                do {
                    let (data, response) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)\(path)")!)
                    let status = (response as? HTTPURLResponse)?.statusCode ?? 0
                    statuses.append(status)
                    print("\(path): \(status) \(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))")
                } catch {
                    print("\(path): \(error)")
                    statuses.append(0)
                }
            }
            exit(statuses.allSatisfy { $0 == 200 } ? 0 : 1)
        }
    })
try await app.runService()
