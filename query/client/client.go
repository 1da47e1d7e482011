// Package client is a Go client of balidx's query tier for wallet backends.
// It signs every request (API.md "Authentication"), retries 429 and 503
// honouring Retry-After with jittered exponential backoff, and never retries
// what retrying cannot fix (any other 4xx).
package client

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/balidx/balidx/query"
)

// Config configures a Client.
type Config struct {
	// BaseURL of the query listener, e.g. http://127.0.0.1:8080.
	BaseURL string
	// ClientID and Secret as issued by the operator; both empty: anonymous.
	ClientID string
	Secret   string
	// HTTP is the transport; default: a client with a 10 s timeout.
	HTTP *http.Client
	// MaxAttempts per call, the first included; default 4.
	MaxAttempts int
	// MaxWait caps one wait between attempts; default 30 s.
	MaxWait time.Duration
	// Now is the clock requests are stamped with; default time.Now.
	Now func() time.Time
}

// Client calls one balidx query node.
type Client struct {
	cfg  Config
	base *url.URL
}

// New validates cfg.
func New(cfg Config) (*Client, error) {
	base, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("client: base URL %q: want http(s)://host[:port]", cfg.BaseURL)
	}
	if (cfg.ClientID == "") != (cfg.Secret == "") {
		return nil, errors.New("client: give both the client id and the secret, or neither")
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 4
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Client{cfg: cfg, base: base}, nil
}

// APIError is an error answer of the query tier.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("balidx: %d %s: %s", e.Status, e.Code, e.Message)
}

// Block is the trusted block an answer is true at.
type Block struct {
	Number    uint64 `json:"number"`
	Hash      string `json:"hash"`
	Timestamp uint64 `json:"timestamp"`
}

// Token is one ERC-20 balance.
type Token struct {
	Contract string `json:"contract"`
	Amount   string `json:"amount"`
}

// Balance is the answer of GET /v1/balances/{address}. Amounts are base-10
// strings of wei or token base units.
type Balance struct {
	Address    string  `json:"address"`
	ChainID    uint64  `json:"chain_id"`
	Block      Block   `json:"block"`
	Native     string  `json:"native"`
	Tokens     []Token `json:"tokens"`
	NextCursor string  `json:"next_cursor"`
}

// Balance returns the balances of address.
func (c *Client) Balance(ctx context.Context, address string) (*Balance, error) {
	var b Balance
	if err := c.do(ctx, http.MethodGet, "/v1/balances/"+url.PathEscape(address), nil, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// Status returns GET /v1/status.
func (c *Client) Status(ctx context.Context) (*query.Status, error) {
	var s query.Status
	if err := c.do(ctx, http.MethodGet, "/v1/status", nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// do sends one call, retrying what may succeed later.
func (c *Client) do(ctx context.Context, method, path string, body []byte, into any) error {
	var last error
	for attempt := 1; ; attempt++ {
		wait, err := c.once(ctx, method, path, body, into)
		if err == nil {
			return nil
		}
		last = err
		if wait < 0 || attempt == c.cfg.MaxAttempts {
			return last
		}
		wait = max(wait, backoff(attempt))
		wait = min(wait, c.cfg.MaxWait)
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), last)
		case <-time.After(wait):
		}
	}
}

// backoff is the jittered exponential wait after attempt n: uniform in
// [b/2, b) with b = 100 ms · 2ⁿ⁻¹, so that clients refused together do not
// come back together.
func backoff(n int) time.Duration {
	b := 100 * time.Millisecond << min(n-1, 10)
	return b/2 + rand.N(b/2)
}

// once sends one attempt. wait ≥ 0 means the error may pass (Retry-After or
// a transport error); wait < 0 means retrying cannot help.
func (c *Client) once(ctx context.Context, method, path string, body []byte, into any) (time.Duration, error) {
	u := *c.base
	u.Path += path
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return -1, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.cfg.ClientID != "" {
		if err := c.sign(req, body); err != nil {
			return -1, err
		}
	}
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return -1, err
		}
		return 0, err // the network: try again
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, into); err != nil {
			return -1, fmt.Errorf("balidx: decode answer: %w", err)
		}
		return 0, nil
	}
	apiErr := &APIError{Status: resp.StatusCode}
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil {
		apiErr.Code, apiErr.Message = e.Error.Code, e.Error.Message
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return time.Duration(max(secs, 0)) * time.Second, apiErr
	case resp.StatusCode >= 500 && resp.StatusCode != http.StatusInternalServerError:
		return 0, apiErr // a gateway's 502 or 504: the node may be back
	default:
		return -1, apiErr // a 4xx that the same request will get again
	}
}

// sign sets the four headers of a signed request, with a fresh nonce.
func (c *Client) sign(req *http.Request, body []byte) error {
	var raw [16]byte
	if _, err := crand.Read(raw[:]); err != nil {
		return err
	}
	nonce := base64.RawURLEncoding.EncodeToString(raw[:])
	ts := strconv.FormatInt(c.cfg.Now().Unix(), 10)
	req.Header.Set(query.HeaderClientID, c.cfg.ClientID)
	req.Header.Set(query.HeaderTimestamp, ts)
	req.Header.Set(query.HeaderNonce, nonce)
	req.Header.Set(query.HeaderSignature, query.Sign([]byte(c.cfg.Secret), req.Method, req.URL.EscapedPath(), req.URL.RawQuery, ts, nonce, body))
	return nil
}
