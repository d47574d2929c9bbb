import Foundation
import Network
import dnssd
import os
import MeshdropFFI

/// Discovery through Bonjour: an `NWListener` advertises what the node says (`advertisement()`),
/// an `NWBrowser` finds `_meshdrop._udp` services, each one is resolved to every address of its host,
/// and the node is told what was found or lost. The node decides the rest (its own advert, which
/// addresses it can dial, dialling); every record it rejects is logged.
///
/// The node listens on its own sockets; the listener here only carries the advert and accepts no
/// connections. Its SRV port is not the node's: peers dial the `tcp` / `quic` ports of the TXT record.
/// All state lives on `queue`.
public final class BonjourDiscoveryDriver: @unchecked Sendable {
    private let node: Node
    private let queue = DispatchQueue(label: "meshdrop.discovery")
    private let log = Logger(subsystem: "org.meshdrop", category: "discovery")
    private var browser: NWBrowser?
    private var advertiser: NWListener?
    private var resolvers: [String: ServiceResolver] = [:]

    public init(node: Node) {
        self.node = node
    }

    /// Advertises and browses until `stop()`.
    public func start() {
        queue.async {
            self.advertise()
            self.browse()
        }
    }

    /// Stops advertising and browsing.
    public func stop() {
        queue.async {
            self.stopBrowsing()
            self.advertiser?.cancel()
            self.advertiser = nil
        }
    }

    /// Browses afresh, so every service is resolved and reported again (after a suspension or a
    /// network change, when addresses may have moved). The advert stays as it is.
    public func rebrowse() {
        queue.async {
            self.stopBrowsing()
            self.browse()
        }
    }

    private var parameters: NWParameters {
        let params = NWParameters.udp
        params.includePeerToPeer = true
        return params
    }

    private func advertise() {
        let advert = node.advertisement()
        do {
            let listener = try NWListener(using: parameters)
            listener.service = NWListener.Service(
                name: advert.instanceName, type: advert.serviceType, txtRecord: NWTXTRecord(advert.txt))
            listener.newConnectionHandler = { $0.cancel() }
            listener.stateUpdateHandler = { [log] state in
                if case .failed(let error) = state {
                    log.error("advertising failed: \(String(describing: error), privacy: .public)")
                }
            }
            listener.start(queue: queue)
            advertiser = listener
        } catch {
            log.error("cannot advertise: \(String(describing: error), privacy: .public)")
        }
    }

    private func browse() {
        let type = node.advertisement().serviceType
        let browser = NWBrowser(for: .bonjourWithTXTRecord(type: type, domain: nil), using: parameters)
        browser.stateUpdateHandler = { [log] state in
            switch state {
            case .failed(let error), .waiting(let error):
                log.error("browsing: \(String(describing: error), privacy: .public)")
            default:
                break
            }
        }
        browser.browseResultsChangedHandler = { [weak self] _, changes in
            for change in changes { self?.handle(change) }
        }
        browser.start(queue: queue)
        self.browser = browser
    }

    private func stopBrowsing() {
        browser?.cancel()
        browser = nil
        resolvers.values.forEach { $0.cancel() }
        resolvers = [:]
    }

    private func handle(_ change: NWBrowser.Result.Change) {
        switch change {
        case .added(let result), .changed(_, let result, _):
            resolve(result)
        case .removed(let result):
            guard case .service(let name, _, _, _) = result.endpoint else { return }
            resolvers.removeValue(forKey: name)?.cancel()
            Task { [node, log] in
                do {
                    try await node.peerGone(instanceName: name)
                } catch {
                    log.error("core rejected the loss of \(name, privacy: .public): \(String(describing: error), privacy: .public)")
                }
            }
        default:
            break
        }
    }

    /// Resolves a service to all addresses of its host and reports them with its TXT record each
    /// time they change (a new resolution replaces an older one of the same service).
    private func resolve(_ result: NWBrowser.Result) {
        guard case .service(let name, let type, let domain, let interface) = result.endpoint,
              case .bonjour(let record) = result.metadata
        else { return }
        let txt = record.dictionary
        resolvers.removeValue(forKey: name)?.cancel()
        let resolver = ServiceResolver(queue: queue) { [node, log] ips in
            Task {
                do {
                    try await node.peerResolved(txt: txt, ips: ips)
                } catch {
                    let what = "\(name) at \(ips.joined(separator: " ")) with TXT \(txt)"
                    log.error("core rejected \(what, privacy: .public): \(String(describing: error), privacy: .public)")
                }
            }
        }
        resolvers[name] = resolver
        resolver.start(name: name, type: type, domain: domain, interfaceIndex: UInt32(interface?.index ?? 0))
    }
}

/// One DNS-SD resolution: the service's SRV record to its host name, then every A and AAAA record
/// of that host, reported as IP strings (IPv6 without a zone) after each batch of answers that
/// changed the set, until `cancel()`. Runs on `queue` only.
final class ServiceResolver {
    private let queue: DispatchQueue
    private let report: ([String]) -> Void
    private let log = Logger(subsystem: "org.meshdrop", category: "discovery")
    private var resolveRef: DNSServiceRef?
    private var addressRef: DNSServiceRef?
    private var addresses: Set<String> = []
    private var reported: Set<String> = []

    init(queue: DispatchQueue, report: @escaping ([String]) -> Void) {
        self.queue = queue
        self.report = report
    }

    func start(name: String, type: String, domain: String, interfaceIndex: UInt32) {
        var ref: DNSServiceRef?
        let context = Unmanaged.passUnretained(self).toOpaque()
        let status = DNSServiceResolve(&ref, 0, interfaceIndex, name, type, domain, { _, _, index, code, _, host, _, _, _, context in
            guard let context else { return }
            Unmanaged<ServiceResolver>.fromOpaque(context).takeUnretainedValue().resolved(code, host, index)
        }, context)
        resolveRef = schedule(ref, status, "resolving \(name)")
    }

    /// Ends the resolution; call it before the last reference goes.
    func cancel() {
        for ref in [resolveRef, addressRef].compactMap({ $0 }) {
            DNSServiceRefDeallocate(ref)
        }
        resolveRef = nil
        addressRef = nil
    }

    /// The SRV answer: the service is resolved, now ask for its host's addresses.
    private func resolved(_ code: DNSServiceErrorType, _ target: UnsafePointer<CChar>?, _ index: UInt32) {
        let host = target.map { String(cString: $0) }
        if let ref = resolveRef {
            DNSServiceRefDeallocate(ref)
        }
        resolveRef = nil
        guard code == DNSServiceErrorType(kDNSServiceErr_NoError), let host else {
            log.error("resolving failed: DNS-SD error \(code)")
            return
        }
        var ref: DNSServiceRef?
        let context = Unmanaged.passUnretained(self).toOpaque()
        let both = DNSServiceProtocol(kDNSServiceProtocol_IPv4 | kDNSServiceProtocol_IPv6)
        let status = DNSServiceGetAddrInfo(&ref, 0, index, both, host, { _, flags, _, code, _, address, _, context in
            guard let context else { return }
            Unmanaged<ServiceResolver>.fromOpaque(context).takeUnretainedValue().answered(flags, code, address)
        }, context)
        addressRef = schedule(ref, status, "looking up \(host)")
    }

    /// One A or AAAA answer (added or removed); reports the set once no more answers are queued.
    private func answered(_ flags: DNSServiceFlags, _ code: DNSServiceErrorType, _ address: UnsafePointer<sockaddr>?) {
        if code == DNSServiceErrorType(kDNSServiceErr_NoError), let address, let ip = Self.ip(address) {
            if flags & DNSServiceFlags(kDNSServiceFlagsAdd) != 0 {
                addresses.insert(ip)
            } else {
                addresses.remove(ip)
            }
        }
        guard flags & DNSServiceFlags(kDNSServiceFlagsMoreComing) == 0, addresses != reported, !addresses.isEmpty else {
            return
        }
        reported = addresses
        report(addresses.sorted())
    }

    /// Delivers the callbacks of a started operation on `queue`; nil (logged) when it did not start.
    private func schedule(_ ref: DNSServiceRef?, _ status: DNSServiceErrorType, _ what: String) -> DNSServiceRef? {
        guard status == DNSServiceErrorType(kDNSServiceErr_NoError), let ref else {
            log.error("\(what, privacy: .public) failed: DNS-SD error \(status)")
            return nil
        }
        guard DNSServiceSetDispatchQueue(ref, queue) == DNSServiceErrorType(kDNSServiceErr_NoError) else {
            DNSServiceRefDeallocate(ref)
            log.error("\(what, privacy: .public): no dispatch queue")
            return nil
        }
        return ref
    }

    /// The textual form of an IPv4 or IPv6 socket address; never carries an IPv6 zone.
    private static func ip(_ address: UnsafePointer<sockaddr>) -> String? {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let size = socklen_t(text.count)
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            var ip = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
            guard inet_ntop(AF_INET, &ip, &text, size) != nil else { return nil }
        case AF_INET6:
            var ip = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
            guard inet_ntop(AF_INET6, &ip, &text, size) != nil else { return nil }
        default:
            return nil
        }
        return String(cString: text)
    }
}
