// Command quickstart creates an automation, streams 10,000 events into it with backpressure and
// prints its firings as JSON: the Go twin of clients/node/examples/quickstart.ts.
//
//	quickstart [HOST:PORT]        (default $AUTOMATIONS_SERVER or 127.0.0.1:50051)
//
// The automation is reactive: it fires when one customer places 100 orders within 60 s (for_each
// the customer's resource id) and then does nothing. The EVENTS orders (default 10,000) go
// round-robin to CUSTOMERS customers (default 100), a millisecond apart (closer together when there
// are more, so that they span at most ten seconds) and ending now, so each
// customer's bucket fires exactly once, on its 100th order.
//
// Backpressure on StreamEvents: at most maxInFlight batches are unanswered at a time (a slot is
// freed by the batch's response), Send blocks when gRPC's flow-control window is full, and a batch
// refused with RESOURCE_EXHAUSTED or UNAVAILABLE keeps its slot and is resent after an exponential
// backoff with jitter (publishing is idempotent by event id, so resending is safe).
//
// Progress goes to stderr; stdout gets one JSON object: the automation's id, the publish summary
// and the firings (protobuf JSON of automations.v1.Firing).
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log"
	mathrand "math/rand"
	"os"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	automationsv1 "automations.dev/clients/go/automations/v1"
)

const (
	threshold   = 100
	batchSize   = 500
	maxInFlight = 4
	maxAttempts = 12
)

func envInt(name string, fallback int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return fallback
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		log.Fatal(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// spacing is the time between two events: 1 ms, or less so that all n fit in ten seconds.
func spacing(n int) time.Duration {
	if n <= 10000 {
		return time.Millisecond
	}
	return 10 * time.Second / time.Duration(n)
}

func orderEvent(i, n, customers int, start time.Time) *automationsv1.Event {
	customer := fmt.Sprintf("acme.customer.%d", i%customers)
	payload, err := structpb.NewStruct(map[string]interface{}{"order": i, "amount": 10 + i%90})
	if err != nil {
		log.Fatal(err)
	}
	return &automationsv1.Event{
		Id:       newUUID(),
		Event:    "acme.order.placed",
		Occurred: timestamppb.New(start.Add(time.Duration(i) * spacing(n))),
		Resource: &automationsv1.Resource{Labels: map[string]string{
			"prefect.resource.id":   customer,
			"prefect.resource.name": customer,
		}},
		Payload: payload,
	}
}

type summary struct {
	Accepted  int `json:"accepted"`
	Duplicate int `json:"duplicate"`
	Rejected  int `json:"rejected"`
	Retries   int `json:"retries"`
}

type batch struct {
	events   []*automationsv1.Event
	attempts int
}

func backoff(attempt int) time.Duration {
	d := 50 * time.Millisecond << (attempt - 1)
	if d > 2*time.Second || d <= 0 {
		d = 2 * time.Second
	}
	return d/2 + time.Duration(mathrand.Int63n(int64(d/2)+1))
}

// streamEvents publishes n events over one StreamEvents call, maxInFlight batches at a time.
func streamEvents(ctx context.Context, client automationsv1.EventServiceClient, n, customers int) (summary, error) {
	var sum summary
	stream, err := client.StreamEvents(ctx)
	if err != nil {
		return sum, err
	}
	var (
		mu         sync.Mutex
		unanswered = map[int64]*batch{}
		sequence   int64
		slots      = make(chan struct{}, maxInFlight)
		resend     = make(chan *batch)
		failed     = make(chan error, 1)
		pending    sync.WaitGroup
	)
	send := func(b *batch) error {
		b.attempts++
		mu.Lock()
		sequence++
		seq := sequence
		unanswered[seq] = b
		mu.Unlock()
		// Send blocks while gRPC's flow-control window is full: the transport's backpressure.
		return stream.Send(&automationsv1.StreamEventsRequest{Sequence: seq, Events: b.events})
	}
	go func() { // the receiver: one response per request, in order
		for {
			resp, err := stream.Recv()
			if err == io.EOF {
				failed <- nil
				return
			}
			if err != nil {
				failed <- fmt.Errorf("stream failed: %w", err)
				return
			}
			mu.Lock()
			b := unanswered[resp.Sequence]
			delete(unanswered, resp.Sequence)
			mu.Unlock()
			switch outcome := resp.Outcome.(type) {
			case *automationsv1.StreamEventsResponse_Result:
				for _, r := range outcome.Result.Results {
					switch r.Status {
					case automationsv1.EventStatus_EVENT_STATUS_ACCEPTED:
						sum.Accepted++
					case automationsv1.EventStatus_EVENT_STATUS_DUPLICATE:
						sum.Duplicate++
					default:
						sum.Rejected++
						log.Printf("rejected %s: %s %s %s", r.EventId, r.Reason, r.Field, r.Message)
					}
				}
				<-slots
				pending.Done()
			case *automationsv1.StreamEventsResponse_Error:
				code := codes.Code(outcome.Error.Code)
				if (code != codes.ResourceExhausted && code != codes.Unavailable) || b.attempts >= maxAttempts {
					failed <- fmt.Errorf("batch %d failed: %s: %s", resp.Sequence, code, outcome.Error.Message)
					return
				}
				sum.Retries++ // the batch keeps its slot while it waits
				time.AfterFunc(backoff(b.attempts), func() { resend <- b })
			}
		}
	}()

	start := time.Now().Add(-time.Duration(n) * spacing(n)) // the last event occurs about now
	for first := 0; first < n; {
		select {
		case b := <-resend:
			if err := send(b); err != nil {
				return sum, err
			}
		case slots <- struct{}{}: // a free in-flight slot
			b := &batch{}
			for i := first; i < n && i < first+batchSize; i++ {
				b.events = append(b.events, orderEvent(i, n, customers, start))
			}
			first += len(b.events)
			pending.Add(1)
			if err := send(b); err != nil {
				return sum, err
			}
		case err := <-failed:
			return sum, err
		}
	}
	allAnswered := make(chan struct{})
	go func() { pending.Wait(); close(allAnswered) }()
	for waiting := true; waiting; {
		select {
		case b := <-resend:
			if err := send(b); err != nil {
				return sum, err
			}
		case <-allAnswered:
			waiting = false
		case err := <-failed:
			return sum, err
		}
	}
	if err := stream.CloseSend(); err != nil {
		return sum, err
	}
	return sum, <-failed // nil once the server ended the call with OK
}

func listFirings(ctx context.Context, client automationsv1.AutomationServiceClient, parent string) ([]*automationsv1.Firing, error) {
	var firings []*automationsv1.Firing
	token := ""
	for {
		page, err := client.ListFirings(ctx, &automationsv1.ListFiringsRequest{Parent: parent, PageSize: 1000, PageToken: token})
		if err != nil {
			return nil, err
		}
		firings = append(firings, page.Firings...)
		if token = page.NextPageToken; token == "" {
			return firings, nil
		}
	}
}

func main() {
	log.SetFlags(0)
	target := os.Getenv("AUTOMATIONS_SERVER")
	if len(os.Args) > 1 {
		target = os.Args[1]
	}
	if target == "" {
		target = "127.0.0.1:50051"
	}
	events := envInt("EVENTS", 10000)
	customers := envInt("CUSTOMERS", 100)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := grpc.Dial(target, grpc.WithInsecure()) // plaintext (grpc.WithTransportCredentials(insecure.NewCredentials()) from grpc 1.34 on)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	automations := automationsv1.NewAutomationServiceClient(conn)

	// 1. The automation (Prefect's {"trigger": {"type": "event", "expect": [...], ...}}).
	enabled := true
	th := int32(threshold)
	automation, err := automations.CreateAutomation(ctx, &automationsv1.CreateAutomationRequest{
		Automation: &automationsv1.Automation{
			DisplayName: "busy customer",
			Description: "100 orders from one customer within a minute",
			Enabled:     &enabled,
			Tags:        []string{"quickstart"},
			Trigger: &automationsv1.Trigger{Kind: &automationsv1.Trigger_Event{Event: &automationsv1.EventTrigger{
				Expect:    []string{"acme.order.placed"},
				ForEach:   []string{"prefect.resource.id"},
				Posture:   automationsv1.Posture_POSTURE_REACTIVE,
				Threshold: &th,
				Within:    durationpb.New(60 * time.Second),
			}}},
			Actions: []*automationsv1.Action{{Type: "do-nothing"}},
		},
	})
	if err != nil {
		log.Fatalf("create automation: %v", err)
	}
	log.Printf("created %s", automation.Name)

	// 2. The events.
	began := time.Now()
	sum, err := streamEvents(ctx, automationsv1.NewEventServiceClient(conn), events, customers)
	if err != nil {
		log.Fatalf("publish: %v", err)
	}
	log.Printf("published %d events in %.2f s: %d accepted, %d duplicate, %d rejected, %d retries",
		events, time.Since(began).Seconds(), sum.Accepted, sum.Duplicate, sum.Rejected, sum.Retries)

	// 3. The firings, evaluated asynchronously: poll until the expected number is there (one per
	// customer with at least `threshold` orders) or the count has not changed for 5 s (60 s at most).
	expected := 0
	for c := 0; c < customers; c++ {
		orders := events / customers
		if c < events%customers {
			orders++
		}
		if orders >= threshold {
			expected++
		}
	}
	firings, err := listFirings(ctx, automations, automation.Name)
	stableSince, giveUp := time.Now(), time.Now().Add(60*time.Second)
	settled := func() bool { return len(firings) > 0 && time.Since(stableSince) >= 5*time.Second }
	for err == nil && len(firings) < expected && !settled() && time.Now().Before(giveUp) {
		time.Sleep(200 * time.Millisecond)
		var again []*automationsv1.Firing
		if again, err = listFirings(ctx, automations, automation.Name); err == nil {
			if len(again) != len(firings) {
				stableSince = time.Now()
			}
			firings = again
		}
	}
	if err != nil {
		log.Fatalf("list firings: %v", err)
	}
	log.Printf("%d firings (expected %d)", len(firings), expected)

	out := struct {
		AutomationID    string            `json:"automation_id"`
		Published       summary           `json:"published"`
		ExpectedFirings int               `json:"expected_firings"`
		Firings         []json.RawMessage `json:"firings"`
	}{AutomationID: automation.Uid, Published: sum, ExpectedFirings: expected, Firings: []json.RawMessage{}}
	for _, f := range firings {
		raw, err := protojson.Marshal(f)
		if err != nil {
			log.Fatal(err)
		}
		out.Firings = append(out.Firings, raw)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		log.Fatal(err)
	}
}
