package fakestick

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/otabridge/otabridge/ncp/ezsp"
)

// frameRing keeps the last EZSP frames the stick received and sent, so that a failing host session can be
// explained (the frame the host sent and what the stick answered).
type frameRing struct {
	mu    sync.Mutex
	buf   []tracedFrame
	next  int
	total int
}

type tracedFrame struct {
	at    time.Time
	toNCP bool
	b     []byte
}

func (r *frameRing) init(n int) { r.buf = make([]tracedFrame, n) }

func (r *frameRing) add(toNCP bool, b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.buf) == 0 {
		return
	}
	r.buf[r.next] = tracedFrame{at: time.Now(), toNCP: toNCP, b: append([]byte(nil), b...)}
	r.next = (r.next + 1) % len(r.buf)
	r.total++
}

// lines returns the frames oldest first, one line each: direction, frame name and bytes.
func (r *frameRing) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := min(r.total, len(r.buf))
	out := make([]string, 0, n)
	for i := range n {
		f := r.buf[(r.next-n+i+len(r.buf))%len(r.buf)]
		dir := "stick -> host"
		if f.toNCP {
			dir = "host -> stick"
		}
		name := "?"
		if fr, err := ezsp.ParseFrame(f.b, false); err == nil {
			name = ezsp.FrameName(fr.FrameID)
		} else if ezsp.IsLegacyVersionCommand(f.b) || (len(f.b) >= 3 && f.b[2] == 0) {
			name = "version (legacy header)"
		}
		out = append(out, fmt.Sprintf("%s %s %-28s % x", f.at.Format("15:04:05.000"), dir, name, f.b))
	}
	return out
}

// RecentFrames returns the last EZSP frames (up to 64) the stick received and sent, oldest first, as lines
// naming the direction, the frame and its bytes.
func (s *Stick) RecentFrames() []string { return s.trace.lines() }

// DumpFrames writes RecentFrames to w under a heading.
func (s *Stick) DumpFrames(w io.Writer) {
	lines := s.trace.lines()
	fmt.Fprintf(w, "last %d EZSP frames of %s:\n", len(lines), s)
	for _, l := range lines {
		fmt.Fprintln(w, "  "+l)
	}
}
