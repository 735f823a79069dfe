//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// JSONObject: a JSON object built member by member, keys in the order set.
//
//===----------------------------------------------------------------------===//

/// A JSON object under construction, for reports assembled a member at a time; ``value`` is the finished
/// ``JSONValue/object(_:)``. Setting a key again replaces its value in place; setting nil removes it.
public struct JSONObject: Sendable, ExpressibleByDictionaryLiteral {
    /// The members, in the order their keys were first set.
    public private(set) var members: [(String, JSONValue)] = []

    public init() {}

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        for (key, value) in elements { self[key] = value }
    }

    public subscript(key: String) -> JSONValue? {
        get { self.members.first { $0.0 == key }?.1 }
        set {
            let index = self.members.firstIndex { $0.0 == key }
            switch (index, newValue) {
            case (let index?, let value?): self.members[index].1 = value
            case (let index?, nil): self.members.remove(at: index)
            case (nil, let value?): self.members.append((key, value))
            case (nil, nil): break
            }
        }
    }

    /// The object as a JSON value.
    public var value: JSONValue { .object(self.members) }
}
