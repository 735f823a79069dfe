import GmemCore
import NIOCore
import NIOPosix

/// Feeds one fuzz input to gmemd's real request path: the connection handler
/// of `GmemServer.makeConnectionHandler`, in an `EmbeddedChannel`, over a real
/// `GuestMemory` (memfd, PROT_NONE private pages). The stream arrives in the
/// reads the input chooses, so frames are split and coalesced.
///
/// After every read it checks each frame the daemon sent (well-formed header,
/// REPLY or EVENT, status 0 or -1…-4095, replies in request order with the
/// request's opcode and id) and each reply against ``ProtocolModel``. After the
/// channel closes it checks the memory: the invariant holds, every page's
/// count is 0 and no GPC is left active. Then it resets the memory for the
/// next input.
public enum FuzzHarness {
    /// One memory per configuration, created once per process.
    struct Setup: Sendable {
        let memory: GuestMemory
        let folioSize: Int
        let directMap: Bool
    }

    static let setups: [Setup] = {
        func make(size: UInt64, folio: Int, directMap: Bool) -> Setup {
            do {
                let memory = try GuestMemory(
                    GuestMemory.Configuration(size: size, folioSize: folio, directMap: directMap)
                )
                return Setup(memory: memory, folioSize: folio, directMap: directMap)
            } catch {
                fatalError("cannot create the fuzzing memory: \(error)")
            }
        }
        let page = GuestMemory.systemPageSize
        return [
            make(size: 64 << 10, folio: page, directMap: false),
            make(size: 64 << 10, folio: 4 * page, directMap: false),
            make(size: 64 << 10, folio: page, directMap: true),
            make(size: 4 << 20, folio: 64 << 10, directMap: false),
        ]
    }()

    /// Never started: nothing is offloaded (see `offloadThreshold` below). The
    /// handler's default, NIOThreadPool.singleton, would start a perpetual
    /// pool whose queue LeakSanitizer reports as leaked.
    static let threadPool = NIOThreadPool(numberOfThreads: 1)

    /// GPCs per connection in the harness: small, so -ENOSPC is reachable.
    public static let maxCaches = 4
    public static let frameTimeout = TimeAmount.seconds(1)

    /// Runs one input. Returns the violations found; empty means every check held.
    public static func run(_ bytes: UnsafeRawBufferPointer) -> [String] {
        Self.run(FuzzInput(bytes))
    }

    /// Runs an input whose options a test may have changed (for instance a
    /// max_payload that no control byte chooses).
    public static func run(_ input: FuzzInput) -> [String] {
        let setup = Self.setups[input.memoryChoice]
        var session = Session(input: input, setup: setup)
        session.run()
        session.checkQuiescentMemory()
        Self.reset(setup.memory)
        return session.violations
    }

    public static func run(_ bytes: [UInt8]) -> [String] {
        bytes.withUnsafeBytes { Self.run($0) }
    }

    /// Back to the start state: every page private and zero.
    static func reset(_ memory: GuestMemory) {
        let size = memory.geometry.regionSize
        do {
            try memory.setAttributes(at: GuestPhysicalAddress(0), size: size, shared: false)
            try memory.discard(at: GuestPhysicalAddress(0), size: size)
        } catch {
            fatalError("cannot reset the fuzzing memory: \(error)")
        }
    }
}
