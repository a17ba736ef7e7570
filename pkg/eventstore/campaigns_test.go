package eventstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// TestCampaignsAreAppendedAndLoaded: the approval service opens a campaign and records an owner's
// decision through UpdateCampaign; a load verifies and folds both; the campaign refuses a
// self-certification before anything reaches the stream; and a campaign's ID is no request.
func TestCampaignsAreAppendedAndLoaded(t *testing.T) {
	w, _ := singleNode(t)
	ctx := context.Background()
	st := w.stores[events.Approval]
	id, bobs, carols := events.NewID(), events.NewID(), events.NewID()
	rita := events.Principal{ID: "rita", Groups: []string{"governance"}}
	carol := events.Principal{ID: "carol", Groups: []string{"db-owners"}}
	item := func(req, holder string) events.CampaignItem {
		return events.CampaignItem{RequestID: req, Entitlement: "pg-prod-admin", SubjectID: holder, RequesterID: holder,
			ExpiresAt: time.Now().Add(48 * time.Hour), Owners: []string{"db-owners"}}
	}
	opened, err := st.UpdateCampaign(ctx, id, func(*events.Campaign) ([]events.Draft, error) {
		return []events.Draft{{Actor: rita.ID, Payload: events.CampaignOpened{Name: "review", CreatedBy: rita,
			Filter: events.CampaignFilter{Entitlement: "pg-prod-admin"}, Deadline: time.Now().Add(time.Hour),
			Unanswered: events.CampaignRevoke, Items: []events.CampaignItem{item(bobs, "bob"), item(carols, "carol")}}}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if opened.Campaign.Status() != events.CampaignStatusOpen || opened.LastSeq() == 0 {
		t.Fatalf("opened: %s at %d", opened.Campaign.Status(), opened.LastSeq())
	}
	decide := func(req string) error {
		_, err := st.UpdateCampaign(ctx, id, func(*events.Campaign) ([]events.Draft, error) {
			return []events.Draft{{Actor: carol.ID, Payload: events.CampaignDecided{RequestID: req, Decision: events.CampaignKeep, Reviewer: carol}}}, nil
		})
		return err
	}
	if err := decide(carols); !errors.Is(err, events.ErrRefused) {
		t.Fatalf("carol certifying her own grant: %v, want refused", err)
	}
	if err := decide(bobs); err != nil {
		t.Fatal(err)
	}
	loaded, err := w.stores[events.Revoker].LoadCampaign(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if state, _ := loaded.Campaign.State(bobs); state != events.ItemKept || len(loaded.Events()) != 2 {
		t.Fatalf("loaded: bob's grant %q with %d events", state, len(loaded.Events()))
	}
	if ev, then, ok := loaded.At(opened.LastSeq()); !ok || ev.Type != events.TypeCampaignOpened || len(then.Awaiting()) != 2 {
		t.Fatalf("the campaign at its opening: %v %v", ev.Type, ok)
	}
	if _, _, ok := loaded.At(loaded.LastSeq() + 1); ok {
		t.Fatal("an event past the campaign's last")
	}
	if _, err := w.stores[events.Intake].Load(ctx, id); !errors.Is(err, ErrNotARequest) {
		t.Fatalf("loading a campaign as a request: %v, want ErrNotARequest", err)
	}
}
