package config_test

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/config"
	"github.com/grantline/grantline/pkg/events"
)

// service is a configuration as a service declares one: the shared parts and variables of its own.
type service struct {
	config.Base
	config.Signing
	config.OIDC
	DatabaseURL string        `env:"GRANTLINE_DATABASE_URL,notEmpty" help:"the database"`
	Key         string        `env:"GRANTLINE_TEST_KEY" secret:"true" help:"a secret"`
	Retries     int           `env:"GRANTLINE_TEST_RETRIES" envDefault:"3" validate:"positive" help:"attempts"`
	Every       time.Duration `env:"GRANTLINE_TEST_EVERY" envDefault:"1m" validate:"positive"`
	Groups      config.List   `env:"GRANTLINE_TEST_GROUPS" envDefault:"auditors,security"`
	// checked is what Check returns, so a test can see Check's place among the errors.
	checked error
}

func (s service) Check() error { return s.checked }

// defaults is the configuration before Parse: a service sets its own HTTP port.
func defaults() service { return service{Base: config.Base{HTTPAddr: ":8089"}} }

// environ writes vars in os.Environ's form.
func environ(vars map[string]string) []string {
	var out []string
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	return out
}

// fixture holds key files on disk and the variables a service cannot start without.
type fixture struct {
	signer             *events.Signer
	keyFile, nkey, bad string
	required           map[string]string
	approvalKey        string
	missingFile        string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	dir := t.TempDir()
	signer, err := events.GenerateSigner(events.Policy, "policy-7")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := events.GenerateSigner(events.Approval, "approval-1")
	seed, _, err := brokeraccess.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{signer: signer, keyFile: filepath.Join(dir, "policy.key"), nkey: filepath.Join(dir, "policy.nk"),
		bad: filepath.Join(dir, "not-a-seed.nk"), approvalKey: string(other.MarshalKeyFile()), missingFile: filepath.Join(dir, "missing")}
	for path, body := range map[string][]byte{f.keyFile: signer.MarshalKeyFile(), f.nkey: brokeraccess.SeedFile(seed), f.bad: []byte("{}")} {
		if err := os.WriteFile(path, body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f.required = map[string]string{
		"GRANTLINE_TRUST_FILE": "trust.json", "GRANTLINE_SIGNING_KEY_FILE": f.keyFile,
		"GRANTLINE_OIDC_ISSUER": "https://id.example", "GRANTLINE_OIDC_AUDIENCE": "grantline",
		"GRANTLINE_DATABASE_URL": "postgres://svc:s3cret@db/grantline",
	}
	return f
}

// with is the required variables plus extra (an empty value unsets one).
func (f fixture) with(extra map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range f.required {
		out[k] = v
	}
	for k, v := range extra {
		if v == "" {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}

func TestParseTakesDefaultsAndEveryVariable(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		env  map[string]string
		want func(*service)
	}{
		{name: "the required variables alone: every other takes its default", env: f.required, want: func(*service) {}},
		{name: "every shared variable can be set", env: f.with(map[string]string{
			"GRANTLINE_NATS_URL": "nats://a:4222,nats://b:4222", "GRANTLINE_NATS_MONITOR_URLS": " http://a:8222 , http://b:8222,",
			"GRANTLINE_NATS_NKEY_FILE": f.nkey, "GRANTLINE_NATS_TIMEOUT": "2s", "GRANTLINE_HTTP_ADDR": "127.0.0.1:9000",
			"GRANTLINE_PPROF_ADDR": "127.0.0.1:6061", "GRANTLINE_OTLP_ENDPOINT": "http://collector:4318", "GRANTLINE_LOG_LEVEL": "debug",
			"GRANTLINE_START_TIMEOUT": "10s", "GRANTLINE_ACK_WAIT": "2s",
			"GRANTLINE_SHUTDOWN_TIMEOUT": "3s", "GRANTLINE_OIDC_JWKS_URL": "https://id.example/keys", "GRANTLINE_OIDC_GROUPS_CLAIM": "roles",
			"GRANTLINE_OIDC_KEY_REFETCH_INTERVAL": "1m", "GRANTLINE_TEST_GROUPS": "auditors , compliance,",
		}), want: func(s *service) {
			s.NATS = config.NATS{URL: "nats://a:4222,nats://b:4222", MonitorURLs: config.List{"http://a:8222", "http://b:8222"},
				NKeyFile: f.nkey, Timeout: 2 * time.Second}
			s.HTTPAddr, s.PprofAddr, s.OTLPEndpoint, s.LogLevel = "127.0.0.1:9000", "127.0.0.1:6061", "http://collector:4318", slog.LevelDebug
			s.StartTimeout, s.ShutdownTimeout, s.AckWait = 10*time.Second, 3*time.Second, 2*time.Second
			s.JWKSURL, s.GroupsClaim, s.KeyRefetchInterval = "https://id.example/keys", "roles", time.Minute
			s.Groups = config.List{"auditors", "compliance"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := service{
				Base: config.Base{NATS: config.NATS{URL: "nats://127.0.0.1:4222", MonitorURLs: config.List{"http://127.0.0.1:8222"},
					Timeout: 5 * time.Second}, TrustFile: "trust.json", HTTPAddr: ":8089", LogLevel: slog.LevelInfo,
					StartTimeout: time.Minute, ShutdownTimeout: 15 * time.Second, AckWait: 5 * time.Second},
				Signing:     config.Signing{KeyFile: f.keyFile},
				OIDC:        config.OIDC{Issuer: "https://id.example", Audience: "grantline", GroupsClaim: "groups", KeyRefetchInterval: 10 * time.Second},
				DatabaseURL: "postgres://svc:s3cret@db/grantline", Retries: 3, Every: time.Minute, Groups: config.List{"auditors", "security"},
			}
			tt.want(&want)
			got := defaults()
			if err := config.Parse(&got, environ(tt.env)); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(service{})); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseNamesEveryProblem: every problem at once, each naming its variable, always in the same
// order, and never a secret's value.
func TestParseNamesEveryProblem(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name  string
		env   map[string]string
		check error
		want  []string // the error's lines, in order
	}{
		{name: "nothing set", env: map[string]string{}, want: []string{
			"GRANTLINE_TRUST_FILE is required", "GRANTLINE_OIDC_ISSUER is required", "GRANTLINE_OIDC_AUDIENCE is required",
			"GRANTLINE_DATABASE_URL is required", "GRANTLINE_SIGNING_KEY or GRANTLINE_SIGNING_KEY_FILE is required",
		}},
		{name: "set but empty is missing", env: f.with(map[string]string{"GRANTLINE_TRUST_FILE": ""}), want: []string{
			"GRANTLINE_TRUST_FILE is required",
		}},
		{name: "malformed and out-of-range values", env: f.with(map[string]string{
			"GRANTLINE_NATS_TIMEOUT": "soon", "GRANTLINE_SHUTDOWN_TIMEOUT": "-1s", "GRANTLINE_LOG_LEVEL": "loud",
			"GRANTLINE_TEST_RETRIES": "0", "GRANTLINE_TEST_GROUPS": " , ",
		}), want: []string{
			`GRANTLINE_NATS_TIMEOUT="soon" is malformed: unable to parse duration: time: invalid duration "soon"`,
			`GRANTLINE_LOG_LEVEL="loud" is malformed: slog: level string "loud": unknown name`,
			`GRANTLINE_TEST_GROUPS=" , " is malformed: names nothing`,
			"GRANTLINE_SHUTDOWN_TIMEOUT must be above zero, not -1s",
			"GRANTLINE_TEST_RETRIES must be above zero, not 0",
		}},
		{name: "a file that holds no NATS user seed", env: f.with(map[string]string{"GRANTLINE_NATS_NKEY_FILE": f.bad}),
			want: []string{"GRANTLINE_NATS_NKEY_FILE: "}},
		{name: "a NATS key file that is not there", env: f.with(map[string]string{"GRANTLINE_NATS_NKEY_FILE": f.missingFile}),
			want: []string{"GRANTLINE_NATS_NKEY_FILE: "}},
		{name: "a signing key that does not parse", env: f.with(map[string]string{"GRANTLINE_SIGNING_KEY": `{"seed":"s3cret"}`}),
			want: []string{"GRANTLINE_SIGNING_KEY is not a signing key file: "}},
		{name: "a signing key file that is not there", env: f.with(map[string]string{"GRANTLINE_SIGNING_KEY_FILE": f.missingFile}),
			want: []string{"GRANTLINE_SIGNING_KEY_FILE: "}},
		{name: "the service's own check comes last", env: f.with(map[string]string{"GRANTLINE_TEST_RETRIES": "-2"}),
			check: errors.New("GRANTLINE_TEST_KEY is not a key"),
			want:  []string{"GRANTLINE_TEST_RETRIES must be above zero, not -2", "GRANTLINE_TEST_KEY is not a key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 3 { // the same order every time
				got := defaults()
				got.checked = tt.check
				err := config.Parse(&got, environ(tt.env))
				if err == nil {
					t.Fatal("accepted")
				}
				lines := strings.Split(err.Error(), "\n")
				if len(lines) != len(tt.want) {
					t.Fatalf("%d problems, want %d:\n%s", len(lines), len(tt.want), err)
				}
				for i, want := range tt.want {
					if !strings.HasPrefix(lines[i], want) {
						t.Errorf("problem %d = %q, want it to start with %q", i, lines[i], want)
					}
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("the error shows a secret: %s", err)
				}
			}
		})
	}
}

func TestSignerRefusesAnotherServicesKey(t *testing.T) {
	f := newFixture(t)
	if s, err := (config.Signing{KeyFile: f.keyFile}).Signer(events.Policy); err != nil || s.KeyID() != "policy-7" {
		t.Fatalf("policy's own key: %v", err)
	}
	if _, err := (config.Signing{Key: f.approvalKey, KeyFile: f.keyFile}).Signer(events.Policy); err == nil ||
		!strings.Contains(err.Error(), "belongs to approval, not policy") {
		t.Fatalf("approval's key (which wins over the file) as policy's: %v", err)
	}
}

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://approval:s3cret@db:5432/approval":  "postgres://approval:xxxxx@db:5432/approval",
		"nats://a:s3cret@n1:4222,nats://TOKEN@n2:4222": "nats://a:xxxxx@n1:4222,nats://xxxxx@n2:4222",
		"postgres://db/approval":                       "postgres://db/approval",
		"nats://127.0.0.1:4222":                        "nats://127.0.0.1:4222",
		"/etc/grantline/trust.json":                    "/etc/grantline/trust.json",
		"":                                             "",
	} {
		if got := config.Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestShownWithoutSecrets: the start-up log line and --help show every variable, with secrets hidden
// and the passwords of URLs masked.
func TestShownWithoutSecrets(t *testing.T) {
	f := newFixture(t)
	cfg := defaults()
	err := config.Parse(&cfg, environ(f.with(map[string]string{"GRANTLINE_TEST_KEY": "hunter2", "GRANTLINE_NATS_URL": "nats://svc:s3cret@nats:4222",
		"GRANTLINE_SIGNING_KEY": string(f.signer.MarshalKeyFile())})))
	if err != nil {
		t.Fatal(err)
	}
	seed := strings.Split(strings.Split(string(f.signer.MarshalKeyFile()), `"seed":"`)[1], `"`)[0]
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("starting", "config", config.LogValue(cfg))
	for _, want := range []string{`"nats_url":"nats://svc:xxxxx@nats:4222"`, `"database_url":"postgres://svc:xxxxx@db/grantline"`,
		`"test_key":"xxxxx"`, `"signing_key":"xxxxx"`, `"http_addr":":8089"`, `"shutdown_timeout":"15s"`, `"test_groups":"auditors,security"`} {
		if !strings.Contains(logged.String(), want) {
			t.Errorf("the log line lacks %s: %s", want, logged.String())
		}
	}
	var usage strings.Builder
	if err := config.Usage(&usage, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, shown := range []string{logged.String(), usage.String()} {
		for _, secret := range []string{"hunter2", "s3cret", seed} {
			if strings.Contains(shown, secret) {
				t.Errorf("a secret shows: %s", shown)
			}
		}
	}
}

// TestUsageListsEveryVariable: --help names every variable once, with its default or "required".
func TestUsageListsEveryVariable(t *testing.T) {
	var b strings.Builder
	cfg := defaults()
	if err := config.Usage(&b, &cfg); err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	for line := range strings.Lines(b.String()) {
		fields := strings.Fields(line)
		rows[fields[0]] = fields[1:]
	}
	want := map[string]string{
		"GRANTLINE_NATS_URL": "nats://127.0.0.1:4222", "GRANTLINE_NATS_MONITOR_URLS": "http://127.0.0.1:8222",
		"GRANTLINE_NATS_NKEY_FILE": "-", "GRANTLINE_NATS_TIMEOUT": "5s", "GRANTLINE_TRUST_FILE": "required",
		"GRANTLINE_HTTP_ADDR": ":8089", "GRANTLINE_PPROF_ADDR": "-", "GRANTLINE_OTLP_ENDPOINT": "-", "GRANTLINE_LOG_LEVEL": "info",
		"GRANTLINE_START_TIMEOUT": "1m", "GRANTLINE_SHUTDOWN_TIMEOUT": "15s", "GRANTLINE_ACK_WAIT": "5s", "GRANTLINE_SIGNING_KEY": "-",
		"GRANTLINE_SIGNING_KEY_FILE": "-", "GRANTLINE_OIDC_ISSUER": "required", "GRANTLINE_OIDC_AUDIENCE": "required",
		"GRANTLINE_OIDC_JWKS_URL": "-", "GRANTLINE_OIDC_GROUPS_CLAIM": "groups", "GRANTLINE_OIDC_KEY_REFETCH_INTERVAL": "10s", "GRANTLINE_DATABASE_URL": "required",
		"GRANTLINE_TEST_KEY": "-", "GRANTLINE_TEST_RETRIES": "3", "GRANTLINE_TEST_EVERY": "1m", "GRANTLINE_TEST_GROUPS": "auditors,security",
	}
	if len(rows) != len(want) {
		t.Errorf("%d variables listed, want %d:\n%s", len(rows), len(want), b.String())
	}
	for name, def := range want {
		if row := rows[name]; len(row) == 0 || row[0] != def {
			t.Errorf("%s listed as %v, want the default %s", name, row, def)
		}
	}
	if row := rows["GRANTLINE_DATABASE_URL"]; strings.Join(row[1:], " ") != "the database" {
		t.Errorf("help text of GRANTLINE_DATABASE_URL: %v", row)
	}
}
