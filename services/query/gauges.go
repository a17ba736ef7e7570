package query

import "github.com/grantline/grantline/pkg/events"

// Gauges are the read side's counts an SRE watches: requests by status, requests awaiting approval by
// how long they have waited, access granted and not revoked, and grants past their expiry that are not
// revoked yet (overdue revocations).
type Gauges struct {
	ByStatus map[events.Status]int64
	// PendingByAge counts requests in pending_approval by the age of their submission, one of
	// PendingAges.
	PendingByAge       map[string]int64
	ActiveGrants       int64
	OverdueRevocations int64
}

// The age classes of PendingByAge.
const (
	PendingUnderHour = "under_1h"
	PendingUnderDay  = "1h_to_24h"
	PendingOverDay   = "over_24h"
)

// PendingAges lists the age classes, youngest first.
func PendingAges() []string { return []string{PendingUnderHour, PendingUnderDay, PendingOverDay} }
