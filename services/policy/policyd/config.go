package policyd

import (
	"time"

	"github.com/grantline/grantline/pkg/config"
)

// Config is the policy service's configuration, read from the environment by config.Parse; each
// field's tag names its variable (`grantline-policy --help` lists them with their defaults). Policy has
// no API of its own: its HTTP address serves /livez, /readyz and /metrics.
type Config struct {
	config.Base
	config.Signing
	Catalogue string `env:"GRANTLINE_CATALOGUE,notEmpty" help:"the entitlement catalogue (YAML)"`
	PolicyDir string `env:"GRANTLINE_POLICY_DIR,notEmpty" help:"the Rego policy bundle directory"`
	// Directory gives the requester's groups when a request approved for a later start is checked at
	// that start; read at every check. Empty: the check uses the groups recorded at submission.
	Directory string `env:"GRANTLINE_DIRECTORY" help:"the people and their groups (YAML), read when a scheduled request starts"`
	// EvalTimeout bounds one policy evaluation; an evaluation that runs out fails closed.
	EvalTimeout time.Duration `env:"GRANTLINE_POLICY_EVAL_TIMEOUT" envDefault:"2s" validate:"positive" help:"bound of one policy evaluation"`
	// MaxDeliveries: the last delivery of a submitted event records a deny if policy still cannot decide.
	MaxDeliveries int `env:"GRANTLINE_POLICY_MAX_DELIVERIES" envDefault:"5" validate:"positive" help:"attempts per submitted request before policy records a deny"`
	StateReplicas int `env:"GRANTLINE_POLICY_STATE_REPLICAS" envDefault:"1" validate:"positive" help:"replicas of the state bucket (3 in production)"`
}

// Defaults is the configuration before the environment is read: policy listens on :8082.
func Defaults() Config { return Config{Base: config.Base{HTTPAddr: ":8082"}} }
