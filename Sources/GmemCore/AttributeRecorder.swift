/// Receives every attribute change of a ``GuestMemory`` so that it can
/// outlive the process (the systemd fd store's `gmemd-state` file).
///
/// Contract:
/// - ``recordConversion(chunk:pages:shared:_:)`` is called once per 2 MiB
///   chunk that ``GuestMemory/setAttributes(at:size:shared:)`` converts. It
///   must run `convert` (the chunk's in-memory conversion) and, only if that
///   succeeds, record that every page of `pages` is now shared (or private),
///   all before returning — setAttributes acknowledges nothing unrecorded.
/// - Conversion and record of one chunk must be serialized against every
///   other conversion of the same chunk, so the record ends in the same state
///   as memory when two clients convert the same pages concurrently.
/// - The record must be crash-consistent: a SIGKILL between any two
///   instructions leaves it valid, holding either the old or the new state of
///   each page.
/// - It must not call back into the ``GuestMemory``; `convert` takes that
///   memory's locks (lock order: recorder, then the core's).
public protocol AttributeRecorder: AnyObject, Sendable {
    func recordConversion(
        chunk: Int,
        pages: Range<Int>,
        shared: Bool,
        _ convert: () throws(GmemError) -> Int
    ) throws(GmemError) -> Int
}
