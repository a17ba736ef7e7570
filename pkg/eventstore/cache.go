package eventstore

import (
	"container/list"
	"slices"
	"sync"
)

// DefaultCacheBytes is how much memory a store's request cache may take by default: a thousand or more
// requests of a few events, some seconds of the lifecycle at 500 requests/s, which is as long as a
// reaction waits for the next event of a request it holds. The garbage collector lets the heap grow to
// about twice what is live, so this stays well inside a service's 64 MB.
const DefaultCacheBytes = 8 << 20

// requestCache holds the requests a store verified lately, each as a complete, verified prefix of its
// chain (the folded request, its records and events), its head hash and its last stream sequence, so
// that a reaction folds the event it was delivered onto the request it already holds instead of loading
// it again. What goes in was verified (a load) or written (an append) by this store, and what is folded
// onto it is verified and must link to the head, so the cache never holds anything the chain does not
// vouch for. It may be behind the stream: freshness is the compare-and-set's job, as for any load.
//
// It is bounded by an estimate of the memory its entries take, not by their number (a request with
// hundreds of reviews weighs what hundreds of small ones do), and forgets the least recently used
// request first.
type requestCache struct {
	mu       sync.Mutex
	maxBytes int
	bytes    int
	order    *list.List // of *cached, most recently used first
	byID     map[string]*list.Element
}

type cached struct {
	l     *Loaded
	head  string
	bytes int
}

func newRequestCache(maxBytes int) *requestCache {
	return &requestCache{maxBytes: maxBytes, order: list.New(), byID: map[string]*list.Element{}}
}

// get returns request id as the cache holds it and its head hash, or nil.
func (c *requestCache) get(id string) (*Loaded, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byID[id]
	if !ok {
		return nil, ""
	}
	c.order.MoveToFront(e)
	entry := e.Value.(*cached)
	return entry.l, entry.head
}

// put remembers l unless the cache holds the request at a later sequence already. The slices are
// clipped so that an append to a shared Loaded never writes into another's backing array.
func (c *requestCache) put(l *Loaded) {
	if l == nil || len(l.Records) == 0 {
		return
	}
	l = &Loaded{ID: l.ID, Records: slices.Clip(l.Records), Events: slices.Clip(l.Events), Request: l.Request, LastSeq: l.LastSeq}
	entry := &cached{l: l, head: l.head(), bytes: weight(l)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byID[l.ID]; ok {
		old := e.Value.(*cached)
		if old.l.LastSeq >= l.LastSeq {
			c.order.MoveToFront(e)
			return
		}
		c.bytes -= old.bytes
		c.order.Remove(e)
		delete(c.byID, l.ID)
	}
	if entry.bytes > c.maxBytes {
		return
	}
	c.byID[l.ID] = c.order.PushFront(entry)
	c.bytes += entry.bytes
	for c.bytes > c.maxBytes {
		last := c.order.Back()
		old := last.Value.(*cached)
		c.order.Remove(last)
		delete(c.byID, old.l.ID)
		c.bytes -= old.bytes
	}
}

// weight estimates the memory l takes on the heap: each event four times over (the stored body, the
// decoded event, its share of the folded request, allocation overhead) plus the fixed cost of a record
// and of an entry. Measured on requests of two events, the heap grew by 7.5 kB per cached request; this
// says 8 kB.
func weight(l *Loaded) int {
	n := 512 + len(l.ID)
	for _, rec := range l.Records {
		n += 4*len(rec.Body) + len(rec.Subject) + len(rec.Signature) + 512
	}
	return n
}
