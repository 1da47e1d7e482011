package accesslog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/balidx/balidx/internal/poll"
)

// sink is a concurrency-safe buffer; block, when set, holds every write
// until it is closed (a sink that cannot keep up).
type sink struct {
	mu    sync.Mutex
	b     bytes.Buffer
	block chan struct{}
}

func (s *sink) Write(p []byte) (int, error) {
	if s.block != nil {
		<-s.block
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *sink) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(s.b.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// start runs a Log; stop ends Run and waits for its last write.
func start(cfg Config) (l *Log, stop func()) {
	l = New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	return l, func() { cancel(); <-done }
}

var t0 = time.Date(2026, 12, 6, 18, 0, 0, 0, time.UTC)

func denied(at time.Time) *Line {
	return &Line{
		Time: at, Method: "GET", Route: "/v1/balances/:address", Status: 401, Latency: 42 * time.Microsecond,
		ClientIP: "203.0.113.7", UserAgent: "curl/8 \"quoted\"\n", ClientID: "wallet", AuthStatus: "invalid_signature",
		SignatureValid: false, BackendCalls: 0,
	}
}

// A denied request's line carries every field the seed names, escaped as
// JSON, and the end of Run writes it out (it is under the flush interval).
func TestLineHasEveryFieldAcrossShutdown(t *testing.T) {
	out := &sink{}
	l, stopl := start(Config{Out: out, FlushInterval: time.Hour})
	l.Write(denied(t0))
	if got := out.lines(t); len(got) != 0 {
		t.Fatalf("written before a flush: %v", got)
	}
	stopl()
	got := out.lines(t)
	if len(got) != 1 {
		t.Fatalf("%d lines after Close, want 1", len(got))
	}
	want := map[string]any{
		"time": "2026-12-06T18:00:00.000Z", "msg": "request", "method": "GET", "route": "/v1/balances/:address",
		"status": 401.0, "latency_us": 42.0, "client_ip": "203.0.113.7", "user_agent": "curl/8 \"quoted\"\n",
		"client_id": "wallet", "auth_status": "invalid_signature", "signature_valid": false, "backend_calls": 0.0,
	}
	for k, v := range want {
		if got[0][k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[0][k], v)
		}
	}
	if len(got[0]) != len(want) {
		t.Errorf("line has %d fields, want %d: %v", len(got[0]), len(want), got[0])
	}
}

// Past Rate lines a second, a source's lines fold into one summary line
// that names it, with the count and the latency range; another source is
// still written in full; a new second writes in full again.
func TestFlood(t *testing.T) {
	out := &sink{}
	l, stopl := start(Config{Out: out, Rate: 3, FlushInterval: time.Hour, FoldInterval: time.Hour})
	for i := range 1000 {
		r := denied(t0.Add(time.Duration(i) * time.Millisecond)) // all in one second
		r.Latency = time.Duration(10+i) * time.Microsecond
		l.Write(r)
	}
	other := denied(t0)
	other.ClientIP = "198.51.100.1"
	l.Write(other)
	l.Write(denied(t0.Add(time.Second))) // the next second
	stopl()
	got := out.lines(t)
	var full, other1 int
	var summary map[string]any
	for _, m := range got {
		switch {
		case m["msg"] == "requests folded":
			if summary != nil {
				t.Fatalf("two summaries: %v and %v", summary, m)
			}
			summary = m
		case m["client_ip"] == "198.51.100.1":
			other1++
		default:
			full++
		}
	}
	if full != 4 || other1 != 1 {
		t.Fatalf("%d full lines of the flood and %d of the other source, want 3+1 and 1", full, other1)
	}
	if summary == nil {
		t.Fatal("no summary line")
	}
	for k, v := range map[string]any{
		"client_ip": "203.0.113.7", "client_id": "wallet", "route": "/v1/balances/:address", "status": 401.0,
		"count": 997.0, "latency_us_min": 13.0, "latency_us_max": 1009.0, "auth_status": "invalid_signature",
		"user_agent": "curl/8 \"quoted\"\n", "first": "2026-12-06T18:00:00.003Z", "last": "2026-12-06T18:00:00.999Z",
	} {
		if summary[k] != v {
			t.Errorf("summary %s = %#v, want %#v", k, summary[k], v)
		}
	}
	if st := l.Stats(); st.Full != 5 || st.Folded != 997 || st.Summaries != 1 || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// MaxRate bounds full lines of all sources together; MaxKeys the sources
// told apart, the rest folding under "*".
func TestBounds(t *testing.T) {
	out := &sink{}
	l, stopl := start(Config{Out: out, Rate: 5, MaxRate: 7, MaxKeys: 4, FlushInterval: time.Hour, FoldInterval: time.Hour})
	for i := range 20 {
		r := denied(t0)
		r.ClientIP = "10.0.0." + string(rune('a'+i))
		l.Write(r)
	}
	stopl()
	var full, stars int
	for _, m := range out.lines(t) {
		switch {
		case m["msg"] == "request":
			full++
		case m["client_ip"] == "*":
			stars += int(m["count"].(float64))
		}
	}
	// The first 4 sources are told apart, each writing its one line; the 16
	// others share the "*" source, which writes 3 in full before MaxRate (7)
	// is reached, short of its Rate (5); the remaining 13 fold.
	if full != 7 || stars != 13 {
		t.Fatalf("%d full lines, %d folded under *; want 7 and 13", full, stars)
	}
}

// A sink that cannot keep up never blocks Write: lines are dropped and
// counted, and once it catches up, lines are written again.
func TestSlowSinkDropsAndCounts(t *testing.T) {
	out := &sink{block: make(chan struct{})}
	l, stopl := start(Config{Out: out, BufferBytes: 8 << 10, FlushInterval: time.Millisecond, Rate: 1 << 30, MaxRate: 1 << 30})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 1000 {
			l.Write(denied(t0.Add(time.Duration(i) * time.Microsecond)))
		}
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Write blocked on a stuck sink")
	}
	if st := l.Stats(); st.Dropped == 0 || st.Full != 1000 {
		t.Fatalf("stats %+v: want drops with a stuck sink", st)
	}
	close(out.block)
	poll.Until(t, time.Minute, func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.spare == nil || l.full != nil {
			return errors.New("the flusher has not caught up")
		}
		return nil
	})
	dropped := l.Stats().Dropped
	l.Write(denied(t0.Add(time.Hour)))
	stopl()
	if l.Stats().Dropped != dropped {
		t.Fatalf("dropped after the sink caught up")
	}
	got := out.lines(t)
	if last := got[len(got)-1]; last["time"] != "2026-12-06T19:00:00.000Z" {
		t.Fatalf("last line %v, want the one written after the sink caught up", last)
	}
}

// The hot path allocates nothing for a source already seen.
func TestWriteDoesNotAllocate(t *testing.T) {
	l, stopl := start(Config{Out: io.Discard, Rate: 1 << 30, MaxRate: 1 << 30})
	defer stopl()
	r := denied(t0)
	l.Write(r)
	if n := testing.AllocsPerRun(1000, func() { l.Write(r) }); n != 0 {
		t.Fatalf("%v allocations a line, want 0", n)
	}
	r.ClientIP = strings.Repeat("x", 3) // folded lines allocate nothing either
	l2, stopl2 := start(Config{Out: io.Discard, Rate: 1, FoldInterval: time.Hour})
	defer stopl2()
	l2.Write(r)
	l2.Write(r)
	if n := testing.AllocsPerRun(1000, func() { l2.Write(r) }); n != 0 {
		t.Fatalf("%v allocations a folded line, want 0", n)
	}
}

func BenchmarkWrite(b *testing.B) {
	l, stopl := start(Config{Out: io.Discard, Rate: 1 << 30, MaxRate: 1 << 30})
	defer stopl()
	r := denied(t0)
	r.UserAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"
	b.ReportAllocs()
	for b.Loop() {
		l.Write(r)
	}
}

func BenchmarkWriteFolded(b *testing.B) {
	l, stopl := start(Config{Out: io.Discard, Rate: 1, FoldInterval: time.Hour})
	defer stopl()
	r := denied(t0)
	b.ReportAllocs()
	for b.Loop() {
		l.Write(r)
	}
}
