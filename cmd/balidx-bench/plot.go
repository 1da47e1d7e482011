package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// latencyVsLoad runs wrk for 1 s at rising connection counts against each
// target and writes an SVG of p99 latency against achieved throughput.
func latencyVsLoad(ctx context.Context, b *bench, targets []*target, file string) error {
	conns := []int{2, 8, 32, 64, 128, 256}
	series := make([][]result, len(targets))
	for i, t := range targets {
		for _, c := range conns {
			r, err := b.measure(ctx, t, c, time.Second)
			if err != nil {
				return fmt.Errorf("%s at %d connections: %w", t.name, c, err)
			}
			series[i] = append(series[i], r)
			fmt.Fprintf(b.out, "%-45s c=%-4d %8.0f req/s  p99 %s\n", t.name, c, r.rps, r.p99.Round(time.Microsecond))
		}
	}
	return os.WriteFile(file, []byte(svg(targets, series, conns)), 0o644)
}

// svg draws one polyline per target: x = requests/s, y = p99 latency.
func svg(targets []*target, series [][]result, conns []int) string {
	const w, h, left, bottom, top, right = 720, 440, 70, 50, 30, 20
	var maxX, maxY float64
	for _, s := range series {
		for _, r := range s {
			maxX = max(maxX, r.rps)
			maxY = max(maxY, float64(r.p99)/float64(time.Millisecond))
		}
	}
	maxX, maxY = maxX*1.1, maxY*1.1
	px := func(x float64) float64 { return left + x/maxX*(w-left-right) }
	py := func(y float64) float64 { return h - bottom - y/maxY*(h-top-bottom) }
	colors := []string{"#888888", "#1f77b4", "#2ca02c", "#d62728"}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="18" font-size="14">p99 latency vs throughput (wrk -t2, connections %v)</text>`+"\n", left, conns)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/><line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n",
		left, h-bottom, w-right, h-bottom, left, top, left, h-bottom)
	for i := 0; i <= 5; i++ {
		x, y := maxX*float64(i)/5, maxY*float64(i)/5
		fmt.Fprintf(&b, `<text x="%.0f" y="%d" text-anchor="middle">%.0fk</text>`+"\n", px(x), h-bottom+16, x/1000)
		fmt.Fprintf(&b, `<text x="%d" y="%.0f" text-anchor="end">%.1f</text>`+"\n", left-6, py(y)+4, y)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">requests/s</text>`+"\n", (w+left)/2, h-12)
	fmt.Fprintf(&b, `<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle">p99 (ms)</text>`+"\n", (h)/2, h/2)
	for i, s := range series {
		var pts []string
		for _, r := range s {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(r.rps), py(float64(r.p99)/float64(time.Millisecond))))
		}
		c := colors[i%len(colors)]
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", c, strings.Join(pts, " "))
		for _, p := range pts {
			xy := strings.Split(p, ",")
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", xy[0], xy[1], c)
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			left+20, top+10+i*18, c, left+38, top+21+i*18, targets[i].name)
	}
	b.WriteString("</svg>\n")
	return b.String()
}
