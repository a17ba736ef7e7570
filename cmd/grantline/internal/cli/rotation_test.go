package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/grantline/grantline/pkg/events"
)

// TestKeyRotationCommands: rotate-key writes the revoker's next key and trusts it beside the current
// one; retire-key then closes the current one's window, once; the service signs with the new key file.
func TestKeyRotationCommands(t *testing.T) {
	dir := t.TempDir()
	if code, out := run(t, "deploy", "secrets", "--out", dir); code != 0 {
		t.Fatalf("deploy secrets: exit %d: %s", code, out)
	}
	trust := filepath.Join(dir, "trust.json")
	current, err := events.LoadSigner(filepath.Join(dir, "signing", "revoker.key"))
	if err != nil {
		t.Fatal(err)
	}
	next := filepath.Join(dir, "signing", "revoker.next.key")

	if code, out := run(t, "deploy", "retire-key", "--trust", trust, "--key", current.KeyID(), "--at", "2099-01-01T00:00:00Z"); code == 0 || !strings.Contains(out, "add its successor first") {
		t.Fatalf("retiring the only key: exit %d: %s", code, out)
	}
	code, out := run(t, "deploy", "rotate-key", "--trust", trust, "--service", "revoker", "--key-out", next)
	if code != 0 {
		t.Fatalf("rotate-key: exit %d: %s", code, out)
	}
	signer, err := events.LoadSigner(next)
	if err != nil || signer.Service() != events.Revoker {
		t.Fatalf("the new key: %v, %v", signer, err)
	}
	if info, err := os.Stat(next); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("the new key file's mode: %v, %v", info, err)
	}
	if code, out := run(t, "deploy", "rotate-key", "--trust", trust, "--service", "revoker", "--key-out", next); code == 0 || !strings.Contains(out, "never replaces one") {
		t.Fatalf("a rotation onto an existing key file: exit %d: %s", code, out)
	}
	if code, out := run(t, "deploy", "retire-key", "--trust", trust, "--key", current.KeyID(), "--at", "2099-01-01T00:00:00Z"); code != 0 {
		t.Fatalf("retire-key: exit %d: %s", code, out)
	}
	if code, out := run(t, "deploy", "retire-key", "--trust", trust, "--key", current.KeyID()); code == 0 || !strings.Contains(out, "retired already") {
		t.Fatalf("retiring twice: exit %d: %s", code, out)
	}
	tf, err := readTrustFile(trust)
	if err != nil {
		t.Fatal(err)
	}
	var revokerKeys []events.TrustedKey
	for _, k := range tf.Keys {
		if k.Service == events.Revoker {
			revokerKeys = append(revokerKeys, k)
		}
	}
	if len(revokerKeys) != 2 || revokerKeys[0].ID != current.KeyID() || revokerKeys[0].NotAfter.Year() != 2099 ||
		revokerKeys[1].ID != signer.KeyID() || !revokerKeys[1].NotAfter.IsZero() {
		t.Fatalf("the revoker's keys after the rotation: %+v", revokerKeys)
	}
}
