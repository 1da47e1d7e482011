package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// wrk runs two threads; each sends its own file of ready-made raw requests
// in turn, so that the load generator spends no time formatting or signing
// (a Lua call returning a string per request) and signed requests can carry
// nonces that are never reused.
const wrkThreads = 2

// loadScript loads the thread's request file (requests separated by NUL)
// and prints the 99.9th percentile, which wrk's --latency leaves out.
//
// wrk runs each thread's init in its main thread and starts the thread
// right after it; its clock starts once every thread is started. Cutting
// a file into strings takes ~0.15 s for each second of a signed run, and
// the first thread used to load the server alone meanwhile, its requests
// counted over a time that left those seconds out: signed runs came out
// faster than they were (12–33% with 260,000 requests a thread), and
// geth's, with small files, did not (ratios to it 4–10% too high). So
// every thread but the last waits, at its first request, until the last
// one's init has written the file args[1]..".ready". (Cutting a request
// per call instead costs wrk ~3 µs more a request, taken from the server.)
// Thread 0's first call of request is wrk checking it, in the main thread
// before the other inits: it must not wait.
const loadScript = `
local ffi = require("ffi")
ffi.cdef[[int usleep(unsigned int usec);]]
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
function init(args)
  local f = assert(io.open(args[1] .. "." .. id, "rb"))
  local data = f:read("*a")
  f:close()
  reqs, n, i = {}, 0, 0
  local pos = 1
  while true do
    local e = string.find(data, "\0", pos, true)
    if not e then break end
    n = n + 1
    reqs[n] = string.sub(data, pos, e - 1)
    pos = e + 1
  end
  ready = args[1] .. ".ready"
  waiting = id < tonumber(args[2]) - 1
  checked = id ~= 0
  if not waiting then
    assert(io.open(ready, "w")):close()
  end
end
function request()
  if waiting then
    if checked then
      for _ = 1, 60000 do
        local f = io.open(ready, "r")
        if f then f:close() waiting = false break end
        ffi.C.usleep(1000)
      end
      if waiting then error("the last wrk thread was not ready within a minute") end
    end
    checked = true
  end
  i = i + 1
  if i > n then i = 1 end
  return reqs[i]
end
function done(summary, latency, requests)
  io.write(string.format("p99.9 %d\n", latency:percentile(99.9)))
  io.write(string.format("bytes/response %d\n", summary.bytes / math.max(1, summary.requests)))
end
`

// requests makes the raw request number i for one wrk thread; each
// thread's requests are made on a goroutine of their own.
type requests func(thread, i int) []byte

// writeRequests writes perThread requests for each wrk thread to
// prefix.0, prefix.1…, a thread's file per core.
func writeRequests(prefix string, perThread int, make requests) error {
	var g errgroup.Group
	for t := range wrkThreads {
		g.Go(func() error {
			f, err := os.Create(prefix + "." + strconv.Itoa(t))
			if err != nil {
				return err
			}
			w := bufio.NewWriterSize(f, 1<<20)
			for i := range perThread {
				w.Write(make(t, i))
				w.WriteByte(0)
			}
			if err := w.Flush(); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		})
	}
	return g.Wait()
}

type result struct {
	rps                float64
	p50, p99, p999     time.Duration
	non2xx, errs       int
	responseBytes      int           // on the wire, headers included
	serverCPU, loadCPU time.Duration // per request
	steal              time.Duration // CPU time the host took from this machine during the run
}

var (
	reRPS    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reReqs   = regexp.MustCompile(`(\d+) requests in`)
	reP50    = regexp.MustCompile(`\n\s+50%\s+([0-9.]+)(us|ms|s)`)
	reP99    = regexp.MustCompile(`\n\s+99%\s+([0-9.]+)(us|ms|s)`)
	reP999   = regexp.MustCompile(`p99\.9 (\d+)`)
	reBytes  = regexp.MustCompile(`bytes/response (\d+)`)
	reNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	reErrs   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// runWrk sends the requests under prefix to url and measures, besides what
// wrk prints, the CPU time the server (serverCPU, cumulative) and wrk
// spent per request.
func runWrk(ctx context.Context, dir, url, prefix string, conns int, d time.Duration, serverCPU func() time.Duration) (result, error) {
	script := filepath.Join(dir, "load.lua")
	if _, err := os.Stat(script); err != nil {
		if err := os.WriteFile(script, []byte(loadScript), 0o600); err != nil {
			return result{}, err
		}
	}
	if err := os.Remove(prefix + ".ready"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return result{}, err
	}
	cmd := exec.CommandContext(ctx, "wrk", "-t"+strconv.Itoa(wrkThreads), "-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(max(1, int(d.Round(time.Second)/time.Second)))+"s",
		"--latency", "-s", script, url, "--", prefix, strconv.Itoa(wrkThreads))
	var before time.Duration
	if serverCPU != nil {
		before = serverCPU()
	}
	stolen := hostSteal()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %v: %s", err, out)
	}
	stolen = hostSteal() - stolen
	var server time.Duration
	if serverCPU != nil {
		server = serverCPU() - before
	}
	s := string(out)
	r := result{steal: stolen}
	m := reRPS.FindStringSubmatch(s)
	n := reReqs.FindStringSubmatch(s)
	if m == nil || n == nil {
		return r, fmt.Errorf("no Requests/sec in wrk output: %s", s)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	total, _ := strconv.Atoi(n[1])
	r.p50, r.p99 = duration(reP50.FindStringSubmatch(s)), duration(reP99.FindStringSubmatch(s))
	if m := reP999.FindStringSubmatch(s); m != nil {
		us, _ := strconv.Atoi(m[1])
		r.p999 = time.Duration(us) * time.Microsecond
	}
	if m := reBytes.FindStringSubmatch(s); m != nil {
		r.responseBytes, _ = strconv.Atoi(m[1])
	}
	if m := reNon2xx.FindStringSubmatch(s); m != nil {
		r.non2xx, _ = strconv.Atoi(m[1])
	}
	if m := reErrs.FindStringSubmatch(s); m != nil {
		for _, v := range m[1:] {
			n, _ := strconv.Atoi(v)
			r.errs += n
		}
	}
	if total > 0 {
		r.serverCPU = server / time.Duration(total)
		r.loadCPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()) / time.Duration(total)
	}
	return r, nil
}

// A run of the margins' loads (bare handler, balidx signed, anonymous, log
// off: ratios of close configurations) during which the host took more
// than maxSteal of CPU time is made again, up to stealAttempts runs in
// all, and the least stolen one kept. Other loads are run once (steal is
// frequent: retrying them all took ~4 min more).
// The hypervisor here freezes a CPU for 100 ms at a time (steal comes in
// blocks of 10 ticks), and more often when this machine uses both CPUs in
// full, which a loaded balidx does and the bare handler, with wrk idle
// ~5% of the time, mostly does not: one freeze in a 3 s run takes ~2% of
// its CPU and stalls every connection waiting on that CPU for 100 ms.
const (
	maxSteal      = 50 * time.Millisecond
	stealAttempts = 3
)

// measureUnstolen is b.measure, made again up to stealAttempts runs in
// all while the host took CPU time during the run; it returns the kept run
// and how many were made again.
func (b *bench) measureUnstolen(ctx context.Context, t *target) (result, int, error) {
	var kept result
	for attempt := range stealAttempts {
		r, err := b.measure(ctx, t, b.cfg.conns, b.cfg.duration)
		if err != nil {
			return r, attempt, err
		}
		if attempt == 0 || r.steal < kept.steal {
			kept = r
		}
		if r.steal <= maxSteal {
			return kept, attempt, nil
		}
	}
	return kept, stealAttempts - 1, nil
}

// hostSteal is the CPU time the hypervisor has taken from this machine's
// CPUs since boot (/proc/stat's steal, in ticks of 10 ms): here it comes in
// blocks of 100 ms, a CPU frozen at once.
func hostSteal() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	return stealOf(string(data))
}

// stealOf reads the steal time from the text of /proc/stat (0 if it has
// none).
func stealOf(stat string) time.Duration {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal …
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	ticks, _ := strconv.ParseInt(f[8], 10, 64)
	return time.Duration(ticks) * 10 * time.Millisecond
}

func duration(m []string) time.Duration {
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[2]]
	return time.Duration(v * float64(unit))
}
