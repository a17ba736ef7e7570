package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/grantline/grantline/pkg/events"
)

// keyRotationCommands are deploy's two steps of a signing key's rotation (events.TrustFile.AddKey and
// RetireKey), each editing the trust file in place.
func keyRotationCommands(stdout io.Writer) []*cobra.Command {
	var trustFile, service, keyOut, keyID, at string
	rotate := &cobra.Command{
		Use:   "rotate-key --service <service> --trust <trust.json> --key-out <file>",
		Short: "Generate a service's next signing key and trust it from now on, beside its current key",
		Long: `Writes the new key to --key-out (mode 0600; it must not exist) and adds its public key to the trust
file, valid from now. Give every service and verifier the new trust file before any replica signs with
the new key; then roll the service onto it (GRANTLINE_SIGNING_KEY_FILE); then retire the old key with
"grantline deploy retire-key". Until then both keys are valid, so replicas may restart one at a time.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			svc, err := events.ParseService(service)
			if err != nil {
				return err
			}
			// Refused before anything is generated: a rotation never replaces a key file, and this
			// answer must not depend on whether the new key's ID happens to collide with one trusted.
			if _, err := os.Stat(keyOut); err == nil {
				return errKeyFileExists(keyOut)
			}
			tf, err := readTrustFile(trustFile)
			if err != nil {
				return err
			}
			// Milliseconds in the ID keep it apart from the key deploy secrets made, even in the same second.
			now := time.Now().UTC().Truncate(time.Millisecond)
			signer, err := events.GenerateSigner(svc, fmt.Sprintf("%s-%s", svc, now.Format("20060102T150405.000")))
			if err != nil {
				return err
			}
			if err := tf.AddKey(signer, now); err != nil {
				return err
			}
			f, err := os.OpenFile(keyOut, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if errors.Is(err, fs.ErrExist) {
				return errKeyFileExists(keyOut)
			}
			if err != nil {
				return err
			}
			if _, err := f.Write(signer.MarshalKeyFile()); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			if err := writeTrustFile(trustFile, tf); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "Key %s of %s written to %s and trusted from %s in %s.\n", signer.KeyID(), svc, keyOut,
				now.Format(time.RFC3339), trustFile)
			return nil
		},
	}
	rotate.Flags().StringVar(&service, "service", "", "the service whose key rotates: intake, policy, approval, fulfilment or revoker (required)")
	rotate.Flags().StringVar(&keyOut, "key-out", "", "file to write the new signing key to (required)")
	_ = rotate.MarkFlagRequired("service")
	_ = rotate.MarkFlagRequired("key-out")

	retire := &cobra.Command{
		Use:   "retire-key --trust <trust.json> --key <key id> [--at <time>]",
		Short: "Close a signing key's window once no replica signs with it any more",
		Long: `Sets the key's not_after to --at (default: now). Events the broker stores from then on with that key
fail verification; those stored before still verify. It refuses a key that is retired already and one
whose service has no other key valid from --at on (rotate-key first). Distribute the new trust file.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			tf, err := readTrustFile(trustFile)
			if err != nil {
				return err
			}
			when := time.Now().UTC().Truncate(time.Second)
			if at != "" {
				if when, err = time.Parse(time.RFC3339, at); err != nil {
					return fmt.Errorf("--at: %w", err)
				}
			}
			if err := tf.RetireKey(keyID, when); err != nil {
				return err
			}
			if err := writeTrustFile(trustFile, tf); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "Key %s retired at %s in %s.\n", keyID, when.UTC().Format(time.RFC3339), trustFile)
			return nil
		},
	}
	retire.Flags().StringVar(&keyID, "key", "", "the key's id, as the trust file lists it (required)")
	retire.Flags().StringVar(&at, "at", "", "when its window closes, RFC 3339 (default: now)")
	_ = retire.MarkFlagRequired("key")

	for _, c := range []*cobra.Command{rotate, retire} {
		c.Flags().StringVar(&trustFile, "trust", envOr("GRANTLINE_TRUST_FILE", filepath.Join(".grantline", "keys", "trust.json")),
			"the trust file to edit (GRANTLINE_TRUST_FILE)")
	}
	return []*cobra.Command{rotate, retire}
}

// readTrustFile strictly decodes the trust file at path.
func readTrustFile(path string) (events.TrustFile, error) {
	var tf events.TrustFile
	b, err := os.ReadFile(path)
	if err != nil {
		return tf, fmt.Errorf("read trust file: %w", err)
	}
	if err := events.UnmarshalStrict(b, &tf); err != nil {
		return tf, fmt.Errorf("trust file %s: %w", path, err)
	}
	return tf, nil
}

// writeTrustFile replaces the trust file at path with tf, after checking a verifier accepts it; the
// rename makes the replacement whole or nothing for a service reading it meanwhile.
func writeTrustFile(path string, tf events.TrustFile) error {
	if _, err := events.NewVerifier(tf); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".trust-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(tf.Marshal()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func errKeyFileExists(path string) error {
	return fmt.Errorf("%s exists; a rotation writes a new key file and never replaces one", path)
}
