package query

import (
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
)

// parseAddress accepts exactly what API.md allows: every accepted string
// round-trips to the same address, and a canonical form is always accepted.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{holder.Hex(), strings.ToLower(holder.Hex()), "0x" + strings.ToUpper(holder.Hex()[2:]), "0x1234", "", strings.Repeat("f", 42), "0X742d35Cc6634C0532925a3b844Bc454e4438f44e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, checksummed, ok := parseAddress(s)
		if !ok {
			return
		}
		if checksummed && s != a.Hex() {
			t.Fatalf("%q is said to be the EIP-55 form of %s", s, a.Hex())
		}
		if len(s) != 42 || !strings.EqualFold(s[2:], a.Hex()[2:]) {
			t.Fatalf("accepted %q as %s", s, a.Hex())
		}
		if mixed := s[2:] != strings.ToLower(s[2:]) && s[2:] != strings.ToUpper(s[2:]); mixed && s[2:] != a.Hex()[2:] {
			t.Fatalf("accepted %q with a wrong checksum", s)
		}
		for _, canon := range []string{a.Hex(), strings.ToLower(a.Hex())} {
			if b, _, ok := parseAddress(canon); !ok || b != a {
				t.Fatalf("refused canonical %q", canon)
			}
		}
	})
}

// verify never accepts a signature made with another secret or over other
// bytes, and always accepts the right one.
// The allocation-free checksum renders every address as go-ethereum does.
func TestAppendEIP55MatchesGeth(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for range 10_000 {
		var a common.Address
		for i := range a {
			a[i] = byte(rng.Uint32())
		}
		if got := string(appendEIP55([]byte("x"), a)); got != "x"+a.Hex() {
			t.Fatalf("%s rendered %s", a.Hex(), got)
		}
	}
}

func FuzzVerifySignature(f *testing.F) {
	f.Add("GET", "/v1/balances/0xabc", "limit=2", "nonce-0000000000001", []byte(""), "")
	f.Add("POST", "/v1/balances", "", "nonce-0000000000002", []byte(`{"addresses":[]}`), "0000000000000000000000000000000000000000000000000000000000000000")
	clients := &Clients{Clients: []Client{{ID: "c", Secrets: []string{secret1}, Rate: 1, Burst: 1}}}
	now := time.Unix(1_800_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	f.Fuzz(func(t *testing.T, method, path, query, nonce string, body []byte, forged string) {
		s, _ := newSigner(clients, 0, 0)
		r := &signedRequest{clientID: "c", timestamp: ts, nonce: nonce, method: method, path: path, rawQuery: query, body: body}
		r.signature = Sign([]byte(secret1), method, path, query, ts, nonce, body)
		_, err := s.verify(r, now)
		if validNonce(nonce) && err != nil {
			t.Fatalf("the right signature was refused: %v", err)
		}
		r.signature = forged
		if forged != Sign([]byte(secret1), method, path, query, ts, nonce, body) {
			if _, err := s.verify(r, now); err == nil {
				t.Fatalf("a forged signature %q was accepted", forged)
			}
		}
	})
}

// parseBatch either refuses a body or returns 1 to 100 addresses.
func FuzzParseBatch(f *testing.F) {
	f.Add([]byte(`{"addresses":["` + holder.Hex() + `"]}`))
	f.Add([]byte(`{"addresses":[]}`))
	f.Add([]byte(`{"addresses":["a"],"x":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		addrs, err := parseBatch(body)
		if err != nil {
			return
		}
		if len(addrs) == 0 || len(addrs) > MaxBatchAddresses {
			t.Fatalf("accepted %d addresses", len(addrs))
		}
	})
}

// FuzzParseQuery: whatever the query string, parseQuery accepts only the
// parameters of the contract, each within its bounds, or refuses with 400.
func FuzzParseQuery(f *testing.F) {
	f.Add("token=" + holder.Hex() + "&limit=5&cursor=" + holder.Hex())
	f.Add("address=" + holder.Hex() + "&address=" + holder.Hex())
	f.Add("min_block=5")
	f.Add("limit=&token=%zz;x")
	f.Fuzz(func(t *testing.T, raw string) {
		ps, err := parseQuery(raw, true)
		p := ps.page
		if err != nil {
			if e := toAPIError(err); e.Status != 400 {
				t.Fatalf("%q: refused with %d", raw, e.Status)
			}
			return
		}
		if p.limit < 1 || p.limit > MaxPageLimit || len(p.only) > MaxTokenFilter {
			t.Fatalf("%q: accepted a page of %d, %d tokens", raw, p.limit, len(p.only))
		}
		q, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatalf("%q: accepted a malformed query", raw)
		}
		for k, vs := range q {
			if k != "token" && k != "limit" && k != "cursor" && k != "address" && k != "min_block" || k != "token" && len(vs) > 1 {
				t.Fatalf("%q: accepted parameter %q × %d", raw, k, len(vs))
			}
		}
	})
}

// FuzzRPC: whatever the body, POST /rpc answers 200 with JSON-RPC (one
// answer a call with an id), or 400/413 with the API's error: never a 500,
// never a result that is not canonical hex, never an amount it cannot vouch
// for (the snapshot holds holder's balances only).
func FuzzRPC(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["` + holder.Hex() + `","latest"]}`,
		`[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},{"jsonrpc":"2.0","id":"x","method":"eth_getBalance","params":["` + never.Hex() + `",{"blockNumber":"0x1"}]}]`,
		`{"jsonrpc":"2.0","id":2,"method":"eth_call","params":[{"to":"` + tokA.Hex() + `","input":"0x70a08231000000000000000000000000742d35cc6634c0532925a3b844bc454e4438f44e"},"0x1"]}`,
		`{"jsonrpc":"2.0","id":3,"method":"eth_call","params":[{"to":"` + DefaultMulticall3.Hex() + `","data":"0x82ad56cb00000000000000000000000000000000000000000000000000000000000000200000000000000000000000000000000000000000000000000000000000000001"}]}`,
		`[5,{"id":7},null]`, `[]`, `{}`, `{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":{"a":1}}`,
	} {
		f.Add(seed)
	}
	s, _ := mustServer(f, 7, Config{}) // partial coverage: an address never seen has no zero
	f.Fuzz(func(t *testing.T, body string) {
		a := rpc(t, s, body)
		switch a.status {
		case 200:
		case 400, 413:
			if a.one["error"] == nil {
				t.Fatalf("%d without an API error: %s", a.status, a.raw)
			}
			return
		default:
			t.Fatalf("%q: status %d %s", body, a.status, a.raw)
		}
		answers := a.many
		if a.one != nil {
			answers = []map[string]any{a.one}
		}
		for _, m := range answers {
			if m["jsonrpc"] != "2.0" || (m["result"] == nil) == (m["error"] == nil) {
				t.Fatalf("%q: not a JSON-RPC answer: %v", body, m)
			}
			r, ok := m["result"].(string)
			if !ok {
				continue
			}
			quantity := len(r) < 66 // else ABI words, which may start with zeros
			if r != "1" && (!strings.HasPrefix(r, "0x") || quantity && len(r) > 3 && r[2] == '0') {
				t.Fatalf("%q: result %q is not canonical", body, r)
			}
			if r == "0x0" {
				t.Fatalf("%q: a zero under partial coverage, where the snapshot holds no zero: %v", body, m)
			}
		}
	})
}
