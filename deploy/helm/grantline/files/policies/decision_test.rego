# Unit tests of the demo policy, one per demo case: run them with `grantline policy test` (policy.Test)
# or `opa test examples/policies`. The entitlements below mirror examples/catalogue.yaml as the policy
# service sends them; services/policy tests the same cases against the real catalogue.
package grantline_test

import data.grantline

hour := 3600

now := "2026-01-01T08:00:00Z"

catalogue := {
	"analytics-read": {
		"id": "analytics-read", "risk": "low", "connector": "postgres",
		"owner_groups": ["analytics-owners"],
		"max_duration_seconds": 8 * hour, "max_total_seconds": 24 * hour, "min_duration_seconds": 5,
		"subject_kinds": ["human"],
	},
	"payments-admin": {
		"id": "payments-admin", "risk": "high", "connector": "postgres",
		"owner_groups": ["payments-owners"],
		"max_duration_seconds": 2 * hour, "max_total_seconds": 4 * hour, "min_duration_seconds": 5,
		"subject_kinds": ["human"],
		"emergency": {"max_duration_seconds": 1800, "review_groups": ["security"], "review_within_seconds": 24 * hour},
	},
	"reporting-db-credential": {
		"id": "reporting-db-credential", "risk": "medium", "connector": "postgres",
		"owner_groups": ["payments-owners"],
		"max_duration_seconds": hour, "min_duration_seconds": 5, "subject_kinds": ["service_account"],
	},
	"mainframe-operator": {
		"id": "mainframe-operator", "risk": "high", "connector": "manual",
		"owner_groups": ["security"], "fulfiller_groups": ["operations"],
		"max_duration_seconds": 8 * hour, "min_duration_seconds": 5, "subject_kinds": ["human"],
	},
}

people := {
	"alice": ["engineers"],
	"bob": ["analytics-owners", "payments-owners"],
	"dave": ["operations"],
	"erin": ["auditors"],
	"frank": ["engineers", "payments-owners"],
}

# request builds the input for a person asking for an entitlement for themselves.
request(who, entitlement, seconds) := {
	"request": {
		"requester": {"id": who, "groups": people[who]},
		"subject": {"kind": "human", "id": who},
		"entitlement": entitlement, "justification": "test", "ticket": "T-1",
		"duration_seconds": seconds, "start_at": null, "emergency": false, "channel": "http",
	},
	"entitlement": object.get(catalogue, entitlement, null),
	"now": now,
	"open_emergency_reviews": [],
}

emergency(who, entitlement, seconds, open) := object.union(request(who, entitlement, seconds), {
	"request": {"emergency": true},
	"open_emergency_reviews": open,
})

for_service_account(who, id, owner, seconds) := object.union(request(who, "reporting-db-credential", seconds), {
	"request": {"subject": {"kind": "service_account", "id": id, "owner": owner}},
})

# extending builds the input for a person extending their grant of original seconds, held since
# held_for seconds before now, by seconds.
extending(who, entitlement, seconds, original, held_for) := object.union(request(who, entitlement, seconds), {
	"request": {"extends": {
		"request_id": "01JEXTENDED0000000000000000",
		"held_since": time.format([time.parse_rfc3339_ns(now) - (held_for * 1000000000), "UTC", "2006-01-02T15:04:05Z07:00"]),
		"expires_at": time.format([(time.parse_rfc3339_ns(now) - (held_for * 1000000000)) + (original * 1000000000), "UTC", "2006-01-02T15:04:05Z07:00"]),
		"duration_seconds": original,
	}},
})

mentions(d, text) if {
	some reason in d.reasons
	contains(reason, text)
}

# analytics-read

test_analytics_read_engineer_is_auto_approved if {
	d := grantline.decision with input as request("alice", "analytics-read", 4 * hour)
	d.outcome == "auto_approved"
	d.stages == []
	d.effective_duration_seconds == 4 * hour
}

test_analytics_read_engineer_up_to_8h_is_auto_approved if {
	d := grantline.decision with input as request("alice", "analytics-read", 8 * hour)
	d.outcome == "auto_approved"
}

test_analytics_read_outsider_needs_an_owner if {
	d := grantline.decision with input as request("erin", "analytics-read", hour)
	d.outcome == "approval_required"
	d.stages == [{"name": "owners", "groups": ["analytics-owners"], "min_approvals": 1}]
	d.approval_window_seconds == 24 * hour
	d.effective_duration_seconds == hour
}

test_analytics_read_over_8h_is_denied if {
	d := grantline.decision with input as request("alice", "analytics-read", 9 * hour)
	d.outcome == "deny"
	mentions(d, "at most 28800 seconds")
}

test_analytics_read_has_no_emergency_path if {
	d := grantline.decision with input as emergency("alice", "analytics-read", hour, [])
	d.outcome == "deny"
	mentions(d, "no emergency path")
}

# payments-admin

test_payments_admin_needs_owners_then_security if {
	d := grantline.decision with input as request("alice", "payments-admin", hour)
	d.outcome == "approval_required"
	d.stages == [
		{"name": "owners", "groups": ["payments-owners"], "min_approvals": 1},
		{"name": "security", "groups": ["security"], "min_approvals": 1},
	]
	d.stages_ordered == true
	d.effective_duration_seconds == hour
}

test_payments_admin_over_2h_is_denied if {
	d := grantline.decision with input as request("alice", "payments-admin", 3 * hour)
	d.outcome == "deny"
	mentions(d, "at most 7200 seconds")
}

test_payments_admin_policy_cap_beats_a_looser_catalogue if {
	loose := json.patch(request("alice", "payments-admin", 3 * hour), [{"op": "replace", "path": "/entitlement/max_duration_seconds", "value": 8 * hour}])
	d := grantline.decision with input as loose
	d.outcome == "deny"
	mentions(d, "at most 7200 seconds")
}

test_payments_admin_emergency_is_shortened_and_post_reviewed if {
	d := grantline.decision with input as emergency("alice", "payments-admin", hour, [])
	d.outcome == "emergency"
	d.stages == []
	d.effective_duration_seconds == 1800
	d.post_review == {"groups": ["security"], "within_seconds": 24 * hour}
}

test_payments_admin_short_emergency_keeps_its_duration if {
	d := grantline.decision with input as emergency("alice", "payments-admin", 600, [])
	d.outcome == "emergency"
	d.effective_duration_seconds == 600
}

test_payments_admin_second_emergency_while_one_is_open_is_denied if {
	d := grantline.decision with input as emergency("alice", "payments-admin", hour, ["01JOPENREVIEW00000000000000"])
	d.outcome == "deny"
	mentions(d, "open emergency review (01JOPENREVIEW00000000000000)")
}

# reporting-db-credential

test_reporting_credential_for_svc_reporting_needs_its_owners if {
	d := grantline.decision with input as for_service_account("frank", "svc-reporting", "payments-owners", 1800)
	d.outcome == "approval_required"
	d.stages == [{"name": "owners", "groups": ["payments-owners"], "min_approvals": 1}]
}

test_reporting_credential_for_another_account_is_denied if {
	d := grantline.decision with input as for_service_account("frank", "svc-billing", "payments-owners", 1800)
	d.outcome == "deny"
	mentions(d, "only to svc-reporting")
}

test_reporting_credential_for_a_person_is_denied if {
	d := grantline.decision with input as request("alice", "reporting-db-credential", 1800)
	d.outcome == "deny"
	mentions(d, "cannot be held by a human subject")
}

test_reporting_credential_over_1h_is_denied if {
	d := grantline.decision with input as for_service_account("frank", "svc-reporting", "payments-owners", 2 * hour)
	d.outcome == "deny"
	mentions(d, "at most 3600 seconds")
}

# extensions of an active grant

test_low_risk_extension_no_longer_than_the_original_is_auto_approved if {
	# erin is outside engineers: analytics-read would need its owners, but a routine extension does not.
	d := grantline.decision with input as extending("erin", "analytics-read", 2 * hour, 2 * hour, 110 * 60)
	d.outcome == "auto_approved"
	d.effective_duration_seconds == 2 * hour
	mentions(d, "extension of 01JEXTENDED0000000000000000")
}

test_low_risk_extension_longer_than_the_original_is_routed_as_a_new_request if {
	d := grantline.decision with input as extending("erin", "analytics-read", 3 * hour, 2 * hour, 110 * 60)
	d.outcome == "approval_required"
	d.stages == [{"name": "owners", "groups": ["analytics-owners"], "min_approvals": 1}]
}

test_high_risk_extension_is_reapproved_by_one_stage if {
	d := grantline.decision with input as extending("alice", "payments-admin", hour, hour, 50 * 60)
	d.outcome == "approval_required"
	d.stages == [{"name": "owners", "groups": ["payments-owners"], "min_approvals": 1}]
	d.stages_ordered == false
	mentions(d, "approve it again")
}

test_extension_beyond_the_maximum_total_is_denied if {
	# payments-admin is held at most 4h in all: 3h10m held and 1h more is over.
	d := grantline.decision with input as extending("alice", "payments-admin", hour, 2 * hour, 190 * 60)
	d.outcome == "deny"
	mentions(d, "at most 14400 seconds without a gap")
}

test_extension_up_to_the_maximum_total_is_allowed if {
	d := grantline.decision with input as extending("alice", "payments-admin", hour, 2 * hour, 3 * hour)
	d.outcome == "approval_required"
}

test_without_max_total_extensions_reach_max_duration_in_all if {
	d := grantline.decision with input as extending("frank", "mainframe-operator", hour, hour, 7 * hour + 1)
	d.outcome == "deny"
	mentions(d, "at most 28800 seconds without a gap")
}

# mainframe-operator

test_mainframe_operator_needs_security if {
	d := grantline.decision with input as request("dave", "mainframe-operator", 4 * hour)
	d.outcome == "approval_required"
	d.stages == [{"name": "security", "groups": ["security"], "min_approvals": 1}]
}

# general rules

test_unknown_entitlement_is_denied if {
	d := grantline.decision with input as request("alice", "root-everywhere", hour)
	d.outcome == "deny"
	mentions(d, `unknown entitlement "root-everywhere"`)
}

test_below_the_minimum_is_denied if {
	d := grantline.decision with input as request("alice", "analytics-read", 1)
	d.outcome == "deny"
	mentions(d, "at least 5 seconds")
}

test_every_applicable_reason_is_reported if {
	d := grantline.decision with input as emergency("alice", "reporting-db-credential", 2 * hour, [])
	d.outcome == "deny"
	count(d.reasons) == 4
}

# locks

lock(kind, id, emergency_allowed) := {
	"id": "01KLOCK0000000000000000000", "reason": "laptop stolen",
	"scope": {"kind": kind, "id": id}, "emergency_allowed": emergency_allowed,
}

locked(doc, locks) := object.union(doc, {"locks": locks})

test_a_locked_person_is_denied_naming_the_lock if {
	d := grantline.decision with input as locked(request("alice", "analytics-read", hour), [lock("user", "alice", false)])
	d.outcome == "deny"
	d.effective_duration_seconds == 0
	mentions(d, "locked by 01KLOCK0000000000000000000 (user alice): laptop stolen")
}

test_a_locked_entitlement_is_denied_to_everyone if {
	d := grantline.decision with input as locked(request("erin", "analytics-read", hour), [lock("entitlement", "analytics-read", false)])
	d.outcome == "deny"
	mentions(d, "locked by 01KLOCK0000000000000000000 (entitlement analytics-read)")
}

test_every_covering_lock_is_named if {
	d := grantline.decision with input as locked(request("alice", "analytics-read", hour), [lock("user", "alice", false), object.union(lock("target", "analytics-db", false), {"id": "01KLOCK0000000000000000001"})])
	mentions(d, "01KLOCK0000000000000000000")
	mentions(d, "01KLOCK0000000000000000001")
}

test_a_lock_denies_emergencies_too if {
	d := grantline.decision with input as locked(emergency("alice", "payments-admin", 1800, []), [lock("user", "alice", false)])
	d.outcome == "deny"
	mentions(d, "locked by")
}

test_a_lock_that_allows_emergencies_lets_one_through if {
	d := grantline.decision with input as locked(emergency("alice", "payments-admin", 1800, []), [lock("user", "alice", true)])
	d.outcome == "emergency"
}

test_a_lock_that_allows_emergencies_still_denies_routine_requests if {
	d := grantline.decision with input as locked(request("alice", "analytics-read", hour), [lock("user", "alice", true)])
	d.outcome == "deny"
	mentions(d, "locked by")
}

test_no_locks_is_the_decision_as_before if {
	d := grantline.decision with input as locked(request("alice", "analytics-read", hour), [])
	d.outcome == "auto_approved"
}
