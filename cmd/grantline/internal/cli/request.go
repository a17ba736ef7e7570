package cli

import (
	"bytes"
	"context"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/grantline/grantline/cmd/grantline/internal/devmode"
	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/events"
)

// apiFlags are how a command reaches Grantline's HTTP API and who it acts as.
type apiFlags struct {
	server  string
	token   string
	as      string
	dataDir string
	asJSON  bool
}

func (f *apiFlags) register(cmd *cobra.Command) {
	fl := cmd.PersistentFlags()
	fl.StringVar(&f.server, "server", envOr("GRANTLINE_SERVER", "http://127.0.0.1:8080"), "Grantline's HTTP origin (GRANTLINE_SERVER)")
	fl.StringVar(&f.token, "token", os.Getenv("GRANTLINE_TOKEN"), "bearer token (GRANTLINE_TOKEN)")
	fl.StringVar(&f.as, "as", os.Getenv("GRANTLINE_AS"), "in dev mode: act as this directory user, minting a token from --data-dir (GRANTLINE_AS)")
	fl.StringVar(&f.dataDir, "data-dir", envOr("GRANTLINE_DATA_DIR", ".grantline"), "dev data directory, for --as (GRANTLINE_DATA_DIR)")
	fl.BoolVar(&f.asJSON, "json", false, "print JSON for scripts instead of a table")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// bearer returns the token to send: --token, or one minted for --as from the dev data directory.
func (f *apiFlags) bearer() (string, error) {
	switch {
	case f.token != "":
		return f.token, nil
	case f.as != "":
		return mintDevToken(f.dataDir, f.as)
	}
	return "", errors.New("no identity: pass --token (or GRANTLINE_TOKEN), or --as <user> against grantline dev")
}

// call sends a JSON request and decodes a JSON answer into out; a problem answer becomes an error that
// says what the server said. A request carrying an Idempotency-Key is sent again, with the same key,
// when the server could not be reached or answered that it was unavailable (502, 503, 504): the key
// makes the retry answer what the first attempt did, if it landed.
func (f *apiFlags) call(ctx context.Context, method, path string, body, out any, headers ...string) error {
	token, err := f.bearer()
	if err != nil {
		return err
	}
	var payload []byte
	if body != nil {
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	retry := false
	for i := 0; i+1 < len(headers); i += 2 {
		retry = retry || (headers[i] == idempotencyKey && headers[i+1] != "")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for attempt := 1; ; attempt++ {
		status, retryAfter, b, err := f.send(ctx, method, path, token, payload, headers)
		transient := err != nil || status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
		if retry && transient && attempt < callAttempts && ctx.Err() == nil {
			select {
			case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
				continue
			case <-ctx.Done():
			}
		}
		switch {
		case err != nil:
			return fmt.Errorf("reach %s (is grantline dev running?): %w", f.server, err)
		case status >= 400:
			return problemError(status, retryAfter, b)
		case out == nil:
			return nil
		}
		return json.Unmarshal(b, out)
	}
}

// idempotencyKey is the header that makes a create or a review safe to send again.
const idempotencyKey = "Idempotency-Key"

// callAttempts bounds the attempts of a request that may be sent again.
const callAttempts = 4

// newIdempotencyKey names one action of the person's: a command run.
func newIdempotencyKey() string { return "cli-" + events.NewID() }

// send makes one HTTP attempt and returns the status and body.
func (f *apiFlags) send(ctx context.Context, method, path, token string, payload []byte, headers []string) (status int, retryAfter string, body []byte, err error) {
	var r io.Reader
	if payload != nil {
		r = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(f.server, "/")+path, r)
	if err != nil {
		return 0, "", nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] != "" {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, resp.Header.Get("Retry-After"), b, err
}

// problemError renders an RFC 9457 answer for a person; one naming an unavailable dependency says
// which, and when to try again (retryAfter, in seconds).
func problemError(status int, retryAfter string, body []byte) error {
	var p struct {
		Title      string `json:"title"`
		Detail     string `json:"detail"`
		Dependency string `json:"dependency"`
		Errors     []struct {
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &p) != nil || p.Title == "" {
		return fmt.Errorf("HTTP %d: %s", status, strings.TrimSpace(string(body)))
	}
	if p.Dependency != "" {
		p.Title = "The " + p.Dependency + " is unavailable"
		p.Detail = strings.TrimPrefix(p.Detail, "the "+p.Dependency+" is unavailable: ")
		if retryAfter != "" {
			p.Title += "; try again in " + retryAfter + " s"
		}
	}
	msg := fmt.Sprintf("%s (HTTP %d)", p.Title, status)
	if len(p.Errors) > 0 {
		for _, e := range p.Errors {
			msg += fmt.Sprintf("\n  %s: %s", e.Field, e.Message)
		}
	} else if p.Detail != "" {
		msg += ": " + p.Detail
	}
	return errors.New(msg)
}

func requestCommand(stdout io.Writer) *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{Use: "request", Short: "Create, show and withdraw access requests"}
	f.register(cmd)

	var create struct {
		justification, duration, ticket, start, subject, idemKey, again, extends string
		entitlements                                                             []string
		emergency                                                                bool
	}
	createCmd := &cobra.Command{
		Use:   "create",
		Short: "Ask for an entitlement, with a purpose and a duration",
		Example: `  grantline request create --as alice --entitlement analytics-read --duration 2h --justification "weekly revenue report"
  grantline request create --as frank --entitlement reporting-db-credential --subject service_account:svc-reporting --duration 30m --justification "nightly export"
  grantline request create --as alice --again 01JF3Z6W8Q4V8D2T9N5K7M1C0B
  grantline request create --as alice --entitlement analytics-read --duration 2h --justification "the report run is not finished" --extends 01JF3Z6W8Q4V8D2T9N5K7M1C0B
  grantline request create --as alice --entitlement analytics-read --entitlement payments-admin --duration 1h --justification "onboarding to payments"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			entitlement := ""
			if len(create.entitlements) > 0 {
				entitlement = create.entitlements[0]
			}
			if create.again != "" {
				if err := f.fillFrom(cmd, create.again, &entitlement, &create.justification, &create.duration,
					&create.ticket, &create.subject); err != nil {
					return err
				}
			}
			for flag, v := range map[string]string{"entitlement": entitlement, "justification": create.justification, "duration": create.duration} {
				if v == "" {
					return fmt.Errorf("--%s is required (or --again <id> to ask again for what a request asked)", flag)
				}
			}
			body := map[string]any{"justification": create.justification, "duration": create.duration}
			if create.ticket != "" {
				body["ticket"] = create.ticket
			}
			if create.start != "" {
				body["start"] = create.start
			}
			if create.emergency {
				body["emergency"] = true
			}
			if create.extends != "" {
				body["extends"] = create.extends
			}
			if create.subject != "" {
				kind, id, ok := strings.Cut(create.subject, ":")
				if !ok {
					return errors.New("--subject is kind:id, such as service_account:svc-reporting")
				}
				body["subject"] = map[string]string{"kind": kind, "id": id}
			}
			if create.idemKey == "" {
				create.idemKey = newIdempotencyKey()
			}
			if len(create.entitlements) > 1 {
				return f.createBatch(cmd.Context(), stdout, body, create.entitlements, create.idemKey, create.emergency || create.extends != "")
			}
			body["entitlement"] = entitlement
			var created map[string]any
			if err := f.call(cmd.Context(), "POST", "/v1/requests", body, &created, idempotencyKey, create.idemKey); err != nil {
				return err
			}
			return f.print(stdout, created, func(w io.Writer) {
				fmt.Fprintf(w, "Request %v is %v.\nFollow it with: grantline request show %v\n", created["id"], created["status"], created["id"])
			})
		},
	}
	cf := createCmd.Flags()
	cf.StringSliceVar(&create.entitlements, "entitlement", nil, "the catalogue entitlement (required); repeat it to ask for several at once, one request each")
	cf.StringVar(&create.justification, "justification", "", "why you need it (required)")
	cf.StringVar(&create.duration, "duration", "", `how long, such as 2h, 30m, 5s or PT2H (required)`)
	cf.StringVar(&create.ticket, "ticket", "", "the ticket this work belongs to")
	cf.StringVar(&create.start, "start", "", "when access should begin (RFC 3339 with a zone)")
	cf.StringVar(&create.subject, "subject", "", "who will hold it when not you: kind:id, such as service_account:svc-reporting")
	cf.BoolVar(&create.emergency, "emergency", false, "use the entitlement's emergency (break-glass) path")
	cf.StringVar(&create.idemKey, "idempotency-key", "", "a key that makes retries of this command create one request (default: a fresh one per run, used for its own retries)")
	cf.StringVar(&create.extends, "extends", "", "extend the active grant of this request, without a gap (same entitlement and subject)")
	cf.StringVar(&create.again, "again", "", "ask again for what request <id> asked (a failed one, say); the other flags override its values")

	showCmd := &cobra.Command{
		Use:   "show <id>",
		Short: "Show a request: status, decision, reviews, grant and revocation",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var view map[string]any
			if err := f.call(cmd.Context(), "GET", "/v1/requests/"+args[0], nil, &view); err != nil {
				return err
			}
			return f.print(stdout, view, func(w io.Writer) { printRequest(w, view) })
		},
	}

	var reason string
	withdrawCmd := &cobra.Command{
		Use:   "withdraw <id>",
		Short: "Withdraw your request before it is granted",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out map[string]any
			if err := f.call(cmd.Context(), "POST", "/v1/requests/"+args[0]+"/withdraw", map[string]string{"reason": reason}, &out); err != nil {
				return err
			}
			return f.print(stdout, out, func(w io.Writer) { fmt.Fprintf(w, "Request %v is %v.\n", out["id"], out["status"]) })
		},
	}
	withdrawCmd.Flags().StringVar(&reason, "reason", "", "why")

	var list struct {
		status, requester, entitlement, chain string
		awaiting                              bool
		limit                                 int
	}
	listCmd := &cobra.Command{
		Use:   "list",
		Short: "List the requests you may see, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"status": list.status, "requester": list.requester, "entitlement": list.entitlement, "chain": list.chain} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if list.awaiting {
				q.Set("awaiting_review", "me")
			}
			q.Set("limit", strconv.Itoa(list.limit))
			var page struct {
				Items      []map[string]any `json:"items"`
				NextCursor string           `json:"next_cursor"`
			}
			if err := f.call(cmd.Context(), "GET", "/v1/requests?"+q.Encode(), nil, &page); err != nil {
				return err
			}
			return f.print(stdout, page, func(out io.Writer) {
				if len(page.Items) == 0 {
					fmt.Fprintln(out, "No requests.")
					return
				}
				w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "ID\tSTATUS\tREQUESTER\tENTITLEMENT\tSUBMITTED")
				for _, it := range page.Items {
					requester, _ := it["requester"].(map[string]any)
					fmt.Fprintf(w, "%v\t%v\t%v\t%v\t%v\n", it["id"], it["status"], requester["id"], it["entitlement"], it["submitted_at"])
				}
				_ = w.Flush()
				if page.NextCursor != "" {
					fmt.Fprintln(out, "More: pass --json and use next_cursor, or narrow the filters.")
				}
			})
		},
	}
	lf := listCmd.Flags()
	lf.StringVar(&list.status, "status", "", "only this status (submitted, pending_approval, approved, granted, revoked, ...)")
	lf.StringVar(&list.requester, "requester", "", "only this requester")
	lf.StringVar(&list.entitlement, "entitlement", "", "only this entitlement")
	lf.StringVar(&list.chain, "chain", "", "only the chain of extensions holding this request")
	lf.BoolVar(&list.awaiting, "awaiting-my-review", false, "only requests waiting for your review")
	lf.IntVar(&list.limit, "limit", 50, "at most this many")

	cmd.AddCommand(createCmd, showCmd, listCmd, withdrawCmd)
	return cmd
}

// createBatch submits body for each of entitlements, one request each, linked by a correlation ID
// (POST /v1/request-batches); emergencies and extensions are asked one at a time (single is true).
func (f *apiFlags) createBatch(ctx context.Context, stdout io.Writer, body map[string]any, entitlements []string, key string, single bool) error {
	if single {
		return errors.New("--emergency and --extends take one --entitlement")
	}
	body["entitlements"] = entitlements
	var batch struct {
		CorrelationID string           `json:"correlation_id"`
		Requests      []map[string]any `json:"requests"`
	}
	if err := f.call(ctx, "POST", "/v1/request-batches", body, &batch, idempotencyKey, key); err != nil {
		return err
	}
	return f.print(stdout, batch, func(out io.Writer) {
		fmt.Fprintf(out, "%d requests submitted together (correlation %s), each decided on its own:\n", len(batch.Requests), batch.CorrelationID)
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		for _, it := range batch.Requests {
			fmt.Fprintf(w, "  %v\t%v\t%v\n", it["id"], it["entitlement"], it["status"])
		}
		_ = w.Flush()
	})
}

// print writes v as indented JSON with --json, else through table.
func (f *apiFlags) print(w io.Writer, v any, table func(io.Writer)) error {
	if f.asJSON {
		b, err := json.Marshal(v, jsontext.WithIndent("  "))
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	table(w)
	return nil
}

func printRequest(out io.Writer, v map[string]any) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	row := func(k string, val any) {
		if val != nil && val != "" {
			fmt.Fprintf(w, "%s\t%v\n", k, val)
		}
	}
	requester, _ := v["requester"].(map[string]any)
	subject, _ := v["subject"].(map[string]any)
	row("ID", v["id"])
	row("Status", v["status"])
	row("Entitlement", v["entitlement"])
	row("Requester", requester["id"])
	if subject["id"] != requester["id"] {
		row("Subject", fmt.Sprintf("%v %v", subject["kind"], subject["id"]))
	}
	row("Justification", v["justification"])
	row("Ticket", v["ticket"])
	if secs, ok := v["duration_seconds"].(float64); ok {
		row("Duration", time.Duration(secs)*time.Second)
	}
	if v["emergency"] == true {
		row("Emergency", "yes")
	}
	row("Channel", v["channel"])
	row("Submitted", v["submitted_at"])
	row("Starts", v["start_at"])
	row("Submitted with", v["correlation_id"])
	if x, ok := v["extends"].(map[string]any); ok {
		row("Extends", fmt.Sprintf("%v (expiring %v; held since %v)", x["request_id"], x["expires_at"], x["held_since"]))
	}
	if d, ok := v["decision"].(map[string]any); ok {
		row("Decision", d["outcome"])
		if reasons, ok := d["reasons"].([]any); ok && len(reasons) > 0 {
			row("  reasons", joinAny(reasons))
		}
		if stages, ok := d["stages"].([]any); ok {
			for i, s := range stages {
				st, _ := s.(map[string]any)
				row(fmt.Sprintf("  stage %d", i+1), fmt.Sprintf("%v: %v approval(s) from %v", st["name"], st["min_approvals"], joinAny(asSlice(st["groups"]))))
			}
		}
		row("  policy revision", d["policy_revision"])
	} else {
		row("Decision", "awaiting policy")
	}
	if c, ok := v["start_check"].(map[string]any); ok {
		verdict := "still allowed"
		if c["allowed"] != true {
			verdict = "no longer allowed, so not granted"
		}
		row("Start check", fmt.Sprintf("%s (%v; groups %v, from the %v)", verdict, c["outcome"], joinAny(asSlice(c["requester_groups"])), c["groups_from"]))
		if reasons, ok := c["reasons"].([]any); ok && len(reasons) > 0 {
			row("  reasons", joinAny(reasons))
		}
	} else if v["start_at"] != nil && v["status"] == "approved" {
		row("Start check", "due at the start: policy checks the request again then")
	}
	if g, ok := v["grant"].(map[string]any); ok {
		row("Granted until", g["expires_at"])
	}
	if fl, ok := v["failure"].(map[string]any); ok {
		row("Failed", fmt.Sprintf("%v after %v attempt(s): %v", fl["error_class"], fl["attempts"], fl["message"]))
		if v["status"] == "failed" {
			row("  ask again", fmt.Sprintf("grantline request create --again %v", v["id"]))
		}
	}
	_ = w.Flush()
}

// fillFrom sets each of the create flags the person did not give from request id's view: what it
// asked for, for how long, why, and for whom.
func (f *apiFlags) fillFrom(cmd *cobra.Command, id string, entitlement, justification, duration, ticket, subject *string) error {
	var view struct {
		Entitlement     string `json:"entitlement"`
		Justification   string `json:"justification"`
		Ticket          string `json:"ticket"`
		DurationSeconds int64  `json:"duration_seconds"`
		Requester       struct {
			ID string `json:"id"`
		} `json:"requester"`
		Subject struct {
			Kind string `json:"kind"`
			ID   string `json:"id"`
		} `json:"subject"`
	}
	if err := f.call(cmd.Context(), "GET", "/v1/requests/"+id, nil, &view); err != nil {
		return fmt.Errorf("--again %s: %w", id, err)
	}
	fill := func(flag string, dst *string, v string) {
		if !cmd.Flags().Changed(flag) {
			*dst = v
		}
	}
	fill("entitlement", entitlement, view.Entitlement)
	fill("justification", justification, view.Justification)
	fill("duration", duration, (time.Duration(view.DurationSeconds) * time.Second).String())
	fill("ticket", ticket, view.Ticket)
	if view.Subject.ID != view.Requester.ID {
		fill("subject", subject, view.Subject.Kind+":"+view.Subject.ID)
	}
	return nil
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

func joinAny(items []any) string {
	parts := make([]string, len(items))
	for i, it := range items {
		parts[i] = fmt.Sprint(it)
	}
	return strings.Join(parts, ", ")
}

// mintDevToken signs a token for a directory user with the dev issuer's key in dataDir.
func mintDevToken(dataDir, user string) (string, error) {
	dir, err := auth.LoadDirectory(filepath.Join(envOr("GRANTLINE_EXAMPLES", "examples"), "directory.yaml"))
	if err != nil {
		return "", err
	}
	return auth.MintFromDir(devmode.OIDCDir(dataDir), dir, user, time.Hour)
}
