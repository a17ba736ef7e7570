package events

import (
	"bytes"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
)

var updateSchemas = flag.Bool("update", false, "rewrite the published JSON Schemas in schema/ from the Go types")

// enumSchemas pins each closed vocabulary of the catalogue, so a schema reader sees the allowed values.
func enumSchemas() map[reflect.Type]*jsonschema.Schema {
	enum := func(values ...any) *jsonschema.Schema { return &jsonschema.Schema{Type: "string", Enum: values} }
	return map[reflect.Type]*jsonschema.Schema{
		reflect.TypeFor[SubjectKind]():       enum(SubjectHuman, SubjectServiceAccount, SubjectWorkload),
		reflect.TypeFor[Outcome]():           enum(OutcomeDeny, OutcomeApprovalRequired, OutcomeAutoApproved, OutcomeEmergency),
		reflect.TypeFor[ReviewDecision]():    enum(ReviewApprove, ReviewReject),
		reflect.TypeFor[PostReviewOutcome](): enum(PostReviewRatified, PostReviewFlagged),
		reflect.TypeFor[GroupsFrom]():        enum(GroupsFromDirectory, GroupsFromSubmission),
		reflect.TypeFor[TaskPurpose]():       enum(TaskGrant, TaskRevoke),
		reflect.TypeFor[RevocationReason]():  enum(RevokeExpired, RevokeEarly, RevokeReviewFailed, RevokeDrift, RevokeLocked, RevokeReviewRevoked),
		reflect.TypeFor[DriftKind]():         enum(DriftAfterRevocation, DriftMissing, DriftUnexplained),
		reflect.TypeFor[DriftAction]():       enum(DriftRevoke, DriftRecorded),
		reflect.TypeFor[LockScopeKind]():     enum(LockUser, LockEntitlement, LockTarget),
		reflect.TypeFor[CampaignRule]():      enum(CampaignRevoke, CampaignEscalate),
		reflect.TypeFor[CampaignDecision]():  enum(CampaignKeep, CampaignRevokes),
		reflect.TypeFor[time.Time]():         {Type: "string", Format: "date-time"},
		// The policy input a decision records: a JSON object, described in examples/policies/grantline.rego.
		reflect.TypeFor[jsontext.Value](): {Type: "object"},
	}
}

// schemaFor derives the published data schema of event type t from its payload struct.
func schemaFor(t *testing.T, typ Type) (*jsonschema.Schema, []byte) {
	t.Helper()
	ptr, _ := newPayload(typ)
	s, err := jsonschema.ForType(reflect.TypeOf(ptr).Elem(), &jsonschema.ForOptions{TypeSchemas: enumSchemas()})
	if err != nil {
		t.Fatalf("schema of %s: %v", typ.Name(), err)
	}
	s.Schema = "https://json-schema.org/draft/2020-12/schema"
	s.ID = SchemaURI(typ)
	s.Title = "Grantline " + typ.Name() + " event data (v1)"
	b, err := json.Marshal(s, jsontextIndent())
	if err != nil {
		t.Fatal(err)
	}
	return s, append(b, '\n')
}

// TestSchemasArePublished keeps schema/*.json equal to what the Go types say; run with -update after
// changing a payload.
func TestSchemasArePublished(t *testing.T) {
	for _, typ := range AllTypes {
		_, want := schemaFor(t, typ)
		path := filepath.Join("schema", typ.Name()+".json")
		if *updateSchemas {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is missing or stale; run go test ./pkg/events -run TestSchemasArePublished -update", path)
		}
	}
}

// TestEventsMatchTheirSchemas validates real payloads against the published schemas, and checks that a
// schema refuses what strict decoding refuses (an extra member).
func TestEventsMatchTheirSchemas(t *testing.T) {
	samples := []Payload{submittedPayload(false), twoStageDecision(true), emergencyDecision(), review("carol", "db-owners", 0, ReviewApprove),
		Approved{Approvers: []string{"carol"}}, Rejected{Reason: RejectedTimeout}, grantAt(t0, time.Hour),
		Revoked{Reason: RevokeExpired}, RevocationFailed{Attempts: 2, OverdueSince: t0, ErrorClass: "x", Message: "y"},
		TaskOpened{TaskID: "t", Purpose: TaskGrant, FulfillerGroups: []string{"dba"}, DueAt: t0}, Withdrawn{},
		placed(LockScope{LockUser, lockedUser}), LockRemoved{RemovedBy: security},
		escalatingCampaign(), CampaignReminded{Pending: []string{itemA}}, decided(itemA, CampaignRevokes, owner),
		CampaignEscalated{Items: []string{itemA}}, CampaignClosed{RevokedUnanswered: []string{itemB}}}
	for _, p := range samples {
		s, _ := schemaFor(t, p.EventType())
		resolved, err := s.Resolve(nil)
		if err != nil {
			t.Fatal(err)
		}
		var instance map[string]any
		b, _ := json.Marshal(p)
		if err := json.Unmarshal(b, &instance); err != nil {
			t.Fatal(err)
		}
		if err := resolved.Validate(instance); err != nil {
			t.Errorf("%s does not match its schema: %v", p.EventType().Name(), err)
		}
		instance["approved"] = true
		if err := resolved.Validate(instance); err == nil {
			t.Errorf("the %s schema accepts an unknown member", p.EventType().Name())
		}
	}
}

func jsontextIndent() json.Options { return jsontext.WithIndent("  ") }
