package audit

import (
	"sync"

	"github.com/grantline/grantline/pkg/events"
)

// Source calls fn with each stored event of a history in stream order and stops at fn's first error;
// ReadStream and ReadExport, bound to their arguments, are sources.
type Source func(fn func(events.Record) error) error

// batchSize is how many events a worker checks per hand-off: large enough that the channel traffic is
// small beside a batch's signatures, small enough that the fold never waits long for the next one.
const batchSize = 256

// checkBatch is a run of consecutive events, checked by one worker, then folded in order.
type checkBatch struct {
	first   int // the position of recs[0]
	recs    []events.Record
	checked []events.Checked
	done    chan struct{}
}

// Run verifies every event of src and returns the report, as Add for each event and then Finish would,
// with the same findings at the same positions. Checking an event on its own (its signature, decoding
// it, hashing it) needs nothing from the events before it, so up to workers goroutines do that at once;
// what does need them (the sequence, each request's chain and lifecycle, the checkpoints) is folded on
// one goroutine in stream order. It returns src's error, if any, after every goroutine has ended.
func (v *Verifier) Run(src Source, workers int) (*Report, error) {
	if err := v.addAll(src, workers); err != nil {
		return nil, err
	}
	return v.Finish(), nil
}

// addAll is Run without the Finish: Add for each event of src, on workers goroutines.
func (v *Verifier) addAll(src Source, workers int) error {
	workers = max(workers, 1)
	// Batches go to the workers in any order but to the fold in the order they were read; the fold's
	// queue bounds how far reading runs ahead, so memory stays flat however long the history.
	work := make(chan *checkBatch, workers)
	fold := make(chan *checkBatch, 2*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for b := range work {
				v.check(b)
				close(b.done)
			}
		})
	}
	wg.Go(func() {
		for b := range fold {
			<-b.done
			for _, ck := range b.checked {
				v.fold(ck)
			}
		}
	})

	next := v.report.Events + 1
	var cur *checkBatch
	send := func() {
		fold <- cur
		work <- cur
		next += len(cur.recs)
		cur = nil
	}
	err := src(func(rec events.Record) error {
		if cur == nil {
			cur = &checkBatch{first: next, recs: make([]events.Record, 0, batchSize), checked: make([]events.Checked, batchSize), done: make(chan struct{})}
		}
		cur.recs = append(cur.recs, rec)
		if len(cur.recs) == batchSize {
			send()
		}
		return nil
	})
	if cur != nil {
		cur.checked = cur.checked[:len(cur.recs)]
		send()
	}
	close(work)
	close(fold)
	wg.Wait()
	return err
}

// check checks b's events on their own, as Check does, verifying their signatures in batches
// (events.Verifier.CheckBatch).
func (v *Verifier) check(b *checkBatch) { v.trust.CheckBatch(b.recs, b.first, b.checked) }
