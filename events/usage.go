package events

import "github.com/nats-io/nats.go"

// usageSubject carries the query replicas' usage reports: plain NATS, not
// JetStream (a report is worth only its next 2 seconds).
const usageSubject = "balidx.usage"

// UsageExchange is the log's connection as the query replicas' usage
// exchange (query.UsageExchange): each signed client's quota is one quota
// across them.
func (l *Log) UsageExchange() UsageExchange { return UsageExchange{nc: l.nc} }

// UsageExchange publishes and receives usage reports over NATS.
type UsageExchange struct{ nc *nats.Conn }

// PublishUsage sends a report to every replica.
func (u UsageExchange) PublishUsage(report []byte) error { return u.nc.Publish(usageSubject, report) }

// SubscribeUsage calls fn with every report, until stop.
func (u UsageExchange) SubscribeUsage(fn func(report []byte)) (stop func(), err error) {
	sub, err := u.nc.Subscribe(usageSubject, func(m *nats.Msg) { fn(m.Data) })
	if err != nil {
		return nil, err
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// Connected reports whether reports can flow now.
func (u UsageExchange) Connected() bool { return u.nc.IsConnected() }
