// Package slackchat sends deliveries as Slack direct messages through the Web API's chat.postMessage,
// with Block Kit blocks (github.com/slack-go/slack pointed at a configurable API URL), and replaces a
// message with chat.update once a review pressed in it has an outcome.
package slackchat

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/slack-go/slack"

	"github.com/grantline/grantline/services/notifier/channel"
	"github.com/grantline/grantline/services/notifier/render"
)

// Config says how to reach Slack.
type Config struct {
	// Token is the bot token (xoxb-…).
	Token string
	// APIURL is the Web API's base URL, ending in "/api/"; defaults to Slack's own.
	APIURL string
}

// Sender posts and updates Slack messages.
type Sender struct {
	client *slack.Client
}

// New returns a sender for cfg; it fails without a token.
func New(cfg Config) (*Sender, error) {
	if cfg.Token == "" {
		return nil, errors.New("slack: a bot token is required")
	}
	opts := []slack.Option{}
	if cfg.APIURL != "" {
		opts = append(opts, slack.OptionAPIURL(cfg.APIURL))
	}
	return &Sender{client: slack.New(cfg.Token, opts...)}, nil
}

// Send posts d (a digest when it carries several notifications) as a direct message to the Slack user
// d.Address. The receipt's Ref is "<channel>/<ts>", which Update takes. An answer Slack documents as
// final for this message (no such user or channel, blocks it refuses) is a permanent error; a rate
// limit is transient with Slack's Retry-After; anything else is transient.
func (s *Sender) Send(ctx context.Context, d channel.Delivery) (channel.Receipt, error) {
	msg := render.Digest(d.Notifications)
	ch, ts, err := s.client.PostMessageContext(ctx, d.Address, slack.MsgOptionText(msg.Subject, false), slack.MsgOptionBlocks(msg.Blocks...))
	if err != nil {
		return channel.Receipt{}, classify("post to "+d.Address, err)
	}
	return channel.Receipt{Ref: ch + "/" + ts}, nil
}

// Update replaces the message at ref ("<channel>/<ts>") with text and blocks. Errors are classified
// as Send's.
func (s *Sender) Update(ctx context.Context, ref, text string, blocks []slack.Block) error {
	ch, ts, ok := strings.Cut(ref, "/")
	if !ok || ch == "" || ts == "" {
		return channel.Permanent(fmt.Errorf("slack: %q is not <channel>/<ts>", ref))
	}
	if _, _, _, err := s.client.UpdateMessageContext(ctx, ch, ts, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...)); err != nil {
		return classify("update "+ref, err)
	}
	return nil
}

// permanent are the chat.postMessage and chat.update errors that say this message can never be
// posted as it is.
var permanent = map[string]bool{
	"channel_not_found": true, "user_not_found": true, "is_archived": true, "msg_too_long": true, "no_text": true,
	"invalid_blocks": true, "invalid_blocks_format": true, "too_many_attachments": true, "message_not_found": true,
	"cant_update_message": true, "edit_window_closed": true, "user_disabled": true, "not_in_channel": true,
}

func classify(what string, err error) error {
	err = fmt.Errorf("slack %s: %w", what, err)
	var rl *slack.RateLimitedError
	var apiErr slack.SlackErrorResponse
	switch {
	case errors.As(err, &rl):
		return channel.RetryAfter(err, rl.RetryAfter)
	case errors.As(err, &apiErr) && permanent[apiErr.Err]:
		return channel.Permanent(err)
	}
	return err
}
