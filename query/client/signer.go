package client

import (
	"bytes"
	crand "crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/balidx/balidx/query"
)

// Signer is an http.RoundTripper that signs every request it carries, as
// API.md "Authentication" says: for code that brings its own HTTP client,
// such as go-ethereum's rpc.DialOptions with rpc.WithHTTPClient (and so
// ethclient) against balidx's POST /rpc. It reads the body to sign it.
type Signer struct {
	ClientID, Secret string
	// Base carries the signed request; default http.DefaultTransport.
	Base http.RoundTripper
	// Now stamps requests; default time.Now.
	Now func() time.Time
}

// maxSignedBody bounds the body a Signer reads (query.MaxRPCBody is the
// largest body balidx takes).
const maxSignedBody = query.MaxRPCBody

// RoundTrip signs a copy of req and sends it.
func (s *Signer) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		body, err = io.ReadAll(io.LimitReader(req.Body, maxSignedBody+1))
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("balidx signer: read the body: %w", err)
		}
		if len(body) > maxSignedBody {
			return nil, fmt.Errorf("balidx signer: a body over %d bytes, which balidx refuses", maxSignedBody)
		}
	}
	out := req.Clone(req.Context())
	out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	now := s.Now
	if now == nil {
		now = time.Now
	}
	if err := sign(out, s.ClientID, s.Secret, now(), body); err != nil {
		return nil, err
	}
	base := s.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(out)
}

// sign sets the four headers of a signed request, with a fresh nonce.
func sign(req *http.Request, clientID, secret string, now time.Time, body []byte) error {
	var raw [16]byte
	if _, err := crand.Read(raw[:]); err != nil {
		return err
	}
	nonce := base64.RawURLEncoding.EncodeToString(raw[:])
	ts := strconv.FormatInt(now.Unix(), 10)
	req.Header.Set(query.HeaderClientID, clientID)
	req.Header.Set(query.HeaderTimestamp, ts)
	req.Header.Set(query.HeaderNonce, nonce)
	req.Header.Set(query.HeaderSignature, query.Sign([]byte(secret), req.Method, req.URL.EscapedPath(), req.URL.RawQuery, ts, nonce, body))
	return nil
}
