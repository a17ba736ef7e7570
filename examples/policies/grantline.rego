# Grantline's demo access policy: who gets what, after whose approval, for how long.
#
# The policy service (services/policy) evaluates data.grantline.decision once per submitted request,
# and again at the start of a request that asked for access from a later time (start_at): then with the
# requester's groups, the catalogue and the locks as they are at the start, and the request goes ahead
# only if the outcome is auto_approved or emergency, or approval_required with stages the approvals it
# already has satisfy; otherwise it is denied with these reasons.
# Every *_test.rego file beside this one is part of the bundle's revision but not of its evaluation.
#
# INPUT (policy.Input in services/policy/input.go):
#
#   {
#     "request": {                                  the submitted request, as intake captured it
#       "requester": {"id": "alice", "groups": ["engineers"]},
#       "subject":   {"kind": "human" | "service_account" | "workload", "id": "alice",
#                     "owner": "payments-owners"}   owner: the owning team, non-human subjects only
#       "entitlement": "analytics-read",
#       "justification": "quarterly report", "ticket": "INC-42",
#       "duration_seconds": 3600,
#       "start_at": "2026-01-01T09:00:00Z" | null,
#       "emergency": false,
#       "channel": "http" | "integration:<name>",
#       "extends": {                                absent unless the request extends an active grant
#         "request_id", "held_since",               the extended request; when the chain of grants began
#         "expires_at", "duration_seconds"          the extended grant's expiry and effective duration
#       }
#     },
#     "entitlement": null | {                       the catalogue entry; null for an unknown entitlement
#       "id", "description", "system", "resource",
#       "risk": "low" | "medium" | "high",
#       "connector": "postgres" | "webhook" | "manual",
#       "owner_groups": [..], "fulfiller_groups": [..] (manual only),
#       "max_duration_seconds", "min_duration_seconds", "subject_kinds": [..],
#       "max_total_seconds",                        absent when the catalogue sets no max_total: a grant
#                                                   and its extensions may then last max_duration in all
#       "emergency": {"max_duration_seconds", "review_groups": [..], "review_within_seconds"}
#                                                   absent when the entitlement has no break-glass path
#     },
#     "now": "2026-01-01T08:00:00Z",                 RFC 3339, UTC
#     "open_emergency_reviews": ["<request id>", ..] the requester's emergency grants still awaiting
#                                                   their post-review (never the request itself)
#     "locks": [{                                   absent unless a lock holding now covers the request
#       "id", "reason",                             the lock's ID and why security placed it
#       "scope": {"kind": "user" | "entitlement" | "target", "id"},
#       "until": "2026-01-02T00:00:00Z",            absent for a lock until removed
#       "emergency_allowed": bool                   emergency requests pass this lock
#     }]
#   }
#
# OUTPUT data.grantline.decision:
#
#   {
#     "outcome": "deny" | "approval_required" | "auto_approved" | "emergency",
#     "reasons": ["..."],                           at least one, for the requester and the auditor
#     "stages": [{"name", "groups": [..], "min_approvals"}],   approval_required only, else []
#     "stages_ordered": bool,                       stage i+1 opens only once stage i is satisfied
#     "effective_duration_seconds": n,              0 for deny; otherwise 0 < n <= requested
#     "approval_window_seconds": n,                 approval_required only, else 0
#     "post_review": {"groups": [..], "within_seconds": n}     emergency only
#   }
#
# The rule names below (analytics-read, payments-admin, reporting-db-credential, mainframe-operator)
# are shared with the README and with the tests in decision_test.rego and services/policy.
package grantline

hour := 3600

# approval_window_seconds is how long reviewers have before an approval_required request is rejected.
approval_window_seconds := 24 * hour

# policy_max_seconds caps durations in the policy itself, whatever the catalogue says: the catalogue
# is edited by the asset's owners, the policy by governance, and the stricter of the two applies.
policy_max_seconds := {
	"analytics-read": 8 * hour,
	"payments-admin": 2 * hour,
	"reporting-db-credential": hour,
	"mainframe-operator": 8 * hour,
}

# reporting_subjects are the only identities reporting-db-credential may be issued to.
reporting_subjects := {"svc-reporting"}

req := input.request

ent := input.entitlement

known if is_object(input.entitlement)

emergency_path if {
	known
	is_object(ent.emergency)
}

# max_seconds is the longest duration allowed: the catalogue's, or the policy's cap when stricter.
max_seconds := min([ent.max_duration_seconds, policy_max_seconds[ent.id]]) if {
	known
	policy_max_seconds[ent.id]
} else := ent.max_duration_seconds if known

open_reviews := sort([id | some id in input.open_emergency_reviews])

# ---- extensions of an active grant ----

extension if is_object(req.extends)

# max_total_seconds bounds a grant and its extensions held without a gap.
max_total_seconds := object.get(ent, "max_total_seconds", ent.max_duration_seconds) if known

# held_seconds is how long the chain of grants will have lasted when the extension requested ends.
held_seconds := ceil((time.parse_rfc3339_ns(input.now) - time.parse_rfc3339_ns(req.extends.held_since)) / 1000000000) + req.duration_seconds if {
	extension
}

# routine_extension: no longer than the grant it extends, and within the maximum total.
routine_extension if {
	extension
	req.duration_seconds <= req.extends.duration_seconds
	held_seconds <= max_total_seconds
}

# ---- deny rules: any one of them denies the request, and all that apply are reported ----

deny_reasons contains sprintf("unknown entitlement %q: it is not in the catalogue", [req.entitlement]) if {
	not known
}

deny_reasons contains msg if {
	known
	req.duration_seconds > max_seconds
	msg := sprintf("%s allows at most %d seconds; %d were requested", [ent.id, max_seconds, req.duration_seconds])
}

deny_reasons contains msg if {
	known
	req.duration_seconds < ent.min_duration_seconds
	msg := sprintf("%s needs at least %d seconds; %d were requested", [ent.id, ent.min_duration_seconds, req.duration_seconds])
}

deny_reasons contains msg if {
	known
	not req.subject.kind in ent.subject_kinds
	msg := sprintf("%s cannot be held by a %s subject (allowed: %s)", [ent.id, req.subject.kind, concat(", ", ent.subject_kinds)])
}

deny_reasons contains msg if {
	known
	req.emergency
	not emergency_path
	msg := sprintf("%s has no emergency path; request it normally", [ent.id])
}

deny_reasons contains msg if {
	req.emergency
	emergency_path
	count(open_reviews) > 0
	msg := sprintf(
		"%s still has an open emergency review (%s); a second emergency is refused until it is post-reviewed",
		[req.requester.id, concat(", ", open_reviews)],
	)
}

deny_reasons contains msg if {
	known
	extension
	held_seconds > max_total_seconds
	msg := sprintf(
		"%s may be held at most %d seconds without a gap; extending %s would make %d",
		[ent.id, max_total_seconds, req.extends.request_id, held_seconds],
	)
}

# A lock stops every request it covers, naming itself; an emergency passes only a lock that allows it.
deny_reasons contains msg if {
	some lock in object.get(input, "locks", [])
	not emergency_passes(lock)
	msg := sprintf("locked by %s (%s %s): %s", [lock.id, lock.scope.kind, lock.scope.id, lock.reason])
}

emergency_passes(lock) if {
	req.emergency
	lock.emergency_allowed
}

deny_reasons contains msg if {
	req.entitlement == "reporting-db-credential"
	not req.subject.id in reporting_subjects
	msg := sprintf("reporting-db-credential is issued only to %s, not to %q", [concat(", ", reporting_subjects), req.subject.id])
}

# ---- the decision ----

decision := denied if {
	count(deny_reasons) > 0
} else := emergency if {
	req.emergency
} else := routed

denied := {
	"outcome": "deny",
	"reasons": sort(deny_reasons),
	"stages": [],
	"stages_ordered": false,
	"effective_duration_seconds": 0,
	"approval_window_seconds": 0,
}

# emergency: break-glass without approval, shortened, and reviewed afterwards.
emergency := {
	"outcome": "emergency",
	"reasons": [sprintf(
		"emergency access to %s: granted for %d seconds without approval; %s must post-review it within %d seconds",
		[ent.id, duration, concat(", ", ent.emergency.review_groups), ent.emergency.review_within_seconds],
	)],
	"stages": [],
	"stages_ordered": false,
	"effective_duration_seconds": duration,
	"approval_window_seconds": 0,
	"post_review": {
		"groups": ent.emergency.review_groups,
		"within_seconds": ent.emergency.review_within_seconds,
	},
} if {
	duration := min([req.duration_seconds, ent.emergency.max_duration_seconds])
}

# routed is the decision for a request no deny rule stopped: a routine extension by the entitlement's
# risk, anything else by entitlement.
routed := auto_approved(sprintf(
	"extension of %s: low risk, no longer than the grant it extends and within %d seconds in all: approved without review",
	[req.extends.request_id, max_total_seconds],
)) if {
	routine_extension
	ent.risk == "low"
} else := approval(
	[stage("owners", ent.owner_groups)], false,
	sprintf("extension of %s: %s is high risk, so its owners approve it again (one stage)", [req.extends.request_id, ent.id]),
) if {
	routine_extension
	ent.risk == "high"
} else := auto_approved(sprintf("analytics-read is low risk and %s is in engineers: approved without review", [req.requester.id])) if {
	req.entitlement == "analytics-read"
	"engineers" in req.requester.groups
	req.duration_seconds <= 8 * hour
} else := approval(
	[stage("owners", ent.owner_groups)], false,
	"analytics-read: one approval from its owners for requesters outside engineers",
) if {
	req.entitlement == "analytics-read"
} else := approval(
	[stage("owners", ent.owner_groups), stage("security", ["security"])], true,
	"payments-admin is high risk: one approval from its owners, then one from security",
) if {
	req.entitlement == "payments-admin"
} else := approval(
	[stage("owners", [req.subject.owner])], false,
	sprintf("reporting-db-credential for %s: one approval from its owning team", [req.subject.id]),
) if {
	req.entitlement == "reporting-db-credential"
} else := approval(
	[stage("security", ["security"])], false,
	"mainframe-operator: one approval from security",
) if {
	req.entitlement == "mainframe-operator"
} else := approval(
	[stage("owners", ent.owner_groups)], false,
	sprintf("%s: one approval from its owners", [ent.id]),
)

stage(name, groups) := {"name": name, "groups": groups, "min_approvals": 1}

auto_approved(reason) := {
	"outcome": "auto_approved",
	"reasons": [reason],
	"stages": [],
	"stages_ordered": false,
	"effective_duration_seconds": req.duration_seconds,
	"approval_window_seconds": 0,
}

approval(stages, ordered, reason) := {
	"outcome": "approval_required",
	"reasons": [reason],
	"stages": stages,
	"stages_ordered": ordered,
	"effective_duration_seconds": req.duration_seconds,
	"approval_window_seconds": approval_window_seconds,
}
