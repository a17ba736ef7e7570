package ops

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/grantline/grantline/pkg/config"
)

// probe is a service configuration: the shared base and a variable of its own.
type probe struct {
	config.Base
	Catalogue string `env:"GRANTLINE_CATALOGUE,notEmpty" help:"the entitlement catalogue"`
	Password  string `env:"GRANTLINE_PROBE_PASSWORD" secret:"true"`
}

func TestMainExitCodes(t *testing.T) {
	ok := []string{"GRANTLINE_TRUST_FILE=trust.json", "GRANTLINE_CATALOGUE=catalogue.yaml", "GRANTLINE_PROBE_PASSWORD=hunter2",
		"GRANTLINE_LOG_LEVEL=warn"}
	tests := []struct {
		name    string
		args    []string
		environ []string
		run     error
		code    int
		stdout  []string // each must appear
		stderr  []string
	}{
		{name: "--help lists every variable with its default", args: []string{"--help"}, code: ExitStopped,
			stdout: []string{"grantline-probe runs the probe service", "GRANTLINE_HTTP_ADDR", ":8099", "GRANTLINE_CATALOGUE", "required",
				"GRANTLINE_SHUTDOWN_TIMEOUT", "15s", "the entitlement catalogue"}},
		{name: "-h too, whatever the environment", args: []string{"serve", "-h"}, code: ExitStopped, stdout: []string{"GRANTLINE_NATS_URL"}},
		{name: "a configuration error names every variable", environ: []string{"GRANTLINE_SHUTDOWN_TIMEOUT=0s"}, code: ExitConfig,
			stderr: []string{"GRANTLINE_TRUST_FILE is required\nGRANTLINE_CATALOGUE is required\nGRANTLINE_SHUTDOWN_TIMEOUT must be above zero",
				"grantline-probe --help lists every variable"}},
		{name: "a failed run", environ: ok, run: errors.New("boom"), code: ExitFailed, stderr: []string{`"level":"ERROR"`, "boom"}},
		{name: "a stop", environ: ok, code: ExitStopped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			var ran probe
			code := mainWith(context.Background(), "probe", probe{Base: config.Base{HTTPAddr: ":8099"}},
				func(_ context.Context, cfg probe, _ *slog.Logger) error { ran = cfg; return tt.run }, tt.args, tt.environ, &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout.String(), stderr.String())
			}
			for _, want := range tt.stdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
				}
			}
			for _, want := range tt.stderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
			if strings.Contains(stdout.String()+stderr.String(), "hunter2") {
				t.Errorf("a secret shows:\n%s%s", stdout.String(), stderr.String())
			}
			if tt.environ != nil && tt.code != ExitConfig && (ran.Catalogue != "catalogue.yaml" || ran.HTTPAddr != ":8099" || ran.LogLevel != slog.LevelWarn) {
				t.Errorf("run got %+v", ran)
			}
		})
	}
}
