package faults

import (
	"crypto/sha256"
	"encoding/binary"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/audit"
	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/topology"
)

// TestBrokerRefusesOffMatrixOnEveryNode connects to each NATS node in turn as every user of the
// deployment, with the keys `grantline deploy secrets` made, and has pkg/brokeraccess try what DESIGN
// §3.3 allows and forbids: every service appending every event type, everyone deleting, purging,
// reconfiguring or recreating every stream or deleting a message from it, using others' consumers,
// buckets and timers. Each node must refuse exactly what the matrix forbids, and the streams must be
// as they were: the same configurations, and the evidence the same messages, byte for byte.
func TestBrokerRefusesOffMatrixOnEveryNode(t *testing.T) {
	logsOnFailure(t)
	users, err := deployment.NATSUsers()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range brokeraccess.Users(nil) {
		if _, ok := users[u]; !ok {
			t.Fatalf("the deployment has the NATS users %v; want each service, query, the console, the checkpointer, the auditor and the operator", users)
		}
	}
	seedEvidence(t)
	before := snapshotStreams(t)

	nodes := strings.Split(deployment.NATSURLs(), ",")
	for _, url := range nodes {
		report, err := brokeraccess.Probe(t.Context(), url, users)
		if err != nil {
			t.Fatalf("probe %s: %v", url, err)
		}
		t.Logf("as every NATS user on %s:\n%s", url, report)
		if len(report.Users) != len(users) {
			t.Errorf("%s: probed %d of %d users", url, len(report.Users), len(users))
		}
		for _, u := range report.Unexpected {
			t.Errorf("%s: %s", url, u)
		}
		for _, u := range report.Users {
			least := offMatrixAtLeast(u)
			if got := report.Refused[u]; got < least {
				t.Errorf("%s: %s was refused %d of %d attempts; the matrix forbids it at least %d (foreign event types, destroying or reconfiguring streams)",
					url, u, got, report.Attempts[u], least)
			}
		}
	}

	after := snapshotStreams(t)
	for name, cfg := range before.configs {
		if !reflect.DeepEqual(cfg, after.configs[name]) {
			t.Errorf("the configuration of %s changed during the probe:\nbefore %+v\nafter  %+v", name, cfg, after.configs[name])
		}
	}
	if before.evidence != after.evidence {
		t.Errorf("the evidence changed during the probe: before %+v, after %+v", before.evidence, after.evidence)
	}
	t.Logf("%d nodes probed; the evidence (%d messages, sequences %d to %d) and the configuration of %d streams are unchanged",
		len(nodes), after.evidence.msgs, after.evidence.firstSeq, after.evidence.lastSeq, len(after.configs))
}

// offMatrixAtLeast is how many of the probe's attempts the matrix forbids user u at least, counted
// independently of the probe: appending each event type u does not emit, and deleting, purging,
// reconfiguring, recreating or deleting a message from each stream. The operator is forbidden nothing.
func offMatrixAtLeast(u brokeraccess.User) int {
	if u == brokeraccess.Operator {
		return 0
	}
	foreign := len(events.AllTypes)
	if svc, err := events.ParseService(string(u)); err == nil {
		foreign -= len(events.TypesOf(svc))
	}
	const destructive = 5 // delete, purge, update, create, delete a message
	return foreign + destructive*len(topology.Streams())
}

// seedEvidence makes sure the evidence stream holds requests, so that "unchanged" means something:
// three granted requests for an hour, submitted as alice.
func seedEvidence(t *testing.T) {
	t.Helper()
	token, err := deployment.Token("alice")
	if err != nil {
		t.Fatal(err)
	}
	l := &load{url: deployment.URL("intake"), token: token, keyPrefix: "broker-probe-" + events.NewID(), every: 100 * time.Millisecond, count: 3,
		body:     `{"entitlement":"analytics-read","duration":"1h","justification":"evidence the broker probe must leave alone"}`,
		retryFor: 30 * time.Second, client: &http.Client{Timeout: 10 * time.Second}}
	l.run(t.Context())
	var ids []string
	for _, s := range l.submissions() {
		if s.id == "" {
			t.Fatalf("submission %d: %s", s.n, s.refusal)
		}
		ids = append(ids, s.id)
	}
	awaitEvent(t, ids, events.TypeGranted, time.Minute)
}

// streamsSnapshot is what the probe must not change: each stream's configuration, and the evidence's
// state with a digest of every message.
type streamsSnapshot struct {
	configs  map[string]jetstream.StreamConfig
	evidence evidenceState
}

type evidenceState struct {
	msgs, bytes, firstSeq, lastSeq uint64
	// digest is the SHA-256 over every message's sequence, subject, signature and body, in order.
	digest [sha256.Size]byte
}

func snapshotStreams(t *testing.T) streamsSnapshot {
	t.Helper()
	s := streamsSnapshot{configs: map[string]jetstream.StreamConfig{}}
	for _, name := range topology.Streams() {
		st, err := deployment.JetStream().Stream(t.Context(), name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		info, err := st.Info(t.Context())
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		s.configs[name] = info.Config
		if name == topology.EventsStream {
			s.evidence = evidenceState{msgs: info.State.Msgs, bytes: info.State.Bytes, firstSeq: info.State.FirstSeq, lastSeq: info.State.LastSeq}
		}
	}
	h := sha256.New()
	err := audit.ReadStream(t.Context(), deployment.JetStream(), audit.Range{}, func(r events.Record) error {
		h.Write(binary.BigEndian.AppendUint64(nil, r.Seq))
		for _, part := range []string{r.Subject, r.Signature, string(r.Body)} {
			h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(part))))
			h.Write([]byte(part))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	h.Sum(s.evidence.digest[:0])
	if s.evidence.msgs == 0 {
		t.Fatal("the evidence stream is empty")
	}
	return s
}
