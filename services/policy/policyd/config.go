package policyd

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/events"
)

// Config is the policy service's configuration, read from the environment by ConfigFromEnv. Its String
// and LogValue name the signing key but never show it.
type Config struct {
	// NATSURL is the NATS server list (GRANTLINE_NATS_URL, default nats://127.0.0.1:4222).
	NATSURL string
	// NATSMonitorURLs are the servers' HTTP monitoring endpoints, read to prove each fsyncs every write
	// (GRANTLINE_NATS_MONITOR_URLS, comma-separated, default http://127.0.0.1:8222).
	NATSMonitorURLs []string
	// NATSNKeyFile is the NKey seed of the policy service's NATS user (GRANTLINE_NATS_NKEY_FILE;
	// optional: without it the connection carries no credentials, which only a broker that enforces no
	// permissions accepts).
	NATSNKeyFile string
	// CataloguePath is the entitlement catalogue YAML (GRANTLINE_CATALOGUE, required).
	CataloguePath string
	// PolicyDir is the Rego bundle directory (GRANTLINE_POLICY_DIR, required).
	PolicyDir string
	// TrustFile is the trust file every loaded event is verified against (GRANTLINE_TRUST_FILE, required).
	TrustFile string
	// Signer is the policy service's signing key (GRANTLINE_SIGNING_KEY, the key file's JSON, or
	// GRANTLINE_SIGNING_KEY_FILE, its path; required, and it must be a policy key).
	Signer *events.Signer
	// HTTPAddr serves /livez, /readyz and /metrics (GRANTLINE_HTTP_ADDR, default :8082).
	HTTPAddr string
	// EvalTimeout bounds one policy evaluation (GRANTLINE_POLICY_EVAL_TIMEOUT, default 2s).
	EvalTimeout time.Duration
	// MaxDeliveries is how many times a submitted event is tried before policy records a deny
	// (GRANTLINE_POLICY_MAX_DELIVERIES, default 5).
	MaxDeliveries int
	// StateReplicas is the replica count of the state bucket (GRANTLINE_POLICY_STATE_REPLICAS, default 1;
	// 3 in production).
	StateReplicas int
	// NATSTimeout bounds each NATS round trip of the event store (GRANTLINE_NATS_TIMEOUT, default 5s).
	NATSTimeout time.Duration
	// ShutdownTimeout bounds the orderly stop after a signal (GRANTLINE_SHUTDOWN_TIMEOUT, default 15s).
	ShutdownTimeout time.Duration
}

// ConfigFromEnv reads Config from the GRANTLINE_* variables through getenv (os.Getenv in production),
// with the defaults above for unset ones. It reports every missing or malformed variable at once.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		NATSURL: "nats://127.0.0.1:4222", NATSMonitorURLs: []string{"http://127.0.0.1:8222"}, HTTPAddr: ":8082",
		EvalTimeout: 2 * time.Second, MaxDeliveries: 5, StateReplicas: 1, NATSTimeout: 5 * time.Second,
		ShutdownTimeout: 15 * time.Second,
	}
	var errs []error
	str := func(name string, dst *string, required bool) {
		switch v := strings.TrimSpace(getenv(name)); {
		case v != "":
			*dst = v
		case required:
			errs = append(errs, fmt.Errorf("%s is required", name))
		}
	}
	dur := func(name string, dst *time.Duration) {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("%s=%q is not a positive duration such as 2s", name, v))
				return
			}
			*dst = d
		}
	}
	num := func(name string, dst *int) {
		if v := getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				errs = append(errs, fmt.Errorf("%s=%q is not a positive number", name, v))
				return
			}
			*dst = n
		}
	}
	str("GRANTLINE_NATS_URL", &c.NATSURL, false)
	if v := getenv("GRANTLINE_NATS_MONITOR_URLS"); v != "" {
		c.NATSMonitorURLs = nil
		for u := range strings.SplitSeq(v, ",") {
			if u = strings.TrimSpace(u); u != "" {
				c.NATSMonitorURLs = append(c.NATSMonitorURLs, u)
			}
		}
	}
	str("GRANTLINE_NATS_NKEY_FILE", &c.NATSNKeyFile, false)
	if c.NATSNKeyFile != "" {
		if _, err := brokeraccess.PublicKeyOf(c.NATSNKeyFile); err != nil {
			errs = append(errs, fmt.Errorf("GRANTLINE_NATS_NKEY_FILE: %w", err))
		}
	}
	str("GRANTLINE_CATALOGUE", &c.CataloguePath, true)
	str("GRANTLINE_POLICY_DIR", &c.PolicyDir, true)
	str("GRANTLINE_TRUST_FILE", &c.TrustFile, true)
	str("GRANTLINE_HTTP_ADDR", &c.HTTPAddr, false)
	dur("GRANTLINE_POLICY_EVAL_TIMEOUT", &c.EvalTimeout)
	dur("GRANTLINE_NATS_TIMEOUT", &c.NATSTimeout)
	dur("GRANTLINE_SHUTDOWN_TIMEOUT", &c.ShutdownTimeout)
	num("GRANTLINE_POLICY_MAX_DELIVERIES", &c.MaxDeliveries)
	num("GRANTLINE_POLICY_STATE_REPLICAS", &c.StateReplicas)
	signer, err := events.SignerFromEnv(getenv, events.Policy)
	if err != nil {
		errs = append(errs, err)
	}
	c.Signer = signer
	if len(c.NATSMonitorURLs) == 0 {
		errs = append(errs, errors.New("GRANTLINE_NATS_MONITOR_URLS names no URL"))
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("policy configuration: %w", err)
	}
	return c, nil
}

// String shows the configuration with the signing key reduced to its ID.
func (c Config) String() string {
	return fmt.Sprintf("nats=%s monitor=%s nkey=%s catalogue=%s policy=%s trust=%s key=%s http=%s eval_timeout=%s max_deliveries=%d state_replicas=%d",
		redactURLs(c.NATSURL), redactURLs(strings.Join(c.NATSMonitorURLs, ",")), c.NATSNKeyFile, c.CataloguePath, c.PolicyDir, c.TrustFile, c.keyID(),
		c.HTTPAddr, c.EvalTimeout, c.MaxDeliveries, c.StateReplicas)
}

// LogValue logs the configuration with the signing key reduced to its ID.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("nats_url", redactURLs(c.NATSURL)), slog.String("nats_monitor_urls", redactURLs(strings.Join(c.NATSMonitorURLs, ","))),
		slog.String("nats_nkey_file", c.NATSNKeyFile),
		slog.String("catalogue", c.CataloguePath), slog.String("policy_dir", c.PolicyDir),
		slog.String("trust_file", c.TrustFile), slog.String("signing_key_id", c.keyID()),
		slog.String("http_addr", c.HTTPAddr), slog.Duration("eval_timeout", c.EvalTimeout),
		slog.Int("max_deliveries", c.MaxDeliveries), slog.Int("state_replicas", c.StateReplicas),
	)
}

func (c Config) keyID() string {
	if c.Signer == nil {
		return "(none)"
	}
	return c.Signer.KeyID()
}

// redactURLs hides the user information (a user and password, or a token) of each URL in a
// comma-separated list.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		switch {
		case err != nil:
			parts[i] = "(unparsable URL)"
		case u.User != nil:
			u.User = url.User("REDACTED")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}
