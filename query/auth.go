package query

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Header names of a signed request (API.md "Authentication").
const (
	HeaderClientID  = "X-Client-ID"
	HeaderTimestamp = "X-Timestamp"
	HeaderNonce     = "X-Nonce"
	HeaderSignature = "X-Request-Signature"
)

// DefaultSignatureWindow is how far a request's timestamp may be from the
// server's clock.
const DefaultSignatureWindow = 30 * time.Second

// authResult is how a request was authenticated, for logs and metrics.
type authResult struct {
	status   string // "signed", "anonymous", or the failure code
	clientID string
	sigValid bool
}

// clientTable is one version of the clients file, swapped whole on reload.
type clientTable struct {
	byID      map[string]*clientEntry
	anonymous Anonymous
}

type clientEntry struct {
	id      string
	macs    []*sync.Pool // of *mac, one pool per secret
	limiter *rate.Limiter
	rate    float64
	burst   int
	// nonces is the client's share of the replay cache; inFlight counts
	// its requests being served, against its share of the in-flight cap.
	nonces   *nonceShare
	inFlight *atomic.Int64
	// attempts counts its authenticated requests since the sharer's last
	// report (share.go).
	attempts *atomic.Int64
}

// signer verifies signatures and remembers nonces.
type signer struct {
	clients atomic.Pointer[clientTable]
	window  time.Duration
	nonces  *nonceCache
}

func newSigner(c *Clients, window time.Duration, maxNonces int) (*signer, error) {
	if window == 0 {
		window = DefaultSignatureWindow
	}
	s := &signer{window: window, nonces: newNonceCache(window, maxNonces)}
	return s, s.load(c)
}

// load installs a clients file, unless the replay cache cannot hold every
// client's share (then the previous file stays). A client whose rate and
// burst did not change keeps its bucket and its share, so a reload neither
// hands out fresh bursts nor forgets what the client's nonces hold.
func (s *signer) load(c *Clients) error {
	old := s.clients.Load()
	t := &clientTable{byID: make(map[string]*clientEntry, len(c.Clients)), anonymous: c.Anonymous}
	need := 0
	for _, cl := range c.Clients {
		e := &clientEntry{id: cl.ID, rate: cl.Rate, burst: cl.Burst}
		for _, sec := range cl.Secrets {
			key := []byte(sec)
			e.macs = append(e.macs, &sync.Pool{New: func() any { return &mac{h: hmac.New(sha256.New, key)} }})
		}
		if old != nil {
			if prev, ok := old.byID[cl.ID]; ok && prev.rate == cl.Rate && prev.burst == cl.Burst {
				e.limiter, e.nonces, e.inFlight, e.attempts = prev.limiter, prev.nonces, prev.inFlight, prev.attempts
			}
		}
		if e.limiter == nil {
			e.limiter = rate.NewLimiter(rate.Limit(cl.Rate), cl.Burst)
			e.nonces = s.nonces.newShare(cl.Rate, cl.Burst)
			e.inFlight = new(atomic.Int64)
			e.attempts = new(atomic.Int64)
		}
		need += e.nonces.max
		t.byID[cl.ID] = e
	}
	if need > s.nonces.max {
		return fmt.Errorf("%w: the clients' rates need %d (client, nonce) pairs in the replay cache (each client: rate × (2 × window + 1 s) + burst), --max-nonces is %d",
			ErrNonceCacheTooSmall, need, s.nonces.max)
	}
	s.clients.Store(t)
	return nil
}

// mac is one secret's HMAC-SHA256 with room for a request's string to sign
// and signature, reused from request to request.
type mac struct {
	h   hash.Hash
	msg []byte
	sum [sha256.Size]byte
	hex [2 * sha256.Size]byte
}

// emptyBodySHA256 is the last line of the string to sign of a request
// without a body.
var emptyBodySHA256 = func() string {
	sum := sha256.Sum256(nil)
	return hex.EncodeToString(sum[:])
}()

// appendStringToSign appends API.md's six lines to b.
func appendStringToSign(b []byte, method, path, rawQuery, timestamp, nonce string, body []byte) []byte {
	for _, part := range [...]string{method, path, rawQuery, timestamp, nonce} {
		b = append(b, part...)
		b = append(b, '\n')
	}
	if len(body) == 0 {
		return append(b, emptyBodySHA256...)
	}
	sum := sha256.Sum256(body)
	return hex.AppendEncode(b, sum[:])
}

// Sign returns the X-Request-Signature of a request: lowercase hex of
// HMAC-SHA256(secret, string to sign).
func Sign(secret []byte, method, path, rawQuery, timestamp, nonce string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(appendStringToSign(nil, method, path, rawQuery, timestamp, nonce, body))
	return hex.EncodeToString(m.Sum(nil))
}

// signedRequest is the parts of a request its signature covers.
type signedRequest struct {
	clientID, timestamp, nonce, signature string
	method, path, rawQuery                string
	body                                  []byte
	unix                                  int64 // the timestamp, once verify parsed it
}

// verify checks everything but the nonce's freshness and returns the client.
func (s *signer) verify(r *signedRequest, now time.Time) (*clientEntry, error) {
	e, err := s.identify(r, now)
	if err != nil {
		return nil, err
	}
	return e, e.checkSignature(r)
}

// identify checks what the headers alone can tell — every credential
// present and well-formed, the timestamp within the window, the client
// known — without the body.
func (s *signer) identify(r *signedRequest, now time.Time) (*clientEntry, error) {
	if r.clientID == "" || r.timestamp == "" || r.nonce == "" || r.signature == "" {
		return nil, errMissingCredentials
	}
	if !validNonce(r.nonce) || len(r.timestamp) > 12 {
		return nil, invalidRequest("X-Nonce must be 16..64 of [A-Za-z0-9_-] and X-Timestamp Unix seconds")
	}
	ts, err := strconv.ParseInt(r.timestamp, 10, 64)
	if err != nil || ts < 0 {
		return nil, invalidRequest("X-Timestamp must be Unix seconds in base 10")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > s.window || d < -s.window {
		return nil, errStaleRequest
	}
	r.unix = ts
	e, ok := s.clients.Load().byID[r.clientID]
	if !ok {
		return nil, errUnknownClient
	}
	return e, nil
}

// checkSignature checks r's signature (over its body too) against every
// secret of the client.
func (e *clientEntry) checkSignature(r *signedRequest) error {
	// A signature that is not 64 lowercase hex digits matches no secret.
	valid := 0
	for _, pool := range e.macs { // every secret is tried: the time does not tell which matched
		m := pool.Get().(*mac)
		m.h.Reset()
		m.msg = appendStringToSign(m.msg[:0], r.method, r.path, r.rawQuery, r.timestamp, r.nonce, r.body)
		m.h.Write(m.msg)
		hex.Encode(m.hex[:], m.h.Sum(m.sum[:0]))
		valid |= equalHex(m.hex[:], r.signature)
		pool.Put(m)
	}
	if valid == 0 {
		return errInvalidSignature
	}
	return nil
}

// equalHex is 1 when want (lowercase hex) equals got, in a time that
// depends only on their length.
func equalHex(want []byte, got string) int {
	if len(want) != len(got) {
		return 0
	}
	var v byte
	for i := range want {
		v |= want[i] ^ got[i]
	}
	return subtle.ConstantTimeByteEq(v, 0)
}

// validNonce: 16..64 of [A-Za-z0-9_-], checked through a table (a branch
// per character mispredicts on random nonces).
func validNonce(n string) bool {
	if len(n) < 16 || len(n) > 64 {
		return false
	}
	var bad byte
	for i := 0; i < len(n); i++ {
		bad |= notNonceChar[n[i]]
	}
	return bad == 0
}

// notNonceChar is 1 for a character a nonce may not hold.
var notNonceChar = func() (t [256]byte) {
	for c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			t[c] = 1
		}
	}
	return t
}()

// signedHeaders collects what the signature covers but the body.
func signedHeaders(req *http.Request) signedRequest {
	h := req.Header
	return signedRequest{
		clientID: header(h, keyClientID), timestamp: header(h, keyTimestamp), nonce: header(h, keyNonce), signature: header(h, keySignature),
		method: req.Method, path: rawPath(req), rawQuery: req.URL.RawQuery,
	}
}

// readBody reads a request's body — its Content-Length, which checkFraming
// bounded — and puts it back for the handler.
func readBody(req *http.Request) ([]byte, error) {
	if req.ContentLength <= 0 {
		return nil, nil
	}
	body := make([]byte, req.ContentLength)
	if _, err := io.ReadFull(req.Body, body); err != nil {
		return nil, invalidRequest("body could not be read: shorter than its Content-Length, or too slow")
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	return body, nil
}

// rawPath is the escaped path as the client sent it.
func rawPath(r *http.Request) string {
	if i := strings.IndexByte(r.RequestURI, '?'); i >= 0 {
		return r.RequestURI[:i]
	}
	if r.RequestURI != "" {
		return r.RequestURI
	}
	return r.URL.EscapedPath()
}

// hasCredentials reports whether the request carries any auth header.
func (r *signedRequest) hasCredentials() bool {
	return r.clientID != "" || r.signature != "" || r.timestamp != "" || r.nonce != ""
}

// The header names as net/http stores them (X-Client-ID becomes X-Client-Id).
var (
	keyClientID  = http.CanonicalHeaderKey(HeaderClientID)
	keyTimestamp = http.CanonicalHeaderKey(HeaderTimestamp)
	keyNonce     = http.CanonicalHeaderKey(HeaderNonce)
	keySignature = http.CanonicalHeaderKey(HeaderSignature)
)

// header is h.Get for a key already in canonical form, without
// canonicalising it again.
func header(h http.Header, canonicalKey string) string {
	if v := h[canonicalKey]; len(v) > 0 {
		return v[0]
	}
	return ""
}
