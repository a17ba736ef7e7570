package revokerd_test

import (
	"encoding/json/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/targettest"
	"github.com/grantline/grantline/services/revoker/httpapi"
)

// TestLockAPI: security (carol) places, lists and removes a lock on alice through the revoker's API,
// each answer checked against api/openapi.yaml; nobody outside the lock admin groups may, nobody locks
// themselves, and removing twice answers the same.
func TestLockAPI(t *testing.T) {
	e := newEnv(t, revokerOff)
	// The revoker's consumers are off: alice's grant stays, and the listing shows it outstanding.
	e.Granted(t, targettest.Request{Requester: targettest.Alice, Entitlement: "analytics-read", Duration: time.Hour})
	status, body := e.Call(t, "POST", "/v1/locks", "carol", `{"scope":{"kind":"user","id":"alice"},"reason":"laptop stolen"}`)
	if status != http.StatusCreated {
		t.Fatalf("carol locking alice: %d %s", status, body)
	}
	var placed httpapi.LockView
	if err := json.Unmarshal(body, &placed); err != nil {
		t.Fatal(err)
	}
	if placed.Status != "placed" || !placed.Holds || placed.PlacedBy != "carol" || placed.Scope.ID != "alice" {
		t.Fatalf("placed: %+v", placed)
	}

	refusals := []struct {
		name, method, path, user, body string
		status                         int
		problem                        string
	}{
		{"without a token", "POST", "/v1/locks", "", `{"scope":{"kind":"user","id":"bob"},"reason":"r"}`, http.StatusUnauthorized, ""},
		{"an engineer placing a lock", "POST", "/v1/locks", "alice", `{"scope":{"kind":"user","id":"bob"},"reason":"r"}`, http.StatusForbidden, "forbidden"},
		{"security locking themselves", "POST", "/v1/locks", "carol", `{"scope":{"kind":"user","id":"carol"},"reason":"r"}`, http.StatusForbidden, "separation-of-duties"},
		{"a lock on a team", "POST", "/v1/locks", "carol", `{"scope":{"kind":"team","id":"x"},"reason":"r"}`, http.StatusUnprocessableEntity, "invalid-lock"},
		{"a lock without a reason", "POST", "/v1/locks", "carol", `{"scope":{"kind":"entitlement","id":"analytics-read"},"reason":""}`, http.StatusUnprocessableEntity, "invalid-lock"},
		{"the locked person removing the lock", "POST", "/v1/locks/" + placed.ID + "/remove", "alice", `{}`, http.StatusForbidden, "separation-of-duties"},
		{"an operator listing the locks", "GET", "/v1/locks", "dave", ``, http.StatusForbidden, "forbidden"},
		{"a lock's ID on a request's route", "POST", "/v1/requests/" + placed.ID + "/revoke", "carol", `{"reason":"r"}`, http.StatusNotFound, "not-found"},
		{"removing a lock that does not exist", "POST", "/v1/locks/01KB0000000000000000000ACE/remove", "carol", `{}`, http.StatusNotFound, "no-such-lock"},
	}
	for _, r := range refusals {
		status, body := e.Call(t, r.method, r.path, r.user, r.body)
		if status != r.status || !strings.Contains(string(body), r.problem) {
			t.Errorf("%s: %d %s, want %d %s", r.name, status, body, r.status, r.problem)
		}
	}

	status, body = e.Call(t, "GET", "/v1/locks", "carol", ``)
	var list httpapi.LockList
	if err := json.Unmarshal(body, &list); status != http.StatusOK || err != nil {
		t.Fatalf("listing: %d %s %v", status, body, err)
	}
	if len(list.Locks) != 1 || list.Locks[0].ID != placed.ID || list.Locks[0].Outstanding == nil || *list.Locks[0].Outstanding != 1 {
		t.Fatalf("locks listed: %+v", list.Locks)
	}

	for range 2 {
		status, body = e.Call(t, "POST", "/v1/locks/"+placed.ID+"/remove", "carol", `{"reason":"laptop found"}`)
		var removed httpapi.LockView
		if err := json.Unmarshal(body, &removed); status != http.StatusOK || err != nil || removed.Status != "removed" || removed.Holds || removed.RemovedBy != "carol" {
			t.Fatalf("carol removing the lock: %d %s", status, body)
		}
	}
}

// TestLockRevokesWhatItCovers: security locks a person with grants on the PostgreSQL target; every one
// of their grants is revoked with reason locked and the lock's ID, observed absent, and gone from the
// target, while someone else's grant stays. A lock on an entitlement then takes it from every holder.
func TestLockRevokesWhatItCovers(t *testing.T) {
	e := newEnv(t)
	mallory, bystander, holder := someone("engineers"), someone("engineers"), someone("engineers")
	var hers []string
	for _, ent := range []string{"analytics-read", "payments-admin"} {
		hers = append(hers, e.Granted(t, targettest.Request{Requester: mallory, Entitlement: ent, Duration: time.Hour}))
	}
	theirs := e.Granted(t, targettest.Request{Requester: bystander, Entitlement: "payments-admin", Duration: time.Hour})

	lock := placeLock(t, e, `{"scope":{"kind":"user","id":"`+mallory.ID+`"},"reason":"laptop stolen"}`)
	for _, id := range hers {
		r := e.WaitFor(t, id, 20*time.Second, "the locked person's grant revoked", revoked)
		if r.Revoked().Reason != events.RevokeLocked || r.Revoked().Observed.Present {
			t.Fatalf("revoked %+v", r.Revoked())
		}
		if ask := requestedRevocation(t, e, id); ask.LockID != lock.ID || ask.By != "carol" {
			t.Fatalf("revocation asked %+v, want by carol for lock %s", ask, lock.ID)
		}
	}
	for _, role := range []string{"analytics_read", "payments_admin"} {
		if e.Holds(t, mallory.ID, role) {
			t.Fatalf("the target still shows %s for the locked person", role)
		}
	}
	status, body := e.Call(t, "GET", "/v1/locks", "carol", ``)
	var list httpapi.LockList
	if err := json.Unmarshal(body, &list); status != http.StatusOK || err != nil || len(list.Locks) == 0 ||
		list.Locks[0].Outstanding == nil || *list.Locks[0].Outstanding != 0 {
		t.Fatalf("the lock's progress once its grants are revoked: %d %s", status, body)
	}

	other := e.Granted(t, targettest.Request{Requester: holder, Entitlement: "payments-admin", Duration: time.Hour})
	placeLock(t, e, `{"scope":{"kind":"entitlement","id":"payments-admin"},"reason":"target compromised"}`)
	for _, id := range []string{theirs, other} {
		if r := e.WaitFor(t, id, 20*time.Second, "a holder of the locked entitlement revoked", revoked); r.Revoked().Reason != events.RevokeLocked {
			t.Fatalf("revoked %+v", r.Revoked())
		}
	}
	if e.Holds(t, bystander.ID, "payments_admin") || e.Holds(t, holder.ID, "payments_admin") {
		t.Fatal("the target still shows the locked entitlement")
	}
}

func placeLock(t testing.TB, e *env, body string) httpapi.LockView {
	t.Helper()
	status, answer := e.Call(t, "POST", "/v1/locks", "carol", body)
	var v httpapi.LockView
	if err := json.Unmarshal(answer, &v); status != http.StatusCreated || err != nil {
		t.Fatalf("placing a lock: %d %s", status, answer)
	}
	return v
}

func requestedRevocation(t *testing.T, e *env, id string) events.RevocationRequested {
	t.Helper()
	for _, ev := range e.Load(t, id).Events {
		if p, ok := ev.Payload.(events.RevocationRequested); ok {
			return p
		}
	}
	t.Fatalf("request %s has no revocation_requested", id)
	return events.RevocationRequested{}
}

// TestLockCreateRetried: carol's POST /v1/locks sent twice with one Idempotency-Key (a retry after a
// lost answer) places one lock and answers both with it; the same key for a different lock is refused.
func TestLockCreateRetried(t *testing.T) {
	e := newEnv(t, revokerOff)
	key := http.Header{"Idempotency-Key": {"lock-" + events.NewID()}}
	order := `{"scope":{"kind":"user","id":"` + someone("engineers").ID + `"},"reason":"laptop stolen"}`
	var ids []string
	for range 2 {
		status, body := e.CallWith(t, key, "POST", "/v1/locks", "carol", order)
		var v httpapi.LockView
		if err := json.Unmarshal(body, &v); status != http.StatusCreated || err != nil {
			t.Fatalf("carol placing the lock: %d %s %v", status, body, err)
		}
		ids = append(ids, v.ID)
	}
	if ids[0] != ids[1] {
		t.Fatalf("a retry placed a second lock: %v", ids)
	}
	status, body := e.Call(t, "GET", "/v1/locks", "carol", ``)
	var list httpapi.LockList
	if err := json.Unmarshal(body, &list); status != http.StatusOK || err != nil {
		t.Fatalf("listing: %d %s %v", status, body, err)
	}
	if placed := slices.IndexFunc(list.Locks, func(l httpapi.LockView) bool { return l.ID == ids[0] }); placed < 0 || len(list.Locks) != 1 {
		t.Fatalf("locks listed: %+v, want the one %s", list.Locks, ids[0])
	}
	other := `{"scope":{"kind":"user","id":"` + someone("engineers").ID + `"},"reason":"laptop stolen"}`
	if status, body := e.CallWith(t, key, "POST", "/v1/locks", "carol", other); status != http.StatusConflict || !strings.Contains(string(body), "idempotency-key-reused") {
		t.Fatalf("the same key for another lock: %d %s", status, body)
	}
}
