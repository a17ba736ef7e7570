package eventstore

import (
	"context"

	"github.com/grantline/grantline/pkg/events"
)

// LoadedCampaign is an access review campaign read from the evidence: its verified events and the
// aggregate folded from them.
type LoadedCampaign struct {
	loaded *Loaded
	// Campaign is the folded campaign; empty (CampaignStatusNone) for an ID with no events.
	Campaign *events.Campaign
}

// LastSeq is the stream sequence of the campaign's last event, 0 for none.
func (c *LoadedCampaign) LastSeq() uint64 { return c.loaded.LastSeq }

// Events are the campaign's verified events in order.
func (c *LoadedCampaign) Events() []events.Event { return c.loaded.Events }

// LoadCampaign reads campaign id as Load reads a request (every event verified and chained from the
// campaign ID's genesis; ErrStale while the replica that answered is behind the leader) and folds it
// into its Campaign. A campaign event the aggregate refuses returns the *events.RefusedError.
func (s *Store) LoadCampaign(ctx context.Context, id string) (*LoadedCampaign, error) {
	l, c, err := loadFolded(ctx, s, "campaign", id, events.FoldCampaign)
	if err != nil {
		return nil, err
	}
	return &LoadedCampaign{loaded: l, Campaign: c}, nil
}

// DecideCampaign returns the events to append to the campaign as it is now, or none; an error stops
// UpdateCampaign with that error.
type DecideCampaign func(c *events.Campaign) ([]events.Draft, error)

// UpdateCampaign is load → decide → append for one campaign, as UpdateLock is for a lock: a
// compare-and-set on the campaign's subjects, the campaign's rules checked before the append, reload on
// conflict. It returns the campaign as it stands after the append.
func (s *Store) UpdateCampaign(ctx context.Context, id string, decide DecideCampaign) (*LoadedCampaign, error) {
	l, c, err := updateFolded(ctx, s, "campaign", id, events.FoldCampaign, decide)
	if err != nil {
		return nil, err
	}
	return &LoadedCampaign{loaded: l, Campaign: c}, nil
}

// At returns the campaign's event stored at stream sequence seq and the campaign folded up to and with
// it (what a reader of that event sees), and false when the campaign holds no event there (the replica
// that answered may be behind).
func (c *LoadedCampaign) At(seq uint64) (events.Event, *events.Campaign, bool) {
	for i, rec := range c.loaded.Records {
		if rec.Seq == seq {
			// The events were folded once already, so they fold again.
			then, _ := events.FoldCampaign(c.Campaign.ID(), c.loaded.Events[:i+1])
			return c.loaded.Events[i], then, true
		}
	}
	return events.Event{}, nil, false
}
