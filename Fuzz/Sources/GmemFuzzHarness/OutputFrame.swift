/// One frame as the daemon sent it.
struct OutputFrame {
    var length: UInt32
    var opcode: UInt16
    var flags: UInt16
    var id: UInt32
    var status: Int32
    var payload: [UInt8]

    static let reply: UInt16 = 1
    static let event: UInt16 = 2

    var summary: String {
        "frame(opcode \(self.opcode), flags \(self.flags), id \(self.id), status \(self.status), \(self.payload.count) payload bytes)"
    }
}

/// The header of a request frame in the input stream.
struct RequestHeader {
    var length: UInt32
    var opcode: UInt16
    var flags: UInt16
    var id: UInt32
    var status: Int32
}
