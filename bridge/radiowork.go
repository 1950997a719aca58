package bridge

import (
	"context"
	"sync"
	"time"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/zcl"
)

// Radio work that requests cause (interviews, attribute reads) is bounded, so that a flood of MQTT
// requests cannot starve firmware transfers nor grow memory:
//   - one job per device at a time: a request for a device whose job runs joins it and gets its result;
//   - at most maxRadioJobs devices at once; a request past that is refused with errRadioBusy;
//   - at most maxRequestsInFlight requests handled at once; past that a request is refused at once, busy;
//   - the frames of those jobs go out only when no firmware frame is waiting (lowPrioritySender).

// maxRadioJobs bounds the devices being interviewed or read at once on behalf of requests.
const maxRadioJobs = 4

// maxRequestsInFlight bounds the requests being handled at once (each has a goroutine).
const maxRequestsInFlight = 128

// lowPriorityMaxWait bounds how long an interview frame waits for a gap in the firmware traffic before it
// goes out anyway (interviews must not starve either).
const lowPriorityMaxWait = 2 * time.Second

// errRadioBusy answers a request refused because the radio has enough work from requests already.
var errRadioBusy = &apiError{"busy: too many interviews and reads are running; try again later"}

// errRequestsBusy answers a request refused because maxRequestsInFlight requests are being handled.
var errRequestsBusy = &apiError{"busy: too many requests are being handled; try again later"}

// radioJobs runs at most one job per device and at most max jobs at once.
type radioJobs struct {
	mu      sync.Mutex
	max     int
	running map[zcl.IEEE]*radioJob
}

type radioJob struct {
	done    chan struct{}
	err     error
	waiters int // requests that joined
}

func newRadioJobs(max int) *radioJobs {
	return &radioJobs{max: max, running: map[zcl.IEEE]*radioJob{}}
}

// do runs f as ieee's job, or joins the job of ieee that runs already and returns its result. With
// refusable set, a new job past the limit is not started: do returns errRadioBusy. A joiner whose ctx ends
// stops waiting (the job goes on).
func (r *radioJobs) do(ctx context.Context, ieee zcl.IEEE, refusable bool, f func() error) (err error, joined bool) {
	r.mu.Lock()
	if j := r.running[ieee]; j != nil {
		j.waiters++
		r.mu.Unlock()
		select {
		case <-j.done:
			return j.err, true
		case <-ctx.Done():
			return ctx.Err(), true
		}
	}
	if refusable && len(r.running) >= r.max {
		r.mu.Unlock()
		return errRadioBusy, false
	}
	j := &radioJob{done: make(chan struct{})}
	r.running[ieee] = j
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.running, ieee)
		r.mu.Unlock()
		close(j.done)
	}()
	j.err = f()
	return j.err, false
}

// joined returns how many callers joined ieee's running job.
func (r *radioJobs) joined(ieee zcl.IEEE) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if j := r.running[ieee]; j != nil {
		return j.waiters
	}
	return 0
}

// active reports whether a job of ieee runs.
func (r *radioJobs) active(ieee zcl.IEEE) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running[ieee] != nil
}

// lowPrioritySender sends interview and read frames in the gaps of the firmware traffic: one at a time,
// and only when the sender has no firmware frame queued or in flight (or after lowPriorityMaxWait).
type lowPrioritySender struct {
	next    FrameSender
	ota     *sender
	slot    chan struct{}
	maxWait time.Duration
}

func newLowPrioritySender(next FrameSender, ota *sender) *lowPrioritySender {
	return &lowPrioritySender{next: next, ota: ota, slot: make(chan struct{}, 1), maxWait: lowPriorityMaxWait}
}

func (l *lowPrioritySender) Send(ctx context.Context, f ncp.Frame) error {
	select {
	case l.slot <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-l.slot }()
	if err := l.ota.waitIdle(ctx, l.maxWait); err != nil {
		return err
	}
	return l.next.Send(ctx, f)
}
