/// Where gmemd listens when no `--socket` is given; gmemctl and clients
/// resolve the same default, so both sides meet without configuration.
public enum SocketPath {
    /// `$GMEMD_SOCKET`; else `$XDG_RUNTIME_DIR/gmemd.sock`; else
    /// `/run/gmemd/gmemd.sock` for root; else `./gmemd.sock`.
    public static func resolveDefault(environment: [String: String], uid: UInt32) -> String {
        if let explicit = environment["GMEMD_SOCKET"], !explicit.isEmpty { return explicit }
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty { return runtime + "/gmemd.sock" }
        return uid == 0 ? "/run/gmemd/gmemd.sock" : "./gmemd.sock"
    }

    /// The longest path a Unix socket address holds (sun_path less its NUL).
    public static let maximumLength = 107
}
