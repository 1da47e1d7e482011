package main

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/balidx/balidx/query"
)

type randSource = rand.Rand

// unknownAddress draws an address no snapshot holds (with odds 2^-160).
func unknownAddress(rng *randSource) address {
	var a address
	for i := range a {
		a[i] = byte(rng.Uint32())
	}
	return a
}

// signedGets makes GET /v1/balances/{address} requests for addresses drawn
// by pick, signed as API.md says by the bench client, each nonce once.
func signedGets(pick func(*randSource) address) func(host string, run int) requests {
	return func(host string, run int) requests {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		rngs := threadRNGs(run)
		return func(thread, i int) []byte {
			a := pick(rngs[thread])
			return signedGet(host, "/v1/balances/0x"+hex.EncodeToString(a[:]), benchClient, benchSecret, ts, fmt.Sprintf("bench-%05d-%d-%09d", run, thread, i))
		}
	}
}

// plainGets makes unsigned GET /v1/balances/{address} requests (the
// anonymous tier) for addresses drawn by pick.
func plainGets(pick func(*randSource) address) func(host string, run int) requests {
	return func(host string, run int) requests {
		rngs := threadRNGs(run)
		return func(thread, i int) []byte {
			a := pick(rngs[thread])
			return plainGet(host, "/v1/balances/0x"+hex.EncodeToString(a[:]))
		}
	}
}

// signedGet is a raw GET of path signed as API.md says by client with secret.
func signedGet(host, path, client, secret, ts, nonce string) []byte {
	sig := query.Sign([]byte(secret), "GET", path, "", ts, nonce, nil)
	return fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\n%s: %s\r\n%s: %s\r\n%s: %s\r\n%s: %s\r\n\r\n", path, host,
		query.HeaderClientID, client, query.HeaderTimestamp, ts, query.HeaderNonce, nonce, query.HeaderSignature, sig)
}

// plainGet is a raw GET of path without credentials (the anonymous tier).
func plainGet(host, path string) []byte {
	return fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host)
}

// rpcCalls makes POST requests of eth_getBalance at "latest" — one call,
// or a batch of calls — for addresses drawn by pick: to balidx's /rpc
// signed by the bench client (each nonce once), or to geth's / unsigned.
func rpcCalls(pick func(*randSource) address, calls int, signed bool) func(host string, run int) requests {
	return func(host string, run int) requests {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		rngs := threadRNGs(run)
		return func(thread, i int) []byte {
			var body []byte
			if calls > 1 {
				body = append(body, '[')
			}
			for c := range calls {
				if c > 0 {
					body = append(body, ',')
				}
				a := pick(rngs[thread])
				body = fmt.Appendf(body, `{"jsonrpc":"2.0","id":%d,"method":"eth_getBalance","params":["0x%x","latest"]}`, c, a[:])
			}
			if calls > 1 {
				body = append(body, ']')
			}
			if !signed {
				return fmt.Appendf(nil, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", host, len(body), body)
			}
			nonce := fmt.Sprintf("rpc-%05d-%d-%09d", run, thread, i)
			sig := query.Sign([]byte(benchSecret), "POST", query.RPCRoute, "", ts, nonce, body)
			return fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s: %s\r\n%s: %s\r\n%s: %s\r\n%s: %s\r\n\r\n%s",
				query.RPCRoute, host, len(body), query.HeaderClientID, benchClient, query.HeaderTimestamp, ts, query.HeaderNonce, nonce, query.HeaderSignature, sig, body)
		}
	}
}

func threadRNGs(run int) [wrkThreads]*randSource {
	var rngs [wrkThreads]*randSource
	for t := range rngs {
		rngs[t] = rand.New(rand.NewPCG(uint64(run), uint64(t)))
	}
	return rngs
}
