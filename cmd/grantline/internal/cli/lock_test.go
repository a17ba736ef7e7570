package cli

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/poll"
)

// TestLockAgainstDev: on `grantline dev`, carol (security) locks alice while she holds a grant on the
// demo PostgreSQL target; the grant is revoked with reason locked, alice's next request is denied
// naming the lock, alice cannot remove her lock, and once carol removes it alice may ask again (her
// revoked grant stays revoked).
func TestLockAgainstDev(t *testing.T) {
	_, _, api := startDev(t)
	ulid := regexp.MustCompile(`01[0-9A-HJKMNP-TV-Z]{24}`)
	cli := func(args ...string) (int, string) { return run(t, append(args, api...)...) }
	status := func(id string) string {
		_, out := cli("request", "show", id, "--as", "erin", "--json")
		return out
	}
	ask := func() string {
		_, out := cli("request", "create", "--as", "alice", "--entitlement", "analytics-read", "--duration", "1h", "--justification", "weekly report")
		id := ulid.FindString(out)
		if id == "" {
			t.Fatalf("alice's request: %s", out)
		}
		return id
	}
	granted := ask()
	poll.Until(t, 30*time.Second, "alice's grant", func() bool { return strings.Contains(status(granted), `"status": "granted"`) })

	if code, out := cli("lock", "create", "--user", "alice", "--reason", "laptop stolen", "--as", "alice"); code == 0 {
		t.Fatalf("alice locked herself: %s", out)
	}
	code, out := cli("lock", "create", "--user", "alice", "--reason", "laptop stolen, INC-78", "--as", "carol")
	lock := ulid.FindString(out)
	if code != 0 || lock == "" {
		t.Fatalf("carol locks alice: exit %d: %s", code, out)
	}
	poll.Until(t, 30*time.Second, "alice's grant revoked by the lock", func() bool {
		s := status(granted)
		return strings.Contains(s, `"status": "revoked"`) && strings.Contains(s, `"reason": "locked"`)
	})

	denied := ask()
	poll.Until(t, 30*time.Second, "alice's new request denied naming the lock", func() bool {
		s := status(denied)
		return strings.Contains(s, `"status": "denied"`) && strings.Contains(s, "locked by "+lock)
	})

	if code, out := cli("lock", "list", "--as", "carol"); code != 0 || !strings.Contains(out, lock) || !strings.Contains(out, "user alice") {
		t.Fatalf("carol lists the locks: exit %d: %s", code, out)
	}
	if code, out := cli("lock", "remove", lock, "--as", "alice"); code == 0 || !strings.Contains(out, "HTTP 403") {
		t.Fatalf("alice removes her own lock: exit %d: %s", code, out)
	}
	if code, out := cli("lock", "remove", lock, "--reason", "laptop found", "--as", "carol"); code != 0 {
		t.Fatalf("carol removes the lock: exit %d: %s", code, out)
	}
	again := ask()
	poll.Until(t, 30*time.Second, "alice's request after the lock", func() bool { return strings.Contains(status(again), `"status": "granted"`) })
	if !strings.Contains(status(granted), `"status": "revoked"`) {
		t.Fatal("removing the lock restored the revoked grant")
	}
}
