import Testing

@testable import GmemServer

/// Who may connect and who may map the region, decided from credentials alone.
@Suite("Access policy")
struct AccessPolicyTests {
    static let policy: AccessPolicy = {
        var policy = AccessPolicy(ownUID: 1000)
        policy.allowedUIDs = [2000]
        policy.allowedGIDs = [300]
        policy.readOnlyGID = 400
        policy.mapUIDs = [2000, 3000]
        policy.mapGIDs = [500]
        return policy
    }()

    @Test(
        "MAP_REGION only for the named, never read-only, never on unknown groups",
        arguments: [
            // (uid, gid, supplementary groups (nil: unknown), may map)
            (2000, 2000, [], true),  // named by --allow-map-uid and admitted
            (3000, 3000, [], false),  // named for mapping, but not admitted at all
            (3000, 300, [], true),  // admitted by its group, named for mapping
            (0, 0, [], false),  // root connects, but maps only when named
            (1000, 1000, [], false),  // gmemd's own uid likewise
            (1000, 1000, [500], true),  // a supplementary map group
            (1000, 500, [], true),  // the primary group
            (2000, 2000, [400], false),  // read-only membership wins
            (1000, 1000, nil, false),  // groups unknown: they grant nothing, and read-only may apply
        ] as [(UInt32, UInt32, [UInt32]?, Bool)]
    )
    func mayMap(uid: UInt32, gid: UInt32, groups: [UInt32]?, expected: Bool) {
        #expect(Self.policy.mayMap(uid: uid, gid: gid, groups: groups) == expected)
    }

    @Test("map groups make the server read supplementary groups")
    func usesGroups() {
        var policy = AccessPolicy(ownUID: 1000)
        #expect(!policy.usesGroups)
        policy.mapGIDs = [500]
        #expect(policy.usesGroups)
    }
}
