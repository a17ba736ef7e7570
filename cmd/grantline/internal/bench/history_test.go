package bench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/grantline/grantline/cmd/grantline/internal/synthetic"
)

// TestHistoryGoesIntoAFreshStoreOnly: bench history lays its store out as grantline dev does (the keys
// and trust file in keys/, JetStream in nats/), says what it wrote, and refuses to add a second
// history to a store that holds one, which would verify as two interleaved histories with gaps.
func TestHistoryGoesIntoAFreshStoreOnly(t *testing.T) {
	store := t.TempDir()
	var out, errs bytes.Buffer
	if err := writeHistory(context.Background(), &out, &errs, store, "", synthetic.Config{Requests: 50, Seed: 3}); err != nil {
		t.Fatalf("first history: %v\n%s", err, errs.String())
	}
	if !strings.Contains(out.String(), "of 50 requests") {
		t.Fatalf("output does not say what it wrote:\n%s", out.String())
	}
	for _, p := range []string{"keys/trust.json", "keys/policy.key", "nats/jetstream"} {
		if _, err := os.Stat(filepath.Join(store, p)); err != nil {
			t.Errorf("no %s in the store: %v", p, err)
		}
	}
	err := writeHistory(context.Background(), &out, &errs, store, "", synthetic.Config{Requests: 50, Seed: 3})
	if err == nil || !strings.Contains(err.Error(), "fresh store") {
		t.Fatalf("a second history into the same store: %v, want a refusal", err)
	}
}
