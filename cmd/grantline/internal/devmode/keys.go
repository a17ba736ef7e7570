package devmode

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/checkpoint"
	"github.com/grantline/grantline/pkg/events"
)

// DevOrigin names the dev evidence log in its checkpoints.
const DevOrigin = "grantline.dev/evidence"

// Keys are the development signing keys, one per service, the checkpointer's and the exporter's
// signed-note keys, and the trust file that lists them.
type Keys struct {
	Dir       string
	TrustFile string
	Signers   map[events.Service]*events.Signer
	Verifier  *events.Verifier
	// CheckpointerKey and ExporterKey are the paths of the note signer key files.
	CheckpointerKey, ExporterKey string
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
	k.CheckpointerKey, k.ExporterKey = filepath.Join(dir, "checkpointer.key"), filepath.Join(dir, "exporter.key")
	checkpointer, err := ensureNoteKey(k.CheckpointerKey, "grantline-dev-checkpointer")
	if err != nil {
		return nil, err
	}
	exporter, err := ensureNoteKey(k.ExporterKey, "grantline-dev-exporter")
	if err != nil {
		return nil, err
	}
	tf.Checkpoints = &events.CheckpointTrust{Origin: DevOrigin, Checkpointers: []string{checkpointer}}
	tf.Exporters = []string{exporter}
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

// ensureNoteKey loads the note signer key at path, creating it for name if there is none, and returns
// its verifier key.
func ensureNoteKey(path, name string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		var skey string
		if skey, _, err = checkpoint.GenerateKey(name); err == nil {
			b = []byte(skey + "\n")
			err = os.WriteFile(path, b, 0o600)
		}
	}
	if err != nil {
		return "", fmt.Errorf("dev key %s: %w", path, err)
	}
	return checkpoint.VerifierKey(string(b))
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

// NATSKeys are the dev NATS users' NKeys: a seed file per user of the permission matrix, and the public
// keys the embedded server admits.
type NATSKeys struct {
	Dir    string
	Matrix brokeraccess.Matrix
	// Seeds holds each user's seed file, Public its public key.
	Seeds, Public map[brokeraccess.User]string
}

// EnsureNATSKeys loads the dev NATS keys from dir, generating one for any user of the matrix (the
// services, the read side, the auditor, the operator and these integrations) that has none, and writes
// the matrix beside them as auth.conf, the fragment a real nats-server would include. The seed files
// are secrets (mode 0600), laid out as `grantline deploy secrets` lays them out.
func EnsureNATSKeys(dir string, integrations []string) (*NATSKeys, error) {
	m, err := brokeraccess.NewMatrix(integrations)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("nats key directory: %w", err)
	}
	k := &NATSKeys{Dir: dir, Matrix: m, Seeds: map[brokeraccess.User]string{}, Public: map[brokeraccess.User]string{}}
	for _, u := range m.Users {
		path := filepath.Join(dir, string(u)+".nk")
		public, err := brokeraccess.PublicKeyOf(path)
		if errors.Is(err, fs.ErrNotExist) {
			var seed []byte
			if seed, public, err = brokeraccess.NewKey(); err == nil {
				err = os.WriteFile(path, brokeraccess.SeedFile(seed), 0o600)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("dev nats key for %s: %w", u, err)
		}
		k.Seeds[u], k.Public[u] = path, public
	}
	conf, err := m.AuthConfig(k.Public)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "auth.conf"), conf, 0o644); err != nil {
		return nil, fmt.Errorf("write auth.conf: %w", err)
	}
	return k, nil
}
