import HeraldServer
import Testing

@Suite("CPU affinity")
struct CPUAffinityTests {
    @Test(arguments: [
        ("Name:\therald\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\n", 2),
        ("Cpus_allowed:\t1\n", 1),
        ("Cpus_allowed:\t4\n", 1),
        ("Cpus_allowed:\tff,ffffffff\n", 40),
        ("Cpus_allowed:\t00000000,00000000,0000000a\n", 2),
    ])
    func theMaskIsCounted(status: String, expected: Int) {
        #expect(CPUAffinity.count(fromStatus: status) == expected)
    }

    @Test(arguments: ["Name:\therald\n", "Cpus_allowed:\t0\n", "Cpus_allowed:\t\n", "Cpus_allowed:\tzz\n"])
    func noMaskOrABrokenOneSaysNothing(status: String) {
        #expect(CPUAffinity.count(fromStatus: status) == nil)
    }

    @Test func thisProcessMayRunSomewhere() {
        #expect((CPUAffinity.usableCount() ?? 0) >= 1)
    }
}
