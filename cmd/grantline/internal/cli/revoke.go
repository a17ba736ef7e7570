package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// revokeWorkers is how many revocations are asked for, and followed, at once: enough that a person
// with hundreds of grants loses them in seconds, few enough not to look like a flood.
const revokeWorkers = 8

func revokeCommand(stdout, stderr io.Writer) *cobra.Command {
	var f apiFlags
	var reason, user, entitlement string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "revoke (<request-id> | --user <id> | --entitlement <id>) --reason <text>",
		Short: "End granted access before it expires: one grant, or every active grant of a person or an entitlement",
		Long: `With a request ID, asks for that grant's early revocation (the requester, an owner of the
entitlement or an admin may). With --user or --entitlement (offboarding, a compromised target), lists
every active grant the caller may read that the person holds, or of the entitlement, asks for each
one's revocation, prints each answer, then follows them until the targets show the access gone, with
progress on stderr. It exits non-zero if any was refused or is still not revoked after --wait.`,
		Example: `  grantline revoke 01KB... --reason "incident closed" --as alice
  grantline revoke --user alice --reason "left the company" --as carol`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set := 0
			for _, v := range []string{user, entitlement} {
				if v != "" {
					set++
				}
			}
			switch {
			case len(args) == 1 && set == 0:
				id := args[0]
				if err := f.call(cmd.Context(), "POST", "/v1/requests/"+id+"/revoke", map[string]string{"reason": reason}, nil); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "Revocation of %s requested; follow it with: grantline request show %s\n", id, id)
				return nil
			case len(args) == 0 && set == 1:
				filter := url.Values{"active": {"true"}}
				what := "held by " + user
				if user != "" {
					filter.Set("holder", user)
				} else {
					filter.Set("entitlement", entitlement)
					what = "of " + entitlement
				}
				return revokeAll(cmd.Context(), &f, stdout, stderr, filter, what, reason, wait)
			}
			return errors.New("name exactly one of: a request ID, --user, --entitlement")
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why (required)")
	cmd.Flags().StringVar(&user, "user", "", "revoke every active grant this person holds")
	cmd.Flags().StringVar(&entitlement, "entitlement", "", "revoke every active grant of this entitlement")
	cmd.Flags().DurationVar(&wait, "wait", time.Minute, "with --user or --entitlement: how long to follow the revocations")
	_ = cmd.MarkFlagRequired("reason")
	return cmd
}

// activeGrant is what the mass revocation needs of a listed grant.
type activeGrant struct {
	RequestID   string `json:"request_id"`
	Entitlement string `json:"entitlement"`
	Subject     struct {
		ID string `json:"id"`
	} `json:"subject"`
}

// revocationOutcome is one grant's fate: refused when asked, or its status when last seen.
type revocationOutcome struct {
	grant    activeGrant
	refused  error
	status   string
	present  bool // the target still showed the access when revoked
	finished time.Duration
}

// revokeAll revokes every active grant that filter selects, and follows each until revoked or wait
// has passed.
func revokeAll(ctx context.Context, f *apiFlags, stdout, stderr io.Writer, filter url.Values, what, reason string, wait time.Duration) error {
	grants, err := listActiveGrants(ctx, f, filter)
	if err != nil {
		return err
	}
	if len(grants) == 0 {
		fmt.Fprintf(stdout, "No active grant %s (among those you may read).\n", what)
		return nil
	}
	fmt.Fprintf(stderr, "Revoking %d active grants %s.\n", len(grants), what)
	start := time.Now()
	outcomes := revokeEach(ctx, f, stderr, grants, reason, start.Add(wait))
	return reportRevocations(f, stdout, outcomes, time.Since(start))
}

// revokeEach asks for each grant's revocation, then follows each accepted one until it is revoked or
// the deadline passes, revokeWorkers at a time, with progress on stderr.
func revokeEach(ctx context.Context, f *apiFlags, stderr io.Writer, grants []activeGrant, reason string, deadline time.Time) []revocationOutcome {
	start := time.Now()
	outcomes := make([]revocationOutcome, len(grants))
	var asked, revoked progressCount
	forEach(len(grants), func(i int) {
		o := &outcomes[i]
		o.grant = grants[i]
		o.refused = f.call(ctx, "POST", "/v1/requests/"+grants[i].RequestID+"/revoke", map[string]string{"reason": reason}, nil)
		asked.add(stderr, "asked", len(grants))
	})
	forEach(len(outcomes), func(i int) {
		o := &outcomes[i]
		if o.refused != nil {
			return
		}
		followRevocation(ctx, f, o, deadline, start)
		if o.status == "revoked" {
			revoked.add(stderr, "revoked", len(grants))
		}
	})
	return outcomes
}

// listActiveGrants reads every page of GET /v1/grants with filter.
func listActiveGrants(ctx context.Context, f *apiFlags, filter url.Values) ([]activeGrant, error) {
	var all []activeGrant
	q := url.Values{}
	for k, v := range filter {
		q[k] = v
	}
	q.Set("limit", "200")
	for {
		var page struct {
			Items      []activeGrant `json:"items"`
			NextCursor string        `json:"next_cursor"`
		}
		if err := f.call(ctx, "GET", "/v1/grants?"+q.Encode(), nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			return all, nil
		}
		q.Set("cursor", page.NextCursor)
	}
}

// followRevocation polls the request (intake's read-your-writes view) until it is revoked or the
// deadline passes, and records what it saw last.
func followRevocation(ctx context.Context, f *apiFlags, o *revocationOutcome, deadline, start time.Time) {
	for {
		var view struct {
			Status     string `json:"status"`
			Revocation *struct {
				Observed struct {
					Present bool `json:"present"`
				} `json:"observed"`
			} `json:"revocation"`
		}
		if err := f.call(ctx, "GET", "/v1/requests/"+o.grant.RequestID, nil, &view); err == nil {
			o.status = view.Status
			if view.Revocation != nil {
				o.present, o.finished = view.Revocation.Observed.Present, time.Since(start)
				return
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// revocationLine is one grant's outcome as reported, a table row or, with --json, an object.
type revocationLine struct {
	RequestID   string `json:"request_id"`
	Holder      string `json:"holder"`
	Entitlement string `json:"entitlement"`
	// Outcome is revoked, refused, still_present (revoked but the target still shows it) or overdue.
	Outcome string `json:"outcome"`
	Detail  string `json:"detail,omitempty"`
	// RevokedAfterMS is when the revocation was seen, from the start of the run.
	RevokedAfterMS int64 `json:"revoked_after_ms,omitempty"`
}

// reportRevocations prints one line per grant (a table, or JSON with --json) and fails if any was
// refused or is not revoked.
func reportRevocations(f *apiFlags, stdout io.Writer, outcomes []revocationOutcome, took time.Duration) error {
	lines := make([]revocationLine, len(outcomes))
	var failed int
	for i, o := range outcomes {
		l := revocationLine{RequestID: o.grant.RequestID, Holder: o.grant.Subject.ID, Entitlement: o.grant.Entitlement}
		switch {
		case o.refused != nil:
			l.Outcome, l.Detail = "refused", o.refused.Error()
		case o.status == "revoked" && o.present:
			l.Outcome, l.Detail = "still_present", "revoked, but the target still shows the access"
		case o.status == "revoked":
			l.Outcome, l.RevokedAfterMS = "revoked", o.finished.Milliseconds()
		default:
			l.Outcome, l.Detail = "overdue", fmt.Sprintf("not revoked yet (status %v); the revoker keeps retrying", orDash(o.status))
		}
		if l.Outcome != "revoked" {
			failed++
		}
		lines[i] = l
	}
	err := f.print(stdout, lines, func(out io.Writer) {
		tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "REQUEST\tHOLDER\tENTITLEMENT\tOUTCOME")
		for _, l := range lines {
			outcome := l.Outcome + ": " + l.Detail
			if l.Outcome == "revoked" {
				outcome = fmt.Sprintf("revoked, gone from the target (%s)", (time.Duration(l.RevokedAfterMS) * time.Millisecond))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", l.RequestID, l.Holder, l.Entitlement, outcome)
		}
		_ = tw.Flush()
		fmt.Fprintf(out, "%d of %d revoked in %s; %d refused or overdue.\n", len(lines)-failed, len(lines), took.Round(time.Millisecond), failed)
	})
	if err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d grants refused or not revoked", failed, len(lines))
	}
	return nil
}

// forEach runs do for 0..n-1, revokeWorkers at a time, and returns when all have.
func forEach(n int, do func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(revokeWorkers, n) {
		wg.Go(func() {
			for i := range next {
				do(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// progressCount reports on stderr how many of a total are done, about once a second and at the end.
type progressCount struct {
	mu   sync.Mutex
	n    int
	last time.Time
}

func (p *progressCount) add(w io.Writer, verb string, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	if p.n == total || time.Since(p.last) >= time.Second {
		p.last = time.Now()
		fmt.Fprintf(w, "%s %d/%d\n", verb, p.n, total)
	}
}
