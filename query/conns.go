package query

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Connection limits. Every connection costs a file descriptor and a
// goroutine whether or not it ever sends a request: without a cap, idle
// connections from one address exhaust the process's file limit and both
// listeners stop accepting (the admin listener's /healthz included).
const (
	// DefaultMaxConnsPerIP bounds the query listener's connections from one
	// client IP (a trusted proxy is exempt: it carries many clients).
	DefaultMaxConnsPerIP = 256
	// maxAdminConns bounds the admin listener: a scraper and an operator.
	maxAdminConns = 64
	// reservedFiles is what the default total leaves of the file limit for
	// everything else the process opens (the admin listener, NATS, bbolt,
	// the node's connection, logs).
	reservedFiles = 512
	// maxDefaultConns caps the default total however high the file limit.
	maxDefaultConns = 16384
)

// DefaultMaxConns is the query listener's default connection cap: three
// quarters of what the file limit leaves after reservedFiles, at most
// maxDefaultConns.
func DefaultMaxConns() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<30 {
		return maxDefaultConns
	}
	return int(max(64, min(maxDefaultConns, (int64(lim.Cur)-reservedFiles)*3/4)))
}

// connLimits caps a listener's connections, in all and per client IP.
type connLimits struct {
	listener string
	max      int64
	perIP    int // 0: no per-IP cap
	exempt   func(net.IP) bool

	open    atomic.Int64
	mu      sync.Mutex
	byIP    map[string]int
	refused *prometheus.CounterVec
}

func newConnLimits(listener string, max, perIP int, exempt func(net.IP) bool) *connLimits {
	return &connLimits{listener: listener, max: int64(max), perIP: perIP, exempt: exempt, byIP: map[string]int{},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "balidx_connections_refused_total", Help: "Connections closed at accept: over the listener's cap (total) or over the cap for one client IP (per_ip).",
			ConstLabels: prometheus.Labels{"listener": listener},
		}, []string{"reason"})}
}

// collectors are the limits' metrics.
func (l *connLimits) collectors() []prometheus.Collector {
	labels := prometheus.Labels{"listener": l.listener}
	return []prometheus.Collector{
		l.refused,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "balidx_connections_open", Help: "Connections open.", ConstLabels: labels},
			func() float64 { return float64(l.open.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "balidx_connections_max", Help: "Connection cap of the listener.", ConstLabels: labels},
			func() float64 { return float64(l.max) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "balidx_connections_max_per_ip", Help: "Connection cap per client IP (0: none).", ConstLabels: labels},
			func() float64 { return float64(l.perIP) }),
	}
}

// limitedListener closes, at once, the connections over its limits, after
// a 503 that says so: a client over the cap learns why instead of hanging.
type limitedListener struct {
	net.Listener
	limits *connLimits
}

func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := peerIP(c)
		if reason := l.limits.admit(ip); reason != "" {
			l.limits.refused.WithLabelValues(reason).Inc()
			refuseConn(c)
			continue
		}
		return &limitedConn{Conn: c, limits: l.limits, ip: ip}, nil
	}
}

// admit counts a new connection from ip, or says which cap refuses it.
func (l *connLimits) admit(ip net.IP) string {
	if l.open.Add(1) > l.max {
		l.open.Add(-1)
		return "total"
	}
	if l.perIP == 0 || ip == nil || (l.exempt != nil && l.exempt(ip)) {
		return ""
	}
	key := string(ip.To16())
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byIP[key] >= l.perIP {
		l.open.Add(-1)
		return "per_ip"
	}
	l.byIP[key]++
	return ""
}

func (l *connLimits) release(ip net.IP) {
	l.open.Add(-1)
	if l.perIP == 0 || ip == nil || (l.exempt != nil && l.exempt(ip)) {
		return
	}
	key := string(ip.To16())
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byIP[key]--; l.byIP[key] <= 0 {
		delete(l.byIP, key)
	}
}

// overCapAnswer is written on a connection refused at accept.
var overCapAnswer = func() []byte {
	body := `{"error":{"code":"overloaded","message":"too many connections from this address or in all"}}`
	return []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

func refuseConn(c net.Conn) {
	_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond)) // never wait on a client that does not read
	_, _ = c.Write(overCapAnswer)
	_ = c.Close()
}

func peerIP(c net.Conn) net.IP {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP
	}
	return nil
}

// limitedConn gives its place back once, when it closes.
type limitedConn struct {
	net.Conn
	limits *connLimits
	ip     net.IP
	once   sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.limits.release(c.ip) })
	return err
}

// CloseWrite half-closes, as the TCP connection it wraps does: net/http
// sends its FIN first and closes later when a client may still be sending
// a body it will not read (so that the client reads the answer, not a reset).
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
