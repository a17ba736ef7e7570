// Package routing reads the notifier's routing file, a YAML file kept beside the catalogue
// (examples/notifications.yaml): which channels people are told through, by person and by group,
// their Slack user IDs, the outbound webhooks and what they hear, when reminders come, and who is
// escalated to. Loading refuses unknown keys and anything the rules could not act on.
package routing

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"slices"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/grantline/grantline/services/notifier"
)

// File is a loaded routing file: the rules' routing and where each webhook is delivered.
type File struct {
	Routing  notifier.Routing
	Webhooks []Webhook
}

// Webhook is one outbound webhook target. Its HMAC secret is configured with the notifier
// (GRANTLINE_WEBHOOK_SECRETS), never in the routing file, which is kept in git.
type Webhook struct {
	Name string
	URL  string
}

type fileYAML struct {
	DefaultChannels []notifier.Channel            `yaml:"default_channels"`
	People          map[string]personYAML         `yaml:"people"`
	Groups          map[string][]notifier.Channel `yaml:"groups"`
	Webhooks        []webhookYAML                 `yaml:"webhooks"`
	Reminders       remindersYAML                 `yaml:"reminders"`
	Escalation      escalationYAML                `yaml:"escalation"`
}

type personYAML struct {
	Channels []notifier.Channel `yaml:"channels"`
	Slack    string             `yaml:"slack"`
}

type webhookYAML struct {
	Name  string          `yaml:"name"`
	URL   string          `yaml:"url"`
	Kinds []notifier.Kind `yaml:"kinds"`
}

type remindersYAML struct {
	ExpiryWarning string `yaml:"expiry_warning"`
	ReviewEvery   string `yaml:"review_every"`
	OverdueEvery  string `yaml:"overdue_every"`
}

type escalationYAML struct {
	PostReview       []string `yaml:"post_review"`
	ManualTask       []string `yaml:"manual_task"`
	RevocationFailed []string `yaml:"revocation_failed"`
	Drift            []string `yaml:"drift"`
}

// Load reads and validates the routing file at path.
func Load(path string) (File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("read routing file: %w", err)
	}
	f, err := Parse(b)
	if err != nil {
		return File{}, fmt.Errorf("routing file %s: %w", path, err)
	}
	return f, nil
}

var (
	slackUserID = regexp.MustCompile(`^[UW][A-Z0-9]{2,20}$`)
	webhookName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
)

// Parse decodes a routing file strictly and validates it: channels and kinds must be known, a person
// routed to Slack needs a Slack user ID and no two people share one, webhooks need a unique name and
// an http(s) URL, and durations must parse and not be
// negative. Every problem is reported at once.
func Parse(b []byte) (File, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var y fileYAML
	if err := dec.Decode(&y); err != nil {
		if errors.Is(err, io.EOF) {
			return File{}, errors.New("file is empty")
		}
		return File{}, err
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	checkChannels := func(where string, cs []notifier.Channel) {
		for _, c := range cs {
			if !slices.Contains(notifier.Channels, c) || c == notifier.Webhook {
				bad("%s: channel %q is neither email nor slack", where, c)
			}
		}
	}

	f := File{Routing: notifier.Routing{Default: y.DefaultChannels, People: map[string]notifier.PersonRoute{},
		Groups: map[string][]notifier.Channel{}}}
	if len(y.DefaultChannels) == 0 {
		f.Routing.Default = []notifier.Channel{notifier.Email}
	}
	checkChannels("default_channels", f.Routing.Default)
	slackOwner := map[string]string{}
	for _, id := range sortedKeys(y.People) {
		p := y.People[id]
		checkChannels("people."+id, p.Channels)
		if p.Slack != "" && !slackUserID.MatchString(p.Slack) {
			bad("people.%s: slack %q is not a Slack user ID such as U0123ABCD", id, p.Slack)
		}
		if other, dup := slackOwner[p.Slack]; dup && p.Slack != "" {
			bad("people.%s: slack %s is already %s's", id, p.Slack, other)
		}
		slackOwner[p.Slack] = id
		f.Routing.People[id] = notifier.PersonRoute{Channels: p.Channels, Slack: p.Slack}
	}
	for _, g := range sortedKeys(y.Groups) {
		checkChannels("groups."+g, y.Groups[g])
		f.Routing.Groups[g] = y.Groups[g]
	}
	for i, w := range y.Webhooks {
		where := fmt.Sprintf("webhooks[%d]", i)
		if !webhookName.MatchString(w.Name) {
			bad("%s: name %q must be lower-case letters, digits and dashes", where, w.Name)
		}
		if slices.ContainsFunc(f.Webhooks, func(o Webhook) bool { return o.Name == w.Name }) {
			bad("%s: a second webhook named %q", where, w.Name)
		}
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("%s: url %q is not an absolute http(s) URL", where, w.URL)
		}
		for _, k := range w.Kinds {
			if !slices.Contains(notifier.Kinds, k) {
				bad("%s: unknown kind %q", where, k)
			}
		}
		f.Webhooks = append(f.Webhooks, Webhook{Name: w.Name, URL: w.URL})
		f.Routing.Webhooks = append(f.Routing.Webhooks, notifier.WebhookRoute{Name: w.Name, Kinds: w.Kinds})
	}
	duration := func(name, s string) time.Duration {
		if s == "" {
			return 0
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			bad("reminders.%s: %q is not a duration such as 15m", name, s)
		}
		return d
	}
	f.Routing.Timing = notifier.Timing{ExpiryWarning: duration("expiry_warning", y.Reminders.ExpiryWarning),
		ReviewReminder: duration("review_every", y.Reminders.ReviewEvery), OverdueRepeat: duration("overdue_every", y.Reminders.OverdueEvery)}
	f.Routing.Escalation = notifier.Escalation{PostReview: y.Escalation.PostReview, ManualTask: y.Escalation.ManualTask,
		RevocationFailed: y.Escalation.RevocationFailed, Drift: y.Escalation.Drift}
	if err := errors.Join(errs...); err != nil {
		return File{}, err
	}
	return f, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
