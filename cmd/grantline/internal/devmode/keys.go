package devmode

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// Keys are the development signing keys, one per service, and the trust file that lists them.
type Keys struct {
	Dir       string
	TrustFile string
	Signers   map[events.Service]*events.Signer
	Verifier  *events.Verifier
}

// EnsureKeys loads the dev keys from dir, generating a key for any service that has none, and writes
// the trust file beside them. Each key is trusted from the time its file was written, so a history is
// verifiable against the same trust file across restarts. The key files are secrets (mode 0600); in
// production each service loads its own key and the trust file comes from the operator.
func EnsureKeys(dir string) (*Keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("key directory: %w", err)
	}
	k := &Keys{Dir: dir, TrustFile: filepath.Join(dir, "trust.json"), Signers: map[events.Service]*events.Signer{}}
	tf := events.TrustFile{Services: map[events.Service][]events.Type{}}
	for _, svc := range events.Services {
		path := filepath.Join(dir, string(svc)+".key")
		signer, err := events.LoadSigner(path)
		if errors.Is(err, fs.ErrNotExist) {
			signer, err = createKey(path, svc)
		}
		if err != nil {
			return nil, fmt.Errorf("dev key for %s: %w", svc, err)
		}
		info, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		// One second of slack: file times are coarser than event times on some filesystems.
		created := info.ModTime().UTC().Truncate(time.Second).Add(-time.Second)
		entry := events.NewTrustFile(created, signer)
		tf.Services[svc] = entry.Services[svc]
		tf.Keys = append(tf.Keys, entry.Keys...)
		k.Signers[svc] = signer
	}
	verifier, err := events.NewVerifier(tf)
	if err != nil {
		return nil, err
	}
	k.Verifier = verifier
	if err := os.WriteFile(k.TrustFile, tf.Marshal(), 0o644); err != nil {
		return nil, fmt.Errorf("write trust file: %w", err)
	}
	return k, nil
}

func createKey(path string, svc events.Service) (*events.Signer, error) {
	signer, err := events.GenerateSigner(svc, fmt.Sprintf("%s-dev-%s", svc, time.Now().UTC().Format("20060102T150405")))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, signer.MarshalKeyFile(), 0o600); err != nil {
		return nil, fmt.Errorf("write key: %w", err)
	}
	return signer, nil
}
