package brokeraccess

import (
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// NewKey generates a user NKey: its seed, the secret its user keeps in a seed file (mode 0600), and its
// public key, which is all the server is told.
func NewKey() (seed []byte, public string, err error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, "", fmt.Errorf("generate nkey: %w", err)
	}
	if seed, err = kp.Seed(); err != nil {
		return nil, "", err
	}
	public, err = kp.PublicKey()
	return seed, public, err
}

// SeedFile is the content of a seed file for seed: the seed on a line of its own, which
// nats.NkeyOptionFromSeed and the nats CLI's --nkey read.
func SeedFile(seed []byte) []byte { return append(append([]byte{}, seed...), '\n') }

// PublicKeyOf reads the user seed file at path and returns its public key.
func PublicKeyOf(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("nkey: %w", err)
	}
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return "", fmt.Errorf("nkey %s: %w", path, err)
	}
	defer kp.Wipe()
	public, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(public) {
		return "", fmt.Errorf("nkey %s is not a user seed", path)
	}
	return public, nil
}

// EnvNKeyFile is the environment variable naming a process's NKey seed file.
const EnvNKeyFile = "GRANTLINE_NATS_NKEY_FILE"

// ClientOptions are the connection options of user u authenticating with the NKey seed in seedFile: the
// server's challenge is signed with it (the seed is read from the file at each connect, never kept), and
// replies arrive on u's own inbox subjects, the only ones its permissions let it subscribe to. An empty
// seedFile means no options: a connection without credentials, to a server that enforces none.
func ClientOptions(u User, seedFile string) ([]nats.Option, error) {
	if seedFile == "" {
		return nil, nil
	}
	auth, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		return nil, fmt.Errorf("nkey of %s: %w", u, err)
	}
	return []nats.Option{auth, nats.CustomInboxPrefix(InboxPrefix(u))}, nil
}
