// ethers v6 and viem, unmodified, read balances through balidx's POST /rpc
// and through geth at balidx's trusted block: every value must agree, and
// each library must meet balidx's refusals with its own error types.
// cmd/balidx TestWalletLibrariesAgainstGeth starts the chain and balidx and
// passes them in BALIDX_CONFORMANCE (JSON). Each library signs through its
// own hook: ethers FetchRequest.preflightFunc, viem's http fetchFn.
import assert from "node:assert/strict";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { Contract, FetchRequest, JsonRpcProvider, isError } from "ethers";
import { createPublicClient, defineChain, erc20Abi, http } from "viem";

const cfg = JSON.parse(process.env.BALIDX_CONFORMANCE);
const N = cfg.trusted;
const rpcURL = new URL(cfg.balidx);

// The four headers of a signed request (API.md "Authentication"). This and
// the two hooks below are what docs/API.md shows wallet teams.
function signedHeaders(clientId, secret, method, body) {
  const ts = Math.floor(Date.now() / 1000).toString();
  const nonce = randomBytes(16).toString("base64url");
  const bodyHash = createHash("sha256").update(body ?? "").digest("hex");
  const toSign = [method, rpcURL.pathname, rpcURL.search.slice(1), ts, nonce, bodyHash].join("\n");
  return {
    "X-Client-ID": clientId,
    "X-Timestamp": ts,
    "X-Nonce": nonce,
    "X-Request-Signature": createHmac("sha256", secret).update(toSign).digest("hex"),
  };
}

// ethers: a FetchRequest whose preflightFunc signs the body it is about to send.
function ethersProvider(clientId, seen, options) {
  const req = new FetchRequest(cfg.balidx);
  req.preflightFunc = async (r) => {
    seen.requests++;
    seen.body = r.body ? Buffer.from(r.body).toString() : "";
    for (const [k, v] of Object.entries(signedHeaders(clientId, cfg.secret, r.method, r.body))) r.setHeader(k, v);
    return r;
  };
  if (options?.staticNetwork) {
    req.setThrottleParams({ maxAttempts: 1 }); // report the 429, do not wait it out
    return new JsonRpcProvider(req, cfg.chainId, { staticNetwork: true });
  }
  return new JsonRpcProvider(req);
}

// viem: a fetchFn that signs the body it is given.
function signedFetch(clientId, seen) {
  return async (input, init) => {
    seen.requests++;
    seen.body = init?.body ?? "";
    const headers = new Headers(init?.headers);
    for (const [k, v] of Object.entries(signedHeaders(clientId, cfg.secret, init?.method ?? "GET", init?.body))) headers.set(k, v);
    return fetch(input, { ...init, headers });
  };
}

const balanceOfAbi = ["function balanceOf(address) view returns (uint256)"];
const results = { compared: 0, notGuessed: 0 };

// A balanceOf balidx refuses must be one geth answers with 0 for a holder
// balidx never saw holding the token: never a different value.
function refusedOnlyWhereUnknown(what, message, want) {
  assert.match(message, /no amount of token/, `${what}: refused with ${message}`);
  assert.equal(want, 0n, `${what}: balidx refused a balance geth says is ${want}`);
  results.notGuessed++;
}

// ---- the values geth gives at balidx's trusted block ----
const geth = new JsonRpcProvider(cfg.geth);
const wantNative = {};
const wantToken = {};
for (const h of cfg.holders) {
  wantNative[h] = await geth.getBalance(h, N);
  for (const t of cfg.tokens) {
    wantToken[t + h] = await new Contract(t, balanceOfAbi, geth).balanceOf(h, { blockTag: N });
  }
}

// ---- ethers ----
{
  const seen = { requests: 0 };
  const p = ethersProvider(cfg.client, seen);
  assert.equal(await p.getBlockNumber(), N, "ethers: block number is balidx's trusted block");
  assert.equal((await p.getNetwork()).chainId, BigInt(cfg.chainId));
  for (const h of cfg.holders) {
    assert.equal(await p.getBalance(h), wantNative[h], `ethers: ${h} at latest`);
    assert.equal(await p.getBalance(h, N), wantNative[h], `ethers: ${h} at ${N}`);
    assert.equal(await p.getBalance(h, cfg.trustedHash), wantNative[h], `ethers: ${h} at the trusted hash`);
    results.compared += 3;
    for (const t of cfg.tokens) {
      try {
        assert.equal(await new Contract(t, balanceOfAbi, p).balanceOf(h), wantToken[t + h], `ethers: ${t}.balanceOf(${h})`);
        results.compared++;
      } catch (e) {
        if (!isError(e, "CALL_EXCEPTION")) throw e;
        refusedOnlyWhereUnknown(`ethers: ${t}.balanceOf(${h})`, e.info?.error?.message ?? "", wantToken[t + h]);
      }
    }
  }
  const before = seen.requests;
  const ten = await Promise.all(cfg.holders.map((h) => p.getBalance(h)));
  assert.equal(seen.requests - before, 1, "ethers: ten getBalance in one HTTP request (its automatic batching)");
  assert.ok(seen.body.startsWith("["), "ethers: a batch");
  cfg.holders.forEach((h, i) => assert.equal(ten[i], wantNative[h], `ethers batch: ${h}`));
  results.compared += ten.length;

  await assert.rejects(p.send("eth_sendRawTransaction", ["0x00"]), (e) => isError(e, "UNSUPPORTED_OPERATION"), "ethers: an unknown method");
  await assert.rejects(p.getBalance(cfg.holders[0], N - 1),
    (e) => isError(e, "UNKNOWN_ERROR") && e.error?.message === "header not found", "ethers: a block balidx cannot answer for");
  const stingy = ethersProvider("stingy-ethers", { requests: 0 }, { staticNetwork: true });
  await assert.rejects((async () => { for (let i = 0; i < 4; i++) await stingy.send("eth_blockNumber", []); })(),
    (e) => isError(e, "SERVER_ERROR") && /\b429 Too Many Requests\b/.test(e.info?.responseStatus) && /"code":-32005/.test(e.info?.responseBody),
    "ethers: over quota");
  p.destroy();
  stingy.destroy();
}

// ---- viem ----
{
  const chain = defineChain({
    id: cfg.chainId, name: "geth --dev", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [cfg.balidx] } },
    contracts: { multicall3: { address: cfg.multicall, blockCreated: cfg.multicallBlock } },
  });
  const seen = { requests: 0 };
  const c = createPublicClient({ chain, transport: http(cfg.balidx, { batch: true, retryCount: 0, fetchFn: signedFetch(cfg.client, seen) }) });
  const mseen = { requests: 0 };
  const m = createPublicClient({ chain, batch: { multicall: true }, transport: http(cfg.balidx, { retryCount: 0, fetchFn: signedFetch(cfg.client, mseen) }) });
  const g = createPublicClient({ chain, transport: http(cfg.geth) });

  assert.equal(await c.getBlockNumber({ cacheTime: 0 }), BigInt(N), "viem: block number is balidx's trusted block");
  assert.equal(await c.getChainId(), cfg.chainId);
  for (const h of cfg.holders) {
    assert.equal(await c.getBalance({ address: h }), wantNative[h], `viem: ${h} at latest`);
    assert.equal(await c.getBalance({ address: h, blockNumber: BigInt(N) }), wantNative[h], `viem: ${h} at ${N}`);
    const byHash = await c.request({ method: "eth_getBalance", params: [h, { blockHash: cfg.trustedHash }] });
    assert.equal(BigInt(byHash), wantNative[h], `viem: ${h} at the trusted hash (EIP-1898)`);
    results.compared += 3;
    for (const t of cfg.tokens) {
      try {
        assert.equal(await c.readContract({ address: t, abi: erc20Abi, functionName: "balanceOf", args: [h] }), wantToken[t + h], `viem: ${t}.balanceOf(${h})`);
        results.compared++;
      } catch (e) {
        refusedOnlyWhereUnknown(`viem: ${t}.balanceOf(${h})`, e.details ?? e.message, wantToken[t + h]);
      }
    }
  }
  // The same through geth, to be sure the two clients read alike.
  assert.equal(await g.getBalance({ address: cfg.holders[0], blockNumber: BigInt(N) }), wantNative[cfg.holders[0]]);

  let before = seen.requests;
  const ten = await Promise.all(cfg.holders.map((h) => c.getBalance({ address: h })));
  assert.equal(seen.requests - before, 1, "viem batch: true: ten getBalance in one HTTP request");
  assert.ok(seen.body.startsWith("["), "viem batch: true: a JSON-RPC batch");
  cfg.holders.forEach((h, i) => assert.equal(ten[i], wantNative[h], `viem batch: ${h}`));
  results.compared += ten.length;

  before = mseen.requests;
  const viaMulticall = await Promise.all(cfg.holders.map((h) => m.getBalance({ address: h })));
  assert.equal(mseen.requests - before, 1, "viem multicall: ten getBalance in one HTTP request");
  const sent = JSON.parse(mseen.body);
  assert.equal(sent.method, "eth_call", "viem multicall: one eth_call");
  assert.ok((sent.params[0].data ?? sent.params[0].input).startsWith("0x82ad56cb"), "viem multicall: an aggregate3");
  cfg.holders.forEach((h, i) => assert.equal(viaMulticall[i], wantNative[h], `viem multicall: ${h}`));
  results.compared += viaMulticall.length;

  const contracts = cfg.tokens.flatMap((t) => cfg.holders.map((h) => ({ address: t, abi: erc20Abi, functionName: "balanceOf", args: [h] })));
  const many = await m.multicall({ contracts, allowFailure: true });
  many.forEach((r, i) => {
    const want = wantToken[contracts[i].address + contracts[i].args[0]];
    if (r.status === "success") {
      assert.equal(r.result, want, `viem multicall balanceOf ${i}`);
      results.compared++;
    } else {
      refusedOnlyWhereUnknown(`viem multicall balanceOf ${i}`, r.error.message, want);
    }
  });

  await assert.rejects(c.request({ method: "eth_sendRawTransaction", params: ["0x00"] }),
    (e) => e.name === "MethodNotFoundRpcError" && e.code === -32601, "viem: an unknown method");
  await assert.rejects(c.getBalance({ address: cfg.holders[0], blockNumber: BigInt(N - 1) }),
    (e) => e.name === "InvalidInputRpcError" && e.details === "header not found", "viem: a block balidx cannot answer for");
  const stingy = createPublicClient({ chain, transport: http(cfg.balidx, { retryCount: 0, fetchFn: signedFetch("stingy-viem", { requests: 0 }) }) });
  await assert.rejects((async () => { for (let i = 0; i < 4; i++) await stingy.getBlockNumber({ cacheTime: 0 }); })(),
    (e) => e.name === "LimitExceededRpcError" && e.code === -32005 && e.cause?.status === 429,
    "viem: over quota");
}

// Every read was made, none skipped: each library read every holder's
// balance three ways, every balanceOf, and the ten in a batch; viem also
// through multicall, balances and balanceOf.
const holders = cfg.holders.length;
assert.equal(results.compared + results.notGuessed, 2 * (3 * holders + holders * cfg.tokens.length + holders) + holders + holders * cfg.tokens.length,
  `reads made: ${JSON.stringify(results)}`);
console.log(JSON.stringify({ ok: true, ...results }));
