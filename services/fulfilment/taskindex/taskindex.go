// Package taskindex is the list behind GET /v1/tasks: the manual tasks that may still be open, one key
// per task in a JetStream key-value bucket, written by fulfilment just before it appends task_opened.
//
// Why this and not a table or a fold of the stream: the index only has to find candidates, because the
// request's own stream decides whether a task is open (the HTTP edge loads each candidate and drops
// the ones that were completed or became moot, deleting them from the index). So the index can be
// written without a transaction spanning the stream, a crash between writing it and appending leaves a
// harmless candidate, and a lost bucket is rebuilt by nothing more than fulfilment reopening the tasks
// it finds open (ReindexOpen). Open tasks are few (a queue of manual work), so listing the keys is cheap;
// folding every task_opened event of the stream on each GET would grow with history instead.
//
// The bucket also links each manual request that extends another (issue 16) to the one it extends
// (key extended.<extended request ID>, value the extension's ID), written when the extension's grant
// task opens: the extended grant's revoke task, opened later, names the extension that continues the
// access, which the extended request's own stream cannot tell. One small key per manual extension.
package taskindex

import (
	"context"
	"encoding/json/v2"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/topology"
)

// Task is what a task list shows about one task.
type Task struct {
	ID              string             `json:"id"`
	RequestID       string             `json:"request_id"`
	Purpose         events.TaskPurpose `json:"purpose"`
	FulfillerGroups []string           `json:"fulfiller_groups"`
	Instructions    string             `json:"instructions,omitempty"`
	DueAt           time.Time          `json:"due_at"`
	Entitlement     string             `json:"entitlement"`
	Requester       string             `json:"requester"`
	Subject         string             `json:"subject"`
	// ContinuedBy is events.TaskOpened's: the extension that continues the access a revoke task is about.
	ContinuedBy string `json:"continued_by,omitempty"`
}

// Index is the candidate list.
type Index struct{ kv jetstream.KeyValue }

// Open creates or opens the bucket with replicas.
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Index, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: topology.TasksBucket, History: 1, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
		Description: "Grantline fulfilment: manual tasks that may be open (the request streams decide)",
	})
	if err != nil {
		return nil, fmt.Errorf("task bucket: %w", err)
	}
	return &Index{kv: kv}, nil
}

// Put records t as a candidate; putting it again changes nothing that matters.
func (i *Index) Put(ctx context.Context, t Task) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if _, err := i.kv.Put(ctx, t.ID, b); err != nil {
		return fmt.Errorf("index task %s: %w", t.ID, err)
	}
	return nil
}

// Remove forgets task id (completed, or moot).
func (i *Index) Remove(ctx context.Context, id string) error {
	if err := i.kv.Purge(ctx, id); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("remove task %s: %w", id, err)
	}
	return nil
}

// extendedPrefix starts the keys that link an extended request to its extension, next to the tasks.
const extendedPrefix = "extended."

// Extended records that request by extends request extended, for the extended grant's revoke task.
func (i *Index) Extended(ctx context.Context, extended, by string) error {
	if _, err := i.kv.Put(ctx, extendedPrefix+extended, []byte(by)); err != nil {
		return fmt.Errorf("index extension of %s: %w", extended, err)
	}
	return nil
}

// ExtendedBy returns the request recorded as extending request extended, or "".
func (i *Index) ExtendedBy(ctx context.Context, extended string) (string, error) {
	e, err := i.kv.Get(ctx, extendedPrefix+extended)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("read extension of %s: %w", extended, err)
	}
	return string(e.Value()), nil
}

// For returns the candidate tasks that one of groups may do, oldest due first.
func (i *Index) For(ctx context.Context, groups []string) ([]Task, error) {
	keys, err := i.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	defer func() { _ = keys.Stop() }()
	var out []Task
	for key := range keys.Keys() {
		if strings.HasPrefix(key, extendedPrefix) {
			continue
		}
		e, err := i.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read task %s: %w", key, err)
		}
		var t Task
		if err := json.Unmarshal(e.Value(), &t); err != nil {
			return nil, fmt.Errorf("read task %s: %w", key, err)
		}
		if slices.ContainsFunc(groups, func(g string) bool { return slices.Contains(t.FulfillerGroups, g) }) {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b Task) int { return a.DueAt.Compare(b.DueAt) })
	return out, nil
}
