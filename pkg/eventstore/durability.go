package eventstore

import (
	"context"
	"encoding/json/v2"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// SyncProbe reports whether every NATS server behind the connection fsyncs each write before it acks
// (sync_interval: always). With the default two-minute fsync, acknowledged evidence can be lost on a
// power failure (Jepsen, NATS 2.12.1), so Grantline refuses to start without it.
type SyncProbe func(ctx context.Context) (syncAlways bool, err error)

// ErrNotDurable means a server acknowledges writes before they reach the disk.
var ErrNotDurable = errors.New("nats-server does not fsync every write (set jetstream { sync_interval: always })")

// CheckDurability runs probe and turns a negative answer into ErrNotDurable.
func CheckDurability(ctx context.Context, probe SyncProbe) error {
	if probe == nil {
		return errors.New("no durability probe configured: set the NATS monitoring URL")
	}
	ok, err := probe(ctx)
	if err != nil {
		return fmt.Errorf("check nats durability: %w", err)
	}
	if !ok {
		return ErrNotDurable
	}
	return nil
}

// EmbeddedProbe asks an in-process server for its JetStream configuration.
func EmbeddedProbe(servers ...*server.Server) SyncProbe {
	return func(context.Context) (bool, error) {
		for _, ns := range servers {
			v, err := ns.Varz(nil)
			if err != nil {
				return false, fmt.Errorf("varz of %s: %w", ns.Name(), err)
			}
			if v.JetStream.Config == nil || !v.JetStream.Config.SyncAlways {
				return false, nil
			}
		}
		return true, nil
	}
}

// MonitorProbe reads /varz from each server's HTTP monitoring endpoint (such as http://nats-1:8222).
func MonitorProbe(client *http.Client, monitorURLs ...string) SyncProbe {
	return func(ctx context.Context) (bool, error) {
		if len(monitorURLs) == 0 {
			return false, errors.New("no NATS monitoring URL configured")
		}
		for _, base := range monitorURLs {
			ok, err := varzSyncAlways(ctx, client, strings.TrimRight(base, "/")+"/varz")
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	}
}

func varzSyncAlways(ctx context.Context, client *http.Client, url string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("get %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return false, fmt.Errorf("read %s: %w", url, err)
	}
	// Only the one flag matters here; everything else in /varz is the server's business.
	var varz struct {
		JetStream struct {
			Config struct {
				SyncAlways bool `json:"sync_always"`
			} `json:"config"`
		} `json:"jetstream"`
	}
	if err := json.Unmarshal(body, &varz); err != nil {
		return false, fmt.Errorf("decode %s: %w", url, err)
	}
	return varz.JetStream.Config.SyncAlways, nil
}
