package cli

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/checkpoint"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/console/session"
)

func deployCommand(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "deploy", Short: "Prepare a deployment: keys, trust file and NATS users"}
	var out, integrations, owner, origin string
	var witnesses []string
	var force bool
	secrets := &cobra.Command{
		Use:   "secrets --out <dir>",
		Short: "Generate every service's signing key, the trust file, a NATS user (NKey) per service, operator, auditor and integration, and the console's session key",
		Long: `Writes, under --out:
  signing/<service>.key   each service's ed25519 signing key (GRANTLINE_SIGNING_KEY_FILE), mode 0600
  signing/checkpointer.key  the checkpointer's signed-note key (GRANTLINE_CHECKPOINT_KEY_FILE), mode 0600
  signing/exporter.key    the key that signs evidence packs (grantline audit export --sign-key), mode 0600
  trust.json              the trust file listing those keys (GRANTLINE_TRUST_FILE); add each witness's
                          verifier key (grantline witness init) to its checkpoints.witnesses
  nats/<user>.nk          an NKey seed per NATS user (GRANTLINE_NATS_NKEY_FILE), mode 0600: intake, policy,
                          approval, fulfilment, revoker, query, notifier, console, checkpointer, auditor,
                          operator, integration-<name>
  nats/auth.conf          the users' public keys and permissions (pkg/brokeraccess), for every nats-server
                          node's configuration to include
  console/session.key     the key that seals the web console's sessions, 64 hex digits
                          (GRANTLINE_CONSOLE_SESSION_KEY_FILE), mode 0600, the same for every replica

It refuses to overwrite existing files unless --force. Replacing signing keys breaks verification of
the events they signed: to rotate a key, use "grantline deploy rotate-key" and "retire-key" instead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			names, err := integrationNames(integrations)
			if err != nil {
				return err
			}
			uid, gid, err := parseOwner(owner)
			if err != nil {
				return err
			}
			return writeSecrets(stdout, out, names, checkpointTrust(origin, witnesses), force, uid, gid)
		},
	}
	f := secrets.Flags()
	f.StringVar(&out, "out", "", "directory to write the secrets to (required)")
	f.BoolVar(&force, "force", false, "replace existing files")
	f.StringVar(&integrations, "integrations", "", "the integrations file (such as examples/integrations.yaml): one NATS user per integration")
	f.StringArrayVar(&witnesses, "witness", nil, "verifier key of an HTTP witness (grantline witness init prints it), listed in the trust file; repeatable")
	f.StringVar(&origin, "origin", "grantline/evidence", "the evidence log's name in its checkpoints (unique to this deployment)")
	f.StringVar(&owner, "owner", "", "UID:GID to own what is written (as root, for containers running as another user, such as 65532:65532)")
	_ = secrets.MarkFlagRequired("out")
	cmd.AddCommand(secrets)
	cmd.AddCommand(keyRotationCommands(stdout)...)
	return cmd
}

// parseOwner reads "UID:GID"; empty means the current user, -1 for both.
func parseOwner(s string) (uid, gid int, err error) {
	if s == "" {
		return -1, -1, nil
	}
	u, g, ok := strings.Cut(s, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	if !ok || err1 != nil || err2 != nil || uid < 0 || gid < 0 {
		return 0, 0, fmt.Errorf("--owner %q is not UID:GID (numbers, such as 65532:65532)", s)
	}
	return uid, gid, nil
}

// secretFile is one file deploy secrets writes.
type secretFile struct {
	path    string
	content []byte
	mode    fs.FileMode
	what    string
}

// checkpointTrust is the trust file's checkpoint section before the checkpointer's key is made.
func checkpointTrust(origin string, witnesses []string) *events.CheckpointTrust {
	return &events.CheckpointTrust{Origin: origin, Witnesses: witnesses}
}

// writeSecrets generates the keys and writes them under dir, refusing to replace anything unless force;
// checkpoints is the trust file's checkpoint section, to which the checkpointer's new key is added; uid
// and gid (not -1) own every directory and file written.
func writeSecrets(out io.Writer, dir string, integrations []string, checkpoints *events.CheckpointTrust, force bool, uid, gid int) error {
	m, err := brokeraccess.NewMatrix(integrations)
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)
	var files []secretFile
	var signers []*events.Signer
	for _, svc := range events.Services {
		s, err := events.GenerateSigner(svc, fmt.Sprintf("%s-%s", svc, now.Format("20060102T150405")))
		if err != nil {
			return err
		}
		signers = append(signers, s)
		files = append(files, secretFile{filepath.Join(dir, "signing", string(svc)+".key"), s.MarshalKeyFile(), 0o600,
			"signing key of " + string(svc)})
	}
	trust := events.NewTrustFile(now, signers...)
	trust.Checkpoints = checkpoints
	for _, k := range []struct{ file, name, what string }{
		{"checkpointer.key", "grantline-checkpointer", "signed-note key of the checkpointer"},
		{"exporter.key", "grantline-exporter", "signed-note key of evidence packs"},
	} {
		skey, vkey, err := checkpoint.GenerateKey(k.name + "-" + now.Format("20060102T150405"))
		if err != nil {
			return err
		}
		files = append(files, secretFile{filepath.Join(dir, "signing", k.file), []byte(skey + "\n"), 0o600, k.what})
		if k.file == "checkpointer.key" {
			trust.Checkpoints.Checkpointers = []string{vkey}
		} else {
			trust.Exporters = []string{vkey}
		}
	}
	if _, err := events.NewVerifier(trust); err != nil {
		return err
	}
	files = append(files, secretFile{filepath.Join(dir, "trust.json"), trust.Marshal(), 0o644,
		"trust file: every signing key, valid from " + now.Format(time.RFC3339)})
	public := map[brokeraccess.User]string{}
	for _, u := range m.Users {
		seed, pub, err := brokeraccess.NewKey()
		if err != nil {
			return err
		}
		public[u] = pub
		files = append(files, secretFile{filepath.Join(dir, "nats", string(u)+".nk"), brokeraccess.SeedFile(seed), 0o600,
			"NATS user " + string(u) + " (" + pub + ")"})
	}
	conf, err := m.AuthConfig(public)
	if err != nil {
		return err
	}
	files = append(files, secretFile{filepath.Join(dir, "nats", "auth.conf"), conf, 0o644, "NATS users and permissions, public keys only"})
	// Replacing it later only signs everyone out of the console: sessions are sealed with it, nothing else.
	sessionKey := make([]byte, session.KeySize)
	if _, err := rand.Read(sessionKey); err != nil {
		return err
	}
	files = append(files, secretFile{filepath.Join(dir, "console", "session.key"), []byte(hex.EncodeToString(sessionKey) + "\n"), 0o600,
		"the web console's session key"})

	if !force {
		var existing []string
		for _, f := range files {
			if _, err := os.Lstat(f.path); err == nil {
				existing = append(existing, f.path)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		if len(existing) > 0 {
			return fmt.Errorf("refusing to overwrite %d existing files (%s); --force replaces them, and events signed with replaced keys no longer verify against the new trust file",
				len(existing), strings.Join(existing, ", "))
		}
	}
	for _, d := range []string{dir, filepath.Join(dir, "signing"), filepath.Join(dir, "nats"), filepath.Join(dir, "console")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if err := chown(d, uid, gid); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "Wrote to %s:\n", dir)
	for _, f := range files {
		// Remove first: WriteFile keeps the mode of a file it replaces.
		if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := os.WriteFile(f.path, f.content, f.mode); err != nil {
			return err
		}
		if err := chown(f.path, uid, gid); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, f.path)
		fmt.Fprintf(out, "  %-28s %04o  %s\n", rel, f.mode, f.what)
	}
	fmt.Fprintf(out, `Next:
  1. Give every nats-server node %s and add  include "auth.conf"  to its configuration.
  2. Give each service its signing key, its NATS key and the trust file:
     GRANTLINE_SIGNING_KEY_FILE=signing/<service>.key GRANTLINE_NATS_NKEY_FILE=nats/<service>.nk GRANTLINE_TRUST_FILE=trust.json
     (the checkpointer: GRANTLINE_CHECKPOINT_KEY_FILE=signing/checkpointer.key with nats/checkpointer.nk;
     the read side: nats/query.nk; each integration: nats/integration-<name>.nk, replies on _INBOX.integration-<name>;
     the console: nats/console.nk, the trust file, and GRANTLINE_CONSOLE_SESSION_KEY_FILE=console/session.key).
  3. Create the streams, and each integration's outcomes consumer, as the operator, then start the services:
     grantline streams provision --nats <url> --nkey %s --replicas 3 --integrations <integrations.yaml>
`, filepath.Join(dir, "nats", "auth.conf"), filepath.Join(dir, "nats", "operator.nk"))
	return nil
}

func chown(path string, uid, gid int) error {
	if uid < 0 {
		return nil
	}
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("--owner: %w", err)
	}
	return nil
}
