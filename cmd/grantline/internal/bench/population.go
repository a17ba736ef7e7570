package bench

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/grantline/grantline/pkg/auth"
)

// populationGroup is the group every person of the population is in: the example policy approves
// the benchmark's entitlement without review for its members.
const populationGroup = "engineers"

// population is the people the bench submits for. Requests go to them in turn, so after n requests
// each person has asked about n/size times: a population of people with a handful of grants each,
// as a real directory has, rather than one person holding them all (with the postgres connector that
// one person's thousands of grant roles would make every membership check walk them all; the worst
// case measures that on its own).
type population struct {
	ids []string
	// tokens[i] is ids[i]'s bearer token, minted once by the bench's issuer.
	tokens []string
	next   atomic.Uint64
}

// personID is the i-th person's immutable subject, also their PostgreSQL login role.
func personID(i int) string { return fmt.Sprintf("person-%05d", i) }

func newPopulation(size int) *population {
	p := &population{ids: make([]string, size)}
	for i := range p.ids {
		p.ids[i] = personID(i)
	}
	return p
}

// draw is the person the next request is for.
func (p *population) draw() int { return int((p.next.Add(1) - 1) % uint64(len(p.ids))) }

// writeDirectory writes the population as the dev issuer's directory file.
func (p *population) writeDirectory(path string) error {
	var b strings.Builder
	b.WriteString("# The benchmark's population: engineers, each asking in turn.\nusers:\n")
	for _, id := range p.ids {
		fmt.Fprintf(&b, "  - id: %s\n    name: Bench %s\n    groups: [%s]\n", id, id, populationGroup)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// mintTokens gives every person a token valid for ttl, minted before any phase so no phase pays
// for the signing.
func (p *population) mintTokens(issuer *auth.DevIssuer, ttl time.Duration) error {
	p.tokens = make([]string, len(p.ids))
	for i, id := range p.ids {
		t, err := issuer.Mint(id, ttl)
		if err != nil {
			return err
		}
		p.tokens[i] = t
	}
	return nil
}
