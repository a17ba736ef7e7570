package bench

import (
	"strings"
	"testing"
	"time"
)

// TestJudgeKeepUp: the verdict on whether every consumer kept up with a phase, from its backlog
// samples. The submissions run for 8 s at 100 requests/s, so the bound is 100 waiting and the judged
// window is 4 s to 8 s, its third quarter 4 s to 6 s and its last 6 s to 8 s.
func TestJudgeKeepUp(t *testing.T) {
	first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	last := first.Add(8 * time.Second)
	// series is one backlog sample per second from 0 s to 10 s for each consumer, in that order.
	series := func(lags map[string][]uint64) []lagSample {
		var out []lagSample
		for i := range 11 {
			s := lagSample{at: first.Add(time.Duration(i) * time.Second), lag: map[string]uint64{}}
			for name, l := range lags {
				s.lag[name] = l[i]
			}
			out = append(out, s)
		}
		return out
	}
	steady := []uint64{0, 5, 8, 6, 7, 5, 8, 6, 7, 0, 0}
	tests := []struct {
		name       string
		samples    []lagSample
		submitRate float64
		offered    bool
		// behind are the consumers (or "submissions") reported as not keeping up; none means kept up.
		behind []string
	}{
		{name: "small steady backlogs keep up",
			samples: series(map[string][]uint64{"policy": steady, "approval": steady}), submitRate: 100, offered: true},
		{name: "a backlog that filled the pipeline in the first half and then held keeps up",
			samples: series(map[string][]uint64{"policy": {0, 400, 900, 60, 60, 70, 60, 70, 60, 0, 0}}), submitRate: 100, offered: true},
		{name: "a backlog past one second of requests in the last half falls behind",
			samples: series(map[string][]uint64{"policy": steady, "approval": {0, 20, 40, 60, 80, 101, 90, 80, 70, 0, 0}}), submitRate: 100, offered: true,
			behind: []string{"approval"}},
		{name: "a backlog under the bound but growing falls behind",
			samples: series(map[string][]uint64{"query (ordered)": {0, 0, 0, 0, 10, 20, 40, 60, 80, 90, 0}}), submitRate: 100, offered: true,
			behind: []string{"query (ordered)"}},
		{name: "a backlog after the submissions ended, while draining, is not judged",
			samples: series(map[string][]uint64{"policy": {0, 5, 5, 5, 5, 5, 5, 5, 5, 900, 900}}), submitRate: 100, offered: true},
		{name: "submissions held back below the offered rate fall behind",
			samples: series(map[string][]uint64{"policy": steady}), submitRate: 90, offered: true,
			behind: []string{"submissions"}},
		{name: "the maximum rate has no offered rate to achieve",
			samples: series(map[string][]uint64{"policy": steady}), submitRate: 20, offered: false},
		{name: "no sample in the judged window is no verdict of keeping up",
			samples: series(map[string][]uint64{"policy": steady})[:3], submitRate: 100, offered: true,
			behind: []string{"no backlog sample"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := judgeKeepUp(tt.samples, first, last, 100, tt.submitRate, tt.offered)
			if k.Bound != 100 {
				t.Errorf("bound %d, want one second of requests, 100", k.Bound)
			}
			if k.Kept != (len(tt.behind) == 0) || len(k.Behind) != len(tt.behind) {
				t.Fatalf("kept %v, behind %q; want behind %q", k.Kept, k.Behind, tt.behind)
			}
			for i, who := range tt.behind {
				if !strings.Contains(k.Behind[i], who) {
					t.Errorf("behind %q, want %q named", k.Behind[i], who)
				}
			}
		})
	}
}

// TestKeepUpBoundHasAFloor: at a low rate a few deliveries in flight are no backlog.
func TestKeepUpBoundHasAFloor(t *testing.T) {
	first := time.Now()
	samples := []lagSample{{at: first.Add(3 * time.Second), lag: map[string]uint64{"policy": minLagBound}}}
	k := judgeKeepUp(samples, first, first.Add(4*time.Second), 5, 5, true)
	if !k.Kept || k.Bound != minLagBound {
		t.Errorf("at 5 requests/s with %d waiting: %+v, want kept up under the floor %d", minLagBound, k, minLagBound)
	}
}

// TestNextRate: the search for the highest rate every consumer keeps up with, step by step, starting
// at 100 requests/s.
func TestNextRate(t *testing.T) {
	tests := []struct {
		name   string
		lo, hi float64
		want   float64
	}{
		{name: "the first step offers the maximum phase's rate", want: 100},
		{name: "while every step kept up, each offers half as much again", lo: 100, want: 150},
		{name: "and again", lo: 150, want: 225},
		{name: "once a step fell behind, the steps bisect", lo: 150, hi: 225, want: 187.5},
		{name: "the first step fell behind: bisect down from it", hi: 100, want: 50},
		{name: "nothing kept up yet: bisect further down", hi: 50, want: 25},
	}
	for _, tt := range tests {
		if got := nextRate(100, tt.lo, tt.hi); got != tt.want {
			t.Errorf("%s: kept up at %.1f, fell behind at %.1f: next %.1f, want %.1f", tt.name, tt.lo, tt.hi, got, tt.want)
		}
	}
}
