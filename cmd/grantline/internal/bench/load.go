package bench

import (
	"context"
	"encoding/json/v2"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/intake/integration"
)

// tracker follows every request from its submission to its decision and grant. A submission is known
// by its key (the Idempotency-Key over HTTP, the CloudEvent id over the integration stream) until intake
// answers with the request ID; events are known by request ID. Either may arrive first: policy can
// decide before the HTTP answer reaches the bench.
type tracker struct {
	mu   sync.Mutex
	sent map[string]time.Time
	// requesterOf is the person each submission was for.
	requesterOf map[string]int
	accepted    map[string]time.Time
	requestOf   map[string]string
	keyOf       map[string]string
	// decided and granted are the times the server stored policy_decided and granted.
	decided, granted map[string]time.Time
	// failed holds why a submission or request will never be granted, by key or by request ID.
	failed map[string]string
	cur    *phaseKeys
	// window, in the maximum-rate phase, holds a token per request submitted and not yet finished.
	window  chan struct{}
	changed chan struct{}
}

// phaseKeys are the submissions of the running phase.
type phaseKeys struct {
	keys     []string
	finished map[string]bool
}

func newTracker() *tracker {
	return &tracker{sent: map[string]time.Time{}, requesterOf: map[string]int{}, accepted: map[string]time.Time{}, requestOf: map[string]string{},
		keyOf: map[string]string{}, decided: map[string]time.Time{}, granted: map[string]time.Time{}, failed: map[string]string{},
		changed: make(chan struct{}, 1)}
}

func (t *tracker) begin(window chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cur, t.window = &phaseKeys{finished: map[string]bool{}}, window
}

func (t *tracker) submitting(key string, person int, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sent[key], t.requesterOf[key] = at, person
	t.cur.keys = append(t.cur.keys, key)
}

// accept links a submission to its request.
func (t *tracker) accept(key, id string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.accepted[key], t.requestOf[key], t.keyOf[id] = at, id, key
	if _, ok := t.granted[id]; ok {
		t.finish(key)
	} else if reason, ok := t.failed[id]; ok {
		t.failed[key] = reason
		t.finish(key)
	}
}

// refuse records a submission that did not become a request.
func (t *tracker) refuse(key, reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed[key] = reason
	t.finish(key)
}

// observe records an event of request id stored at at; reason, when set, says the request will not be
// granted.
func (t *tracker) observe(id string, typ events.Type, at time.Time, reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case reason != "":
		t.failed[id] = reason
	case typ == events.TypePolicyDecided:
		t.decided[id] = at
		return
	default:
		t.granted[id] = at
	}
	if key, ok := t.keyOf[id]; ok {
		if reason != "" {
			t.failed[key] = reason
		}
		t.finish(key)
	}
}

// finish counts a submission of the phase as done, once, and frees its slot in the maximum-rate
// phase's window.
func (t *tracker) finish(key string) {
	if t.cur == nil || t.cur.finished[key] {
		return
	}
	t.cur.finished[key] = true
	select {
	case <-t.window:
	default:
	}
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

func (t *tracker) progress() (submitted, finished int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.cur.keys), len(t.cur.finished)
}

// waitFinished waits until n submissions of the phase are granted or failed.
func (t *tracker) waitFinished(ctx context.Context, n int) error {
	for {
		if _, done := t.progress(); done >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			sub, done := t.progress()
			return fmt.Errorf("%d of %d requests finished (%d submitted): %w", done, n, sub, ctx.Err())
		case <-t.changed:
		}
	}
}

// fill computes the phase's figures from what was tracked.
func (t *tracker) fill(ph *Phase) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var submit, decision, granted []time.Duration
	var sentAt, grantedAt []time.Time
	reasons := map[string]bool{}
	requesters := map[int]bool{}
	for _, key := range t.cur.keys {
		sent := t.sent[key]
		requesters[t.requesterOf[key]] = true
		sentAt = append(sentAt, sent)
		if reason, ok := t.failed[key]; ok {
			ph.Failed++
			if !reasons[reason] && len(reasons) < 5 {
				reasons[reason] = true
				ph.Failures = append(ph.Failures, reason)
			}
			continue
		}
		if at, ok := t.accepted[key]; ok {
			submit = append(submit, at.Sub(sent))
		}
		id := t.requestOf[key]
		if at, ok := t.decided[id]; ok {
			decision = append(decision, at.Sub(sent))
		}
		if at, ok := t.granted[id]; ok {
			granted = append(granted, at.Sub(sent))
			grantedAt = append(grantedAt, at)
		}
	}
	ph.Submitted, ph.Granted, ph.Requesters = len(t.cur.keys), len(grantedAt), len(requesters)
	ph.Submit, ph.Decision, ph.GrantedLatency = latencyOf(submit), latencyOf(decision), latencyOf(granted)
	if len(sentAt) == 0 || len(grantedAt) == 0 {
		return
	}
	slices.SortFunc(sentAt, func(a, b time.Time) int { return a.Compare(b) })
	slices.SortFunc(grantedAt, func(a, b time.Time) int { return a.Compare(b) })
	ph.Elapsed = grantedAt[len(grantedAt)-1].Sub(sentAt[0])
	ph.Overall = perSecond(len(grantedAt), ph.Elapsed)
	if d := sentAt[len(sentAt)-1].Sub(sentAt[0]); d > 0 {
		ph.SubmitRate = perSecond(len(sentAt)-1, d)
	}
	// The middle 80% of the grants: the rate the pipeline holds once full, before it drains.
	ph.Sustained = ph.Overall
	if n := len(grantedAt); n >= 10 {
		lo, hi := n/10, n-1-n/10
		if d := grantedAt[hi].Sub(grantedAt[lo]); d > 0 {
			ph.Sustained = perSecond(hi-lo, d)
		}
	}
}

func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// observe follows the decisions, grants and failed fulfilments on the evidence stream with an ordered
// consumer (so only what was stored counts), and, over the integration stream, intake's answers.
func (r *run) observe(ctx context.Context) (stop func(), err error) {
	cons, err := r.s.js.OrderedConsumer(ctx, topology.EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.NATSSubject("*", events.TypePolicyDecided), events.NATSSubject("*", events.TypeGranted),
			events.NATSSubject("*", events.TypeFulfilmentFailed)},
		DeliverPolicy: jetstream.DeliverNewPolicy, NamePrefix: observerPrefix,
	})
	if err != nil {
		return nil, fmt.Errorf("observe the evidence stream: %w", err)
	}
	cc, err := cons.Consume(r.observed)
	if err != nil {
		return nil, fmt.Errorf("observe the evidence stream: %w", err)
	}
	sub, err := r.s.nc.Subscribe(outcomesSubject(), r.answered)
	if err != nil {
		cc.Stop()
		return nil, err
	}
	return func() { _ = sub.Unsubscribe(); cc.Stop() }, nil
}

// observerPrefix names the bench's observer among the server's consumers.
const observerPrefix = "grantline-bench"

func (r *run) observed(m jetstream.Msg) {
	id, typ, err := events.ParseNATSSubject(m.Subject())
	if err != nil {
		return
	}
	meta, err := m.Metadata()
	if err != nil {
		return
	}
	// Only the fields the bench judges by; the services verify the rest.
	var body struct {
		Data struct {
			Outcome    events.Outcome `json:"outcome"`
			ErrorClass string         `json:"error_class"`
			Message    string         `json:"message"`
		} `json:"data"`
	}
	reason := ""
	switch typ {
	case events.TypePolicyDecided:
		if err := json.Unmarshal(m.Data(), &body); err != nil {
			reason = "undecodable policy_decided: " + err.Error()
		} else if body.Data.Outcome != events.OutcomeAutoApproved {
			reason = "policy decided " + string(body.Data.Outcome)
		}
	case events.TypeFulfilmentFailed:
		if err := json.Unmarshal(m.Data(), &body); err == nil {
			reason = "fulfilment failed: " + body.Data.ErrorClass + ": " + body.Data.Message
		} else {
			reason = "fulfilment failed"
		}
	}
	r.tracker.observe(id, typ, meta.Timestamp, reason)
}

// answered records intake's answer to an integration CloudEvent.
func (r *run) answered(m *nats.Msg) {
	at := time.Now()
	var ce struct {
		Subject string `json:"subject"`
		Type    string `json:"type"`
		Data    struct {
			RequestID string `json:"request_id"`
			Reason    string `json:"reason"`
		} `json:"data"`
	}
	if err := json.Unmarshal(m.Data, &ce); err != nil {
		return
	}
	if ce.Type == integration.TypeAccepted {
		r.tracker.accept(ce.Subject, ce.Data.RequestID, at)
	} else {
		r.tracker.refuse(ce.Subject, "intake refused: "+ce.Data.Reason)
	}
}

// submit sends one request, known by key, for the next person of the population, the way the run is
// configured to.
func (r *run) submit(ctx context.Context, key string) {
	justification := "grantline bench " + key
	people := r.s.people
	person := people.draw()
	if r.s.cfg.Via == ViaIntegration {
		ce := fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"/grantline-bench","type":%q,"datacontenttype":"application/json",`+
			`"data":{"requester":{"id":%q,"groups":[%q]},"entitlement":%q,"duration":"1h","justification":%q}}`,
			key, integration.TypeRequest, people.ids[person], populationGroup, entitlement, justification)
		msg := nats.NewMsg(topology.IntegrationRequests(integrationName))
		msg.Data = []byte(ce)
		r.tracker.submitting(key, person, time.Now())
		if _, err := r.s.js.PublishMsg(ctx, msg, jetstream.WithMsgID(key)); err != nil {
			r.tracker.refuse(key, "publish: "+err.Error())
		}
		return
	}
	body := fmt.Sprintf(`{"entitlement":%q,"duration":"1h","justification":%q}`, entitlement, justification)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+r.s.service("intake").httpAddr+"/v1/requests", strings.NewReader(body))
	if err != nil {
		r.tracker.refuse(key, err.Error())
		return
	}
	req.Header.Set("Authorization", "Bearer "+people.tokens[person])
	req.Header.Set("Content-Type", "application/json")
	// What a careful client sends, so a retry cannot create a second request.
	req.Header.Set("Idempotency-Key", key)
	r.tracker.submitting(key, person, time.Now())
	resp, err := r.client.Do(req)
	if err != nil {
		r.tracker.refuse(key, err.Error())
		return
	}
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	at := time.Now()
	if err != nil || resp.StatusCode != http.StatusAccepted {
		r.tracker.refuse(key, fmt.Sprintf("intake answered %s: %s", resp.Status, strings.TrimSpace(string(answer))))
		return
	}
	var created struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(answer, &created); err != nil || created.ID == "" {
		r.tracker.refuse(key, fmt.Sprintf("intake's answer has no request id: %s", answer))
		return
	}
	r.tracker.accept(key, created.ID, at)
}

// submitters is how many requests the bench has in flight to intake at once; the maximum-rate phase's
// window bounds it further.
const submitters = 64

// closedLoop submits n requests as fast as the system takes them, with at most window submitted and
// not yet granted: enough to keep every stage busy without an unbounded backlog.
func (r *run) closedLoop(ctx context.Context, keys []string, window chan struct{}) {
	jobs := make(chan string)
	var wg sync.WaitGroup
	for range min(submitters, cap(window)) {
		wg.Go(func() {
			for key := range jobs {
				r.submit(ctx, key)
			}
		})
	}
	defer func() { close(jobs); wg.Wait() }()
	for _, key := range keys {
		select {
		case window <- struct{}{}:
		case <-ctx.Done():
			return
		}
		select {
		case jobs <- key:
		case <-ctx.Done():
			return
		}
	}
}

// openLoop submits the requests at rate per second on a fixed schedule, whatever the system's answers:
// the load a population of users makes.
func (r *run) openLoop(ctx context.Context, keys []string, rate float64) {
	jobs := make(chan string, len(keys))
	var wg sync.WaitGroup
	for range submitters {
		wg.Go(func() {
			for key := range jobs {
				r.submit(ctx, key)
			}
		})
	}
	defer func() { close(jobs); wg.Wait() }()
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i, key := range keys {
		if wait := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		}
		jobs <- key
	}
}
