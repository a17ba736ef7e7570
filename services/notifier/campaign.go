package notifier

import "github.com/grantline/grantline/pkg/events"

// PlanCampaign decides what an access review's event tells, on campaign c as it stands after it: its
// opening asks the owners of every grant under review to keep or revoke them (CertificationRequested),
// a reminder tells the owners of the grants still pending again (CertificationReminder), and an
// escalation asks the escalation groups (CertificationRequested, escalated). Nothing else a campaign
// records tells anyone: a revocation it causes is told as the request's own.
func (r Rules) PlanCampaign(ev events.Event, c *events.Campaign) Plan {
	o := c.Opened()
	facts := Facts{Campaign: o.Name, Entitlement: Entitlement{ID: o.Filter.Entitlement}}
	if e, ok := r.Catalogue.Entitlement(o.Filter.Entitlement); ok {
		facts.Entitlement = e
	}
	a := r.audience()
	kind, escalated, deadline := CertificationRequested, false, c.Deadline()
	var pending []string
	switch p := ev.Payload.(type) {
	case events.CampaignOpened:
		pending = c.Awaiting()
		deadline = o.Deadline
	case events.CampaignReminded:
		kind, pending = CertificationReminder, p.Pending
	case events.CampaignEscalated:
		escalated, pending = true, p.Items
		a.groups(o.EscalateTo, true, nil)
	default:
		return Plan{}
	}
	if !escalated {
		for _, id := range pending {
			it, _ := c.Item(id)
			a.groups(it.Owners, false, nil)
		}
	}
	facts.Grants, facts.Deadline = len(pending), &deadline
	var plan Plan
	r.tell(&plan, a, ev.ID, c.ID(), kind, facts)
	return plan
}
