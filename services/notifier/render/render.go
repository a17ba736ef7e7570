// Package render turns notifications into what people read: an e-mail subject with a plain-text and an
// HTML body, and Slack Block Kit blocks (with Approve and Reject buttons on a review request). Several
// notifications for one person render as one digest.
//
// Every message is built once as a view (a title, labelled facts, a footer) and then written three
// ways, so the channels never say different things.
package render

import (
	"bytes"
	"encoding/json/v2"
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/notifier"
)

// Message is a notification rendered for every channel.
type Message struct {
	Subject string
	Text    string
	HTML    string
	// Blocks are the Slack Block Kit blocks; Subject doubles as the notification text Slack shows where
	// blocks cannot be.
	Blocks []slack.Block
}

// The Slack action IDs of the review buttons.
const (
	ActionApprove = "grantline_approve"
	ActionReject  = "grantline_reject"
)

// ReviewAction is the value a review button carries back: the request and the version of it that the
// reviewer saw, so a review from Slack is bound to what the message showed.
type ReviewAction struct {
	RequestID     string `json:"request_id"`
	RequestDigest string `json:"request_digest"`
}

// ParseReviewAction decodes a button's value.
func ParseReviewAction(value string) (ReviewAction, error) {
	var a ReviewAction
	if err := json.Unmarshal([]byte(value), &a); err != nil || a.RequestID == "" {
		return ReviewAction{}, fmt.Errorf("button value %q is not a review action", value)
	}
	return a, nil
}

type fact struct{ Label, Value string }

// view is one notification's content, before it is written for a channel.
type view struct {
	Title  string
	Facts  []fact
	Footer string
	// Review is set for a review request: the message offers Approve and Reject.
	Review *ReviewAction
}

// Render renders n.
func Render(n notifier.Notification) Message {
	v := viewOf(n)
	var text strings.Builder
	writeText(&text, v)
	return Message{Subject: v.Title, Text: text.String(), HTML: writeHTML(v.Title, []view{v}), Blocks: sectionBlocks(v)}
}

// Digest renders several notifications for one person as one message, in the order given.
func Digest(ns []notifier.Notification) Message {
	if len(ns) == 1 {
		return Render(ns[0])
	}
	views := make([]view, len(ns))
	var text strings.Builder
	subject := fmt.Sprintf("%d updates on access requests", len(ns))
	blocks := []slack.Block{slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, subject, false, false))}
	for i, n := range ns {
		views[i] = viewOf(n)
		if i > 0 {
			text.WriteString("\n----\n\n")
			blocks = append(blocks, slack.NewDividerBlock())
		}
		writeText(&text, views[i])
		blocks = append(blocks, sectionBlocks(views[i])...)
	}
	return Message{Subject: subject, Text: text.String(), HTML: writeHTML(subject, views), Blocks: blocks}
}

const timeLayout = "2006-01-02 15:04 MST"

func when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}

func who(p notifier.Person) string {
	if p.Name == "" || p.Name == p.ID {
		return p.ID
	}
	return p.Name + " (" + p.ID + ")"
}

func viewOf(n notifier.Notification) view {
	f := n.Facts
	ent := f.Entitlement.ID
	what := ent
	if f.Entitlement.Description != "" {
		what += " — " + f.Entitlement.Description
	}
	holder := ""
	if f.Subject.ID != "" && f.Subject.ID != f.Requester.ID {
		holder = f.Subject.ID + " (" + string(f.Subject.Kind) + ")"
	}
	request := []fact{{"Request", n.RequestID}, {"Requested by", who(f.Requester)}, {"Entitlement", what}, {"For", holder},
		{"Why", f.Justification}, {"Ticket", f.Ticket}, {"How long", duration(f).String()}}
	policy := fact{"Policy said", strings.Join(f.PolicyReasons, "; ")}
	show := fmt.Sprintf("See it with: grantline request show %s", n.RequestID)
	prefix := ""
	if n.Escalated {
		prefix = "[Escalated] "
	}

	v := view{Footer: show}
	switch n.Kind {
	case notifier.ReviewRequested, notifier.ReviewReminder:
		v.Title = fmt.Sprintf("Review requested: %s asks for %s", f.Requester.ID, ent)
		if n.Kind == notifier.ReviewReminder {
			v.Title = "Reminder: " + v.Title
		}
		v.Facts = append(request, policy, fact{"Your stage", stageOf(f)}, fact{"Review by", when(f.Deadline)})
		v.Footer = fmt.Sprintf("Approve or reject with: grantline review approve %s (or reject)", n.RequestID)
		v.Review = &ReviewAction{RequestID: n.RequestID, RequestDigest: f.RequestDigest}
	case notifier.AwaitingApproval:
		v.Title = fmt.Sprintf("Your request for %s awaits approval", ent)
		v.Facts = append(request, policy, fact{"Approval by", strings.Join(f.StageGroups, ", ")}, fact{"Decided by", when(f.Deadline)})
	case notifier.Denied:
		v.Title = fmt.Sprintf("Denied: your request for %s", ent)
		v.Facts = append(request, policy, fact{"Policy revision", f.PolicyRevision})
	case notifier.Approved:
		v.Title = fmt.Sprintf("Approved: your request for %s", ent)
		v.Facts = append(request, fact{"Approved by", strings.Join(f.Approvers, ", ")})
	case notifier.Rejected:
		v.Title = fmt.Sprintf("Rejected: your request for %s", ent)
		reason := "rejected by " + f.RejectedBy
		if f.RejectedBy == "" {
			reason = "nobody approved it before the approval window ended"
		}
		v.Facts = append(request, fact{"Outcome", reason})
	case notifier.Granted:
		v.Title = fmt.Sprintf("Granted: %s until %s", ent, when(f.ExpiresAt))
		v.Facts = append(request, fact{"Access ends", when(f.ExpiresAt)}, fact{"Target shows", observed(f)})
	case notifier.FulfilmentFailed:
		v.Title = fmt.Sprintf("Could not grant %s", ent)
		v.Facts = append(request, fact{"Error", f.Error}, fact{"Attempts", fmt.Sprint(f.Attempts)})
		v.Footer = fmt.Sprintf("Ask again with: grantline request create --again %s", n.RequestID)
	case notifier.ExpiryWarning:
		v.Title = fmt.Sprintf("Your access to %s ends at %s", ent, when(f.ExpiresAt))
		v.Facts = append(request, fact{"Access ends", when(f.ExpiresAt)})
		v.Footer = fmt.Sprintf("To keep it, ask again: grantline request create --entitlement %s --justification \"…\" --duration %s",
			ent, duration(f))
	case notifier.Revoked:
		v.Title = fmt.Sprintf("Access ended: %s (%s)", ent, f.Reason)
		v.Facts = append(request, fact{"Reason", f.Reason}, fact{"Target shows", observed(f)})
	case notifier.PostReviewDue:
		v.Title = fmt.Sprintf("Post-review due: emergency access to %s by %s", ent, f.Requester.ID)
		v.Facts = append(request, policy, fact{"Post-review by", when(f.Deadline)})
		v.Footer = fmt.Sprintf("Ratify or flag with: grantline review post-review %s", n.RequestID)
	case notifier.PostReviewOverdue:
		v.Title = prefix + fmt.Sprintf("Overdue post-review: emergency access to %s by %s", ent, f.Requester.ID)
		v.Facts = append(request, fact{"Was due", when(f.Deadline)})
	case notifier.TaskOpened, notifier.TaskOverdue:
		v.Title = fmt.Sprintf("Manual task %s: %s for %s", f.TaskID, ent, f.Requester.ID)
		if n.Kind == notifier.TaskOverdue {
			v.Title = prefix + "Overdue " + strings.ToLower(v.Title[:1]) + v.Title[1:]
		}
		v.Facts = append(request, fact{"Instructions", f.Instructions}, fact{"Due", when(f.Deadline)})
		v.Footer = fmt.Sprintf("Complete it with: grantline task complete %s", f.TaskID)
	case notifier.RevocationFailed:
		v.Title = prefix + fmt.Sprintf("Revocation failing: %s of %s", ent, f.Requester.ID)
		v.Facts = append(request, fact{"Revocation due since", when(f.OverdueSince)}, fact{"Reason", f.Reason},
			fact{"Attempts", fmt.Sprint(f.Attempts)}, fact{"Error", f.Error})
	case notifier.CertificationRequested, notifier.CertificationReminder:
		v.Title = prefix + fmt.Sprintf("Access review %q: keep or revoke %d grants by %s", f.Campaign, f.Grants, when(f.Deadline))
		if n.Kind == notifier.CertificationReminder {
			v.Title = "Reminder: " + v.Title
		}
		v.Facts = []fact{{"Campaign", n.RequestID}, {"Entitlement", what}, {"Answer by", when(f.Deadline)}}
		v.Footer = fmt.Sprintf("See the grants with: grantline review campaign show %s, then decide each with: grantline review campaign decide %s <request-id> keep|revoke",
			n.RequestID, n.RequestID)
	case notifier.DriftDetected:
		v.Title, v.Facts = driftView(n, request)
		v.Title = prefix + v.Title
		if f.Reason == string(events.DriftUnexplained) {
			v.Footer = fmt.Sprintf("See it with: grantline audit replay %s", n.RequestID)
		}
	default:
		v.Title = fmt.Sprintf("%s: %s", n.Kind, ent)
		v.Facts = request
	}
	// Facts without a value are left out rather than shown empty.
	kept := v.Facts[:0]
	for _, f := range v.Facts {
		if f.Value != "" {
			kept = append(kept, f)
		}
	}
	v.Facts = kept
	return v
}

// driftView says what a drift notification tells: the kind in words, and the target's evidence; a
// finding belongs to no request, so it shows the finding instead of a request's facts.
func driftView(n notifier.Notification, request []fact) (string, []fact) {
	f := n.Facts
	shows := []fact{{"Target", f.Target}, {"Target shows", observed(f)}}
	switch events.DriftKind(f.Reason) {
	case events.DriftAfterRevocation:
		return fmt.Sprintf("Drift: access to %s of %s was back after its revocation; revoked again", f.Entitlement.ID, f.Requester.ID),
			append(request, shows...)
	case events.DriftMissing:
		return fmt.Sprintf("Drift: access to %s of %s is missing on the target", f.Entitlement.ID, f.Requester.ID), append(request, shows...)
	}
	return fmt.Sprintf("Drift: access that no request explains on %s", f.Target), append([]fact{{"Finding", n.RequestID}}, shows...)
}

func duration(f notifier.Facts) time.Duration { return time.Duration(f.DurationSeconds) * time.Second }

func stageOf(f notifier.Facts) string {
	if len(f.StageGroups) == 0 {
		return f.Stage
	}
	return f.Stage + " (" + strings.Join(f.StageGroups, ", ") + ")"
}

func observed(f notifier.Facts) string {
	if f.Observed == nil {
		return ""
	}
	s := "absent"
	if f.Observed.Present {
		s = "present"
	}
	for k, v := range f.Observed.Detail {
		s += fmt.Sprintf("; %s=%s", k, v)
	}
	return s
}

func writeText(b *strings.Builder, v view) {
	b.WriteString(v.Title + "\n\n")
	for _, f := range v.Facts {
		fmt.Fprintf(b, "%s: %s\n", f.Label, f.Value)
	}
	if v.Footer != "" {
		b.WriteString("\n" + v.Footer + "\n")
	}
}

var page = template.Must(template.New("mail").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body style="font-family: sans-serif">
{{range $i, $v := .Views}}{{if $i}}<hr>{{end}}
<h2>{{$v.Title}}</h2>
<table>{{range $v.Facts}}
<tr><th style="text-align: left; padding-right: 1em">{{.Label}}</th><td>{{.Value}}</td></tr>{{end}}
</table>
{{if $v.Footer}}<p><code>{{$v.Footer}}</code></p>{{end}}
{{end}}</body></html>
`))

func writeHTML(title string, views []view) string {
	var b bytes.Buffer
	// The template is fixed and its data are strings: executing it cannot fail.
	_ = page.Execute(&b, struct {
		Title string
		Views []view
	}{title, views})
	return b.String()
}

// sectionBlocks writes v as a title, its facts as fields, its footer as context, and the review
// buttons for a review request.
func sectionBlocks(v view) []slack.Block {
	blocks := []slack.Block{slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "*"+escape(v.Title)+"*", false, false), nil, nil)}
	var fields []*slack.TextBlockObject
	for _, f := range v.Facts {
		fields = append(fields, slack.NewTextBlockObject(slack.MarkdownType, "*"+escape(f.Label)+"*\n"+escape(f.Value), false, false))
		// A section holds at most 10 fields.
		if len(fields) == 10 {
			blocks = append(blocks, slack.NewSectionBlock(nil, fields, nil))
			fields = nil
		}
	}
	if len(fields) > 0 {
		blocks = append(blocks, slack.NewSectionBlock(nil, fields, nil))
	}
	if v.Review != nil {
		value, _ := json.Marshal(v.Review)
		approve := slack.NewButtonBlockElement(ActionApprove, string(value), slack.NewTextBlockObject(slack.PlainTextType, "Approve", false, false))
		approve.Style = slack.StylePrimary
		rejectBtn := slack.NewButtonBlockElement(ActionReject, string(value), slack.NewTextBlockObject(slack.PlainTextType, "Reject", false, false))
		rejectBtn.Style = slack.StyleDanger
		blocks = append(blocks, slack.NewActionBlock("review:"+v.Review.RequestID, approve, rejectBtn))
	} else if v.Footer != "" {
		blocks = append(blocks, slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, escape(v.Footer), false, false)))
	}
	return blocks
}

// escape keeps Slack from reading &, < and > in people's text as markup (links, mentions).
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
