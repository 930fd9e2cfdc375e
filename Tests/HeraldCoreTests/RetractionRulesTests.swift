import Foundation
import HeraldCore
import Testing

@Suite("Retraction rules")
struct RetractionRulesTests {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    static func target(_ state: DeliveryState, receipt: String? = "42:7") -> Delivery {
        Delivery(id: "dlv_1", eventID: "evt_1", sink: "tg", route: "all", app: nil, state: state, nextAttemptAt: t0, expiresAt: t0.addingTimeInterval(60),
                 receipt: receipt, createdAt: t0)
    }

    @Test(arguments: [
        (DeliveryState.delivered, "42:7", "retract"),
        (.delivered, nil, "skipped"),
        (.pending, "42:7", "retry"),
        (.inFlight, nil, "retry"),
        (.failed, nil, "skipped"),
        (.expired, nil, "skipped"),
        (.skipped, nil, "skipped"),
    ] as [(DeliveryState, String?, String)])
    func whatARetractionDoes(_ state: DeliveryState, _ receipt: String?, _ expected: String) {
        switch RetractionRules.step(for: Self.target(state, receipt: receipt)) {
        case .retract(let id): #expect(expected == "retract" && id == receipt)
        case .finish(let outcome): #expect(outcome.label == expected)
        }
    }

    @Test func aPurgedDeliveryHasNothingToRetract() {
        #expect(RetractionRules.step(for: nil) == .finish(.skipped(reason: "nothing to retract: the delivery is no longer stored")))
    }

    @Test func telegramsWindowBoundsTheRetraction() {
        let plan = RetractionPlan(sentWithin: .seconds(47 * 3600))
        let expires = Self.t0.addingTimeInterval(600)
        #expect(plan.deadline(createdAt: Self.t0, expiresAt: expires) == expires.addingTimeInterval(24 * 3600), "a day after expiry")
        let long = Self.t0.addingTimeInterval(30 * 3600)
        #expect(plan.deadline(createdAt: Self.t0, expiresAt: long) == Self.t0.addingTimeInterval(47 * 3600), "Telegram deletes only for 48 h")
        #expect(RetractionPlan().deadline(createdAt: Self.t0, expiresAt: expires) == expires.addingTimeInterval(24 * 3600))
        #expect(plan.deadline(createdAt: Self.t0, expiresAt: Self.t0.addingTimeInterval(48 * 3600)) == nil,
                "a code that outlives Telegram's 48 h gets no retraction")
    }
}
