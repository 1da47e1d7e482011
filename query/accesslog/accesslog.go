// Package accesslog is the query tier's access log: one JSON line per
// request, with what seed chapter 1 asks for, at the cost of a buffer
// append, and bounded under a flood.
//
//   - Lines are formatted by zerolog (no allocation, JSON escaping done
//     right) into a buffer in memory; Run writes the buffer to the sink
//     every FlushInterval, when it fills, and when it ends. A request never
//     waits for the sink: when both buffers are full (the sink is behind),
//     the line is dropped and counted (Stats.Dropped).
//   - Each source — (client_ip, client_id, route, status) — writes up to
//     Rate lines a second in full, and all of them together up to MaxRate;
//     beyond, a source's lines fold into one summary line per FoldInterval
//     with their count, the range of their latencies and the sum of their
//     snapshot reads. A flood thus writes a bounded number of lines that
//     still name its sources. At most MaxKeys sources are told apart in an
//     interval; past them, lines fold by route and status alone (client_ip
//     and client_id "*"). So at most MaxRate + (MaxKeys + routes ×
//     statuses) / FoldInterval lines a second are written, whatever the
//     load.
//   - A SIGKILL loses what is not yet written: at most FlushInterval of
//     lines, and the folded counts of the current FoldInterval.
package accesslog

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Defaults of a Config.
const (
	DefaultRate          = 10
	DefaultMaxRate       = 1000
	DefaultFoldInterval  = 10 * time.Second
	DefaultFlushInterval = 200 * time.Millisecond
	DefaultBufferBytes   = 1 << 20
	DefaultMaxKeys       = 4096
)

// maxUserAgent bounds the user agent logged.
const maxUserAgent = 128

// Config configures a Log. Zero fields take the defaults named.
type Config struct {
	Out           io.Writer     // the sink
	Rate          int           // full lines a second per source; DefaultRate
	MaxRate       int           // full lines a second in all; DefaultMaxRate
	FoldInterval  time.Duration // how often folded lines are summarized; DefaultFoldInterval
	FlushInterval time.Duration // how often the buffer is written; DefaultFlushInterval
	BufferBytes   int           // lines held unwritten at most (two buffers of half); DefaultBufferBytes
	MaxKeys       int           // sources told apart in a FoldInterval; DefaultMaxKeys
}

// Line is one request. Its strings are only read during Write.
type Line struct {
	Time           time.Time // when it ended
	Method, Route  string
	Status         int
	Latency        time.Duration
	ClientIP       string
	UserAgent      string
	ClientID       string
	AuthStatus     string
	SignatureValid bool
	BackendCalls   int // snapshot reads
}

// Stats counts lines since the start.
type Stats struct {
	Full      uint64 // lines logged in full
	Folded    uint64 // lines folded into a summary
	Summaries uint64 // summary lines
	Dropped   uint64 // lines (full or summary) lost because the sink was behind
}

// Log is an access log. Write is safe for concurrent use.
type Log struct {
	cfg Config

	mu    sync.Mutex
	zl    zerolog.Logger // formats into buf (appender); used under mu
	buf   []byte         // being filled
	spare []byte         // the other buffer; nil while it is being written
	full  []byte         // a full buffer handed to the flusher, not yet taken
	keys  map[key]*source
	// The second full lines are counted in, and how many were written.
	second int64
	lines  int
	since  time.Time // start of the current FoldInterval
	// A line's time, formatted: the second's part once a second (tsec).
	tbuf    [32]byte
	tsec    int64
	tprefix []byte

	kick chan struct{}

	fullLines, folded, summaries, dropped atomic.Uint64
}

// key tells sources apart.
type key struct {
	ip, clientID, route string
	status              int
}

// source is what the current FoldInterval saw of one key.
type source struct {
	second int64 // the second lines are counted in
	lines  int   // lines written in full in that second
	// Folded lines: their count, latency range, reads, and the first
	// one's other fields.
	n              int
	first, last    time.Time
	minLat, maxLat time.Duration
	reads          int
	method         string
	userAgent      string
	authStatus     string
	signatureValid bool
}

// New makes a Log; Run writes it out.
func New(cfg Config) *Log {
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.MaxRate == 0 {
		cfg.MaxRate = DefaultMaxRate
	}
	if cfg.FoldInterval == 0 {
		cfg.FoldInterval = DefaultFoldInterval
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.BufferBytes == 0 {
		cfg.BufferBytes = DefaultBufferBytes
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	l := &Log{
		cfg:   cfg,
		buf:   make([]byte, 0, cfg.BufferBytes/2),
		spare: make([]byte, 0, cfg.BufferBytes/2),
		keys:  make(map[key]*source),
		since: time.Now(),
		kick:  make(chan struct{}, 1),
	}
	l.zl = zerolog.New(appender{l})
	return l
}

// Write logs one request: in full, or folded into its source's summary.
func (l *Log) Write(r *Line) {
	ua := r.UserAgent
	if len(ua) > maxUserAgent {
		ua = ua[:maxUserAgent]
	}
	k := key{ip: r.ClientIP, clientID: r.ClientID, route: r.Route, status: r.Status}
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.keys[k]
	if !ok {
		if len(l.keys) >= l.cfg.MaxKeys {
			k.ip, k.clientID = "*", "*"
			s, ok = l.keys[k]
		}
		if !ok {
			k.ip, k.clientID, k.route = clone(k.ip), clone(k.clientID), clone(k.route)
			s = &source{}
			l.keys[k] = s
		}
	}
	sec := r.Time.Unix()
	if sec != l.second {
		l.second, l.lines = sec, 0
	}
	if sec != s.second {
		s.second, s.lines = sec, 0
	}
	if s.lines < l.cfg.Rate && l.lines < l.cfg.MaxRate {
		s.lines++
		l.lines++
		l.fullLines.Add(1)
		l.zl.Log().
			Bytes("time", l.appendTime(l.tbuf[:0], r.Time)).
			Str("msg", "request").
			Str("method", r.Method).
			Str("route", r.Route).
			Int("status", r.Status).
			Int64("latency_us", r.Latency.Microseconds()).
			Str("client_ip", r.ClientIP).
			Str("user_agent", ua).
			Str("client_id", r.ClientID).
			Str("auth_status", r.AuthStatus).
			Bool("signature_valid", r.SignatureValid).
			Int("backend_calls", r.BackendCalls).
			Send()
		return
	}
	l.folded.Add(1)
	if s.n == 0 {
		s.first, s.minLat, s.maxLat = r.Time, r.Latency, r.Latency
		s.method, s.userAgent, s.authStatus, s.signatureValid = clone(r.Method), clone(ua), clone(r.AuthStatus), r.SignatureValid
	}
	s.n++
	s.last = r.Time
	s.minLat, s.maxLat = min(s.minLat, r.Latency), max(s.maxLat, r.Latency)
	s.reads += r.BackendCalls
}

// timeFormat is RFC 3339 with milliseconds, in UTC.
const timeFormat = "2006-01-02T15:04:05.000Z"

// appendTime appends t as timeFormat does; under l.mu.
func (l *Log) appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	if sec := t.Unix(); sec != l.tsec || l.tprefix == nil {
		l.tsec, l.tprefix = sec, t.AppendFormat(l.tprefix[:0], "2006-01-02T15:04:05.")
	}
	ms := t.Nanosecond() / 1e6
	return append(append(b, l.tprefix...), byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}

// clone copies s unless it is empty: a key outlives the request whose
// strings it was made of.
func clone(s string) string {
	if s == "" {
		return ""
	}
	return string([]byte(s))
}

// summarizeLocked writes a summary line for each source that folded lines
// in the interval ending at now, and starts the next interval.
func (l *Log) summarizeLocked(now time.Time) {
	for k, s := range l.keys {
		if s.n == 0 {
			continue
		}
		l.summaries.Add(1)
		l.zl.Log().
			Bytes("time", l.appendTime(l.tbuf[:0], now)).
			Str("msg", "requests folded").
			Str("method", s.method).
			Str("route", k.route).
			Int("status", k.status).
			Int("count", s.n).
			Str("first", s.first.UTC().Format(timeFormat)).
			Str("last", s.last.UTC().Format(timeFormat)).
			Int64("latency_us_min", s.minLat.Microseconds()).
			Int64("latency_us_max", s.maxLat.Microseconds()).
			Str("client_ip", k.ip).
			Str("user_agent", s.userAgent).
			Str("client_id", k.clientID).
			Str("auth_status", s.authStatus).
			Bool("signature_valid", s.signatureValid).
			Int("backend_calls", s.reads).
			Send()
	}
	clear(l.keys)
	l.since = now
}

// appender is the zerolog sink: it appends a formatted line to the buffer.
// Its Write runs under l.mu.
type appender struct{ l *Log }

func (a appender) Write(p []byte) (int, error) {
	l := a.l
	if len(l.buf)+len(p) > cap(l.buf) {
		if l.spare == nil {
			l.dropped.Add(1) // both buffers are out: the sink is behind
			return len(p), nil
		}
		l.full, l.buf, l.spare = l.buf, l.spare, nil
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	l.buf = append(l.buf, p...)
	return len(p), nil
}

// Run writes the buffers out — when one fills, and every FlushInterval —
// until ctx ends; then it writes the last summaries and what is held, and
// returns. Lines logged after it returned are not written.
func (l *Log) Run(ctx context.Context) {
	t := time.NewTicker(l.cfg.FlushInterval)
	defer t.Stop()
	for {
		closing := false
		select {
		case <-l.kick:
		case <-t.C:
		case <-ctx.Done():
			closing = true
		}
		for {
			l.mu.Lock()
			if now := time.Now(); closing || now.Sub(l.since) >= l.cfg.FoldInterval {
				l.summarizeLocked(now)
			}
			out := l.full
			l.full = nil
			if out == nil && len(l.buf) > 0 && l.spare != nil {
				out, l.buf, l.spare = l.buf, l.spare, nil
			}
			l.mu.Unlock()
			if out == nil {
				break
			}
			_, _ = l.cfg.Out.Write(out) // a failing sink loses these lines; nothing else can be done with them
			l.mu.Lock()
			l.spare = out[:0]
			l.mu.Unlock()
			if !closing {
				break
			}
		}
		if closing {
			return
		}
	}
}

// Stats counts lines since New.
func (l *Log) Stats() Stats {
	return Stats{Full: l.fullLines.Load(), Folded: l.folded.Load(), Summaries: l.summaries.Load(), Dropped: l.dropped.Load()}
}
