//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Exports: the errno vocabulary comes with this module.
//
//===----------------------------------------------------------------------===//

// Errno and GmemError are part of this module's API (thrown and returned by it), so every importer sees them
// without a second import, as the NIO module re-exports NIOCore.
@_exported import GmemErrno
