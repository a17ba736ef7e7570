package cluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/events"
)

// imageUser is the uid and gid every Grantline image runs as (scripts/build-images.sh).
const imageUser = 65532

// secrets are what the operator hands out, made as a deployment makes them: `grantline deploy secrets`
// writes one signing key per service, the checkpointer's and the exporter's keys, the trust file, an
// NKey seed per NATS user (each service, the console, the checkpointer, the operator, the auditor, each
// integration), the console's session key and the NATS authorization block with every user's
// permissions. The harness adds the key that encrypts issued credentials until they are retrieved.
type secrets struct {
	dir      string
	verifier *events.Verifier
	// credentialKey is GRANTLINE_CREDENTIAL_KEY: 32 random bytes in standard base64.
	credentialKey string
}

func (s *secrets) trustFile() string { return filepath.Join(s.dir, "trust.json") }

func (s *secrets) signingKey(svc events.Service) string {
	return filepath.Join(s.dir, "signing", string(svc)+".key")
}

func (s *secrets) natsKey(u brokeraccess.User) string {
	return filepath.Join(s.dir, "nats", string(u)+".nk")
}

func (s *secrets) authConf() string { return filepath.Join(s.dir, "nats", "auth.conf") }

// makeSecrets runs `grantline deploy secrets` from the command-line image into dir, with a NATS user
// for each integration of examples/integrations.yaml. It runs as the images' user, so every file it
// writes (mode 0600) is readable by the containers it is mounted into, and by the test process as root.
func (c *Cluster) makeSecrets(ctx context.Context, dir string) (*secrets, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chown(dir, imageUser, imageUser); err != nil {
		return nil, fmt.Errorf("hand the secrets directory to the image user: %w", err)
	}
	code, out, err := c.runOnce(ctx, spec{
		name: "deploy-secrets", image: c.image("grantline"),
		cmd:   []string{"deploy", "secrets", "--out", "/secrets", "--integrations", "/examples/integrations.yaml"},
		binds: []string{dir + ":/secrets", c.examples + ":/examples:ro"},
	})
	if err == nil && code != 0 {
		err = fmt.Errorf("exit code %d", code)
	}
	if err != nil {
		return nil, fmt.Errorf("grantline deploy secrets: %w:\n%s", err, out)
	}
	s := &secrets{dir: dir}
	if s.verifier, err = events.LoadTrustFile(s.trustFile()); err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	s.credentialKey = base64.StdEncoding.EncodeToString(key)
	return s, nil
}
