package eventstest

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/balidx/balidx/internal/poll"
	"github.com/balidx/balidx/internal/testaddr"
)

// NATSServerEnv names the nats-server binary the cluster tests run (make
// test builds bin/nats-server, at the version go.mod's tool directive pins).
const NATSServerEnv = "BALIDX_NATS_SERVER"

// Cluster is a JetStream cluster of three real nats-server processes on
// loopback, configured as deploy/nats is (sync_interval: always), each in
// a directory of its own. Nodes can be killed (SIGKILL) and started again
// on the same ports and store.
type Cluster struct {
	bin   string
	nodes [3]*clusterNode
}

type clusterNode struct {
	name, conf  string
	client, mon string // host:port
	cmd         *exec.Cmd
}

// StartCluster starts the cluster and waits until every node has
// JetStream ready; it is stopped when the test ends. Without the
// nats-server binary the test is skipped (outside make test).
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	bin := os.Getenv(NATSServerEnv)
	if bin == "" {
		tb.Skipf("%s is not set: make test builds bin/nats-server", NATSServerEnv)
	}
	dir := tb.TempDir()
	var clients, routes, mons [3]string
	for i := range 3 {
		clients[i], routes[i], mons[i] = testaddr.Free(tb), testaddr.Free(tb), testaddr.Free(tb)
	}
	c := &Cluster{bin: bin}
	for i := range 3 {
		n := &clusterNode{name: fmt.Sprintf("n%d", i+1), client: clients[i], mon: mons[i], conf: filepath.Join(dir, fmt.Sprintf("n%d.conf", i+1))}
		var rs []string
		for _, r := range routes {
			rs = append(rs, "nats-route://"+r)
		}
		conf := fmt.Sprintf(`server_name: %s
listen: %s
http: %s
jetstream { store_dir: %q, sync_interval: always, max_memory_store: 64MB }
cluster { name: balidx, listen: %s, routes: [%s] }
`, n.name, n.client, n.mon, filepath.Join(dir, n.name), routes[i], strings.Join(rs, ", "))
		if err := os.WriteFile(n.conf, []byte(conf), 0o600); err != nil {
			tb.Fatal(err)
		}
		c.nodes[i] = n
	}
	tb.Cleanup(func() {
		for i := range c.nodes {
			c.Kill(tb, i)
		}
	})
	for i := range c.nodes {
		c.Start(tb, i)
	}
	for i := range c.nodes {
		c.waitReady(tb, i)
	}
	return c
}

// URLs are the client URLs of the three nodes, comma-separated, as
// balidx's --nats takes them.
func (c *Cluster) URLs() string {
	var urls []string
	for _, n := range c.nodes {
		urls = append(urls, "nats://"+n.client)
	}
	return strings.Join(urls, ",")
}

// Name is node i's server name.
func (c *Cluster) Name(i int) string { return c.nodes[i].name }

// Index is the node named name, or -1.
func (c *Cluster) Index(name string) int {
	for i, n := range c.nodes {
		if n.name == name {
			return i
		}
	}
	return -1
}

// Start starts node i (again), on its ports and store.
func (c *Cluster) Start(tb testing.TB, i int) {
	tb.Helper()
	n := c.nodes[i]
	n.cmd = exec.Command(c.bin, "-c", n.conf)
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // gone with the test, however it ends
	if err := n.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
}

// Kill SIGKILLs node i, if it runs, and waits for it to exit.
func (c *Cluster) Kill(tb testing.TB, i int) {
	n := c.nodes[i]
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	_ = n.cmd.Wait()
	n.cmd = nil
}

// waitReady waits until node i reports JetStream healthy.
func (c *Cluster) waitReady(tb testing.TB, i int) {
	tb.Helper()
	hc := &http.Client{Timeout: time.Second}
	poll.Until(tb, time.Minute, func() error {
		resp, err := hc.Get("http://" + c.nodes[i].mon + "/healthz?js-enabled-only=true")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: healthz %s", c.nodes[i].name, resp.Status)
		}
		return nil
	})
}

// WaitReady waits until node i, started again, reports JetStream healthy.
func (c *Cluster) WaitReady(tb testing.TB, i int) { c.waitReady(tb, i) }
