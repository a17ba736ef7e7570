package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
)

// Notifier is where the notifier tells people: a mail relay and a stand-in for Slack's Web API, both
// served by the test process on 127.0.0.1, and the Slack app's bot token and signing secret.
type Notifier struct {
	SMTPPort                               int
	SlackAPIURL, SlackToken, SigningSecret string
}

// notifierClient is the notifier's client at the identity provider, which may exchange its
// credentials for a person's token (approving from Slack).
const notifierClient = "grantline-notifier"

// StartNotifier starts the notifier container, as its own NATS user, mailing through n's relay,
// posting to n's Slack and serving Slack's callbacks at URL("notifier"), and waits until it is ready.
// The identity provider lets its client exchange tokens, with a secret made here; the reviews pressed
// in Slack go to the approval container's API. It runs until Stop or Close.
func (c *Cluster) StartNotifier(ctx context.Context, n Notifier) error {
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	clientSecret := hex.EncodeToString(secret)
	if err := c.id.issuer.AllowDelegation(notifierClient, []byte(clientSecret)); err != nil {
		return err
	}
	return c.startService(ctx, "notifier", map[string]string{
		"GRANTLINE_DIRECTORY": "/examples/directory.yaml", "GRANTLINE_NOTIFICATIONS": "/examples/notifications.yaml",
		"GRANTLINE_REPLICAS": strconv.Itoa(replicas), "GRANTLINE_NOTIFY_HOLD": "500ms",
		"GRANTLINE_SMTP_HOST": "127.0.0.1", "GRANTLINE_SMTP_PORT": strconv.Itoa(n.SMTPPort),
		"GRANTLINE_SMTP_FROM":   "grantline@example.test",
		"GRANTLINE_SLACK_TOKEN": n.SlackToken, "GRANTLINE_SLACK_API_URL": n.SlackAPIURL,
		"GRANTLINE_SLACK_SIGNING_SECRET": n.SigningSecret, "GRANTLINE_APPROVAL_URL": c.URL("approval"),
		"GRANTLINE_OIDC_TOKEN_URL": c.id.issuer.VerifierConfig().Issuer + "/token", "GRANTLINE_NOTIFIER_CLIENT_ID": notifierClient,
		"GRANTLINE_NOTIFIER_CLIENT_SECRET": clientSecret,
	})
}
