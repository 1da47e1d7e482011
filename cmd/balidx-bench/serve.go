package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/balidx/balidx/storage"
)

// Every server under load runs in a process of its own, as in production:
// the CPU time, RSS and garbage collections measured are its own, and the
// heap of one (the cache of a million accounts) does not slow another.
// balidx-bench runs them as itself with serveArg first.
const serveArg = "-serve"

// serveMain is a server process: "bare BODYFILE [FIELDSFILE]" serves the
// body with a bare echo handler (and the header fields in FIELDSFILE, an
// HTTP header block, on every answer), "balidx SNAPSHOT CACHEBYTES ACCESSLOG" serves the
// snapshot file (opened read-only) through balidx's query tier, its access
// log appended to the file ACCESSLOG ("-": no access log). It prints "HOST ADMIN"
// on out once listening (ADMIN: balidx's admin listener, or the bare
// handler's, which serves only its CPU profile), and serves until SIGINT.
func serveMain(args []string, out io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var host, admin string
	var served <-chan struct{} // balidx's: closed once it has stopped and written its access log out
	switch {
	case (len(args) == 2 || len(args) == 3) && args[0] == "bare":
		body, err := os.ReadFile(args[1])
		if err != nil {
			return err
		}
		var fields http.Header
		if len(args) == 3 {
			if fields, err = readFields(args[2]); err != nil {
				return err
			}
		}
		if host, err = startBareEcho(ctx, body, fields); err != nil {
			return err
		}
		if admin, err = startProfiler(ctx); err != nil {
			return err
		}
	case len(args) == 4 && args[0] == "balidx":
		cacheBytes, err := strconv.ParseInt(args[2], 10, 64)
		if err != nil {
			return fmt.Errorf("cache bytes: %w", err)
		}
		store, err := storage.Open(storage.Config{Path: args[1], ChainID: 1, ReadOnly: true})
		if err != nil {
			return err
		}
		defer store.Close()
		if host, admin, served, err = startBalidx(ctx, store, cacheBytes, args[3]); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s bare BODYFILE [FIELDSFILE] | %s balidx SNAPSHOT CACHEBYTES ACCESSLOG", serveArg, serveArg)
	}
	fmt.Fprintln(out, host, admin)
	<-ctx.Done()
	if served != nil {
		<-served
	}
	return nil
}

// readFields reads an HTTP header block (as http.Header.Write writes it,
// then an empty line).
func readFields(file string) (http.Header, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fields, err := textproto.NewReader(bufio.NewReader(f)).ReadMIMEHeader()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return http.Header(fields), nil
}

// proc is a server under load in a process of its own: geth, or
// balidx-bench serving.
type proc struct {
	host  string // host:port of the load
	admin string // the admin listener (balidx: metrics and pprof; bare: pprof); none for geth
	pid   int
	cmd   *exec.Cmd
}

func (p *proc) stop() { p.cmd.Process.Signal(os.Interrupt); p.cmd.Wait() }

// cpu is the CPU time the process has used, from /proc (clock ticks of
// 10 ms: enough over seconds of load).
func (p *proc) cpu() time.Duration {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(p.pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// waitIdle returns once the process uses under a tenth of a core over a
// second (geth building its state snapshot after a start, or a server
// collecting the garbage of a warm-up would take CPU from a measurement).
func (p *proc) waitIdle(ctx context.Context, deadline time.Time) error {
	for last := p.cpu(); ; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		now := p.cpu()
		if now-last < 100*time.Millisecond {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pid %d still busy (%v of CPU in the last second)", p.pid, now-last)
		}
		last = now
	}
}

// startServer runs this program with serveArg and args, and returns once
// it listens.
func startServer(args ...string) (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{serveArg}, args...)...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // gone with this process, however it ends
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n') // EOF if it fails to start
	f := strings.Fields(line)
	if err != nil || len(f) != 2 {
		cmd.Process.Kill()
		return nil, fmt.Errorf("server %v did not start: %v (%q)", args, cmd.Wait(), line)
	}
	return &proc{host: f[0], admin: f[1], pid: cmd.Process.Pid, cmd: cmd}, nil
}

// metric reads one unlabelled metric from a balidx server's admin listener.
func (p *proc) metric(ctx context.Context, name string) (float64, error) {
	body, err := get(ctx, &http.Client{Timeout: 10 * time.Second}, "http://"+p.admin+"/metrics")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("metric %s not found", name)
}

// rssMB is the process's resident set size in MB.
func (p *proc) rssMB() (float64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(p.pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/PID/status")
}

// profileCPU writes a CPU profile of the server p over the next d
// to file (its admin listener's pprof; d under its 10 s write timeout).
func (p *proc) profileCPU(ctx context.Context, d time.Duration, file string) error {
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.admin, int(d.Seconds()))
	body, err := get(ctx, &http.Client{Timeout: d + 10*time.Second}, url)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	return os.WriteFile(file, body, 0o644)
}
