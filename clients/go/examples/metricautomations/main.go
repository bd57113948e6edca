// Command metricautomations creates two metric automations through the Go client and reads them
// back: the Go twin of the Node client's metric test (tests/integration/clients).
//
//	metricautomations [HOST:PORT]        (default $AUTOMATIONS_SERVER or 127.0.0.1:50051)
//
// "successes" has one of Prefect's metric triggers (the fraction of successful flow runs tagged
// production falling below 0.9 over an hour, for five minutes). "compound" has a compound trigger
// whose child is a metric of one's own: the p99 of the seconds between `order.placed` and
// `order.shipped` of one order, per customer, above an hour for ten minutes.
//
// Each automation is created, read back with GetAutomation, and found again with ListAutomations
// filtered on `trigger.type = "metric"` (the compound one is not a metric trigger at the top, so
// only "successes" may be listed there). stdout gets one JSON array: for each automation its id,
// the automation as GetAutomation returned it (protobuf JSON), and whether the listing held it.
package main

import (
	"context"
	"encoding/json"
	"log"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"

	automationsv1 "automations.dev/clients/go/automations/v1"
)

func patterns(values ...string) *automationsv1.Patterns {
	return &automationsv1.Patterns{Patterns: values}
}

// successes is Prefect's `successes` metric over production flow runs.
func successes() *automationsv1.Trigger {
	return &automationsv1.Trigger{Kind: &automationsv1.Trigger_Metric{Metric: &automationsv1.MetricTrigger{
		Match: &automationsv1.ResourceSpecification{Labels: map[string]*automationsv1.Patterns{
			"prefect.resource.id": patterns("prefect.flow-run.*"),
		}},
		MatchRelated: []*automationsv1.ResourceSpecification{{Labels: map[string]*automationsv1.Patterns{
			"prefect.resource.id":   patterns("prefect.tag.production"),
			"prefect.resource.role": patterns("tag"),
		}}},
		Metric: &automationsv1.MetricTriggerQuery{
			Name:      "successes",
			Threshold: 0.9,
			Operator:  automationsv1.MetricOperator_METRIC_OPERATOR_LESS_THAN,
			Range:     durationpb.New(time.Hour),
			FiringFor: durationpb.New(5 * time.Minute),
		},
	}}}
}

// latency is a compound trigger over a metric of one's own: order latency per customer.
func latency() *automationsv1.Trigger {
	child := &automationsv1.Trigger{Kind: &automationsv1.Trigger_Metric{Metric: &automationsv1.MetricTrigger{
		Metric: &automationsv1.MetricTriggerQuery{
			Name:        "order latency",
			Threshold:   3600,
			Operator:    automationsv1.MetricOperator_METRIC_OPERATOR_GREATER_THAN,
			Range:       durationpb.New(24 * time.Hour),
			FiringFor:   durationpb.New(10 * time.Minute),
			Aggregation: automationsv1.MetricAggregation_METRIC_AGGREGATION_P99,
			Value: &automationsv1.MetricValue{Kind: &automationsv1.MetricValue_Between{
				Between: &automationsv1.MetricBetween{
					From: []string{"order.placed"}, To: []string{"order.shipped"}, Key: "order.id",
				},
			}},
			ForEach: []string{"related:customer:prefect.resource.id"},
		},
	}}}
	return &automationsv1.Trigger{Kind: &automationsv1.Trigger_Compound{Compound: &automationsv1.CompoundTrigger{
		Require:  &automationsv1.CompoundTrigger_RequireAll{RequireAll: true},
		Triggers: []*automationsv1.Trigger{child},
	}}}
}

// listed reports whether ListAutomations with filter holds the automation named name.
func listed(ctx context.Context, client automationsv1.AutomationServiceClient, filter, name string) bool {
	request := &automationsv1.ListAutomationsRequest{Filter: filter, PageSize: 1000}
	for {
		page, err := client.ListAutomations(ctx, request)
		if err != nil {
			log.Fatalf("ListAutomations: %v", err)
		}
		for _, automation := range page.Automations {
			if automation.Name == name {
				return true
			}
		}
		if page.NextPageToken == "" {
			return false
		}
		request.PageToken = page.NextPageToken
	}
}

func main() {
	target := os.Getenv("AUTOMATIONS_SERVER")
	if len(os.Args) > 1 {
		target = os.Args[1]
	}
	if target == "" {
		target = "127.0.0.1:50051"
	}
	conn, err := grpc.Dial(target, grpc.WithInsecure()) // see examples/quickstart on credentials
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := automationsv1.NewAutomationServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	out := []map[string]interface{}{}
	for _, made := range []struct {
		name    string
		trigger *automationsv1.Trigger
	}{{"successes", successes()}, {"compound", latency()}} {
		created, err := client.CreateAutomation(ctx, &automationsv1.CreateAutomationRequest{
			Automation: &automationsv1.Automation{
				DisplayName:      made.name,
				Trigger:          made.trigger,
				ActionsOnResolve: []*automationsv1.Action{{Type: "do-nothing"}},
			},
		})
		if err != nil {
			log.Fatalf("CreateAutomation %s: %v", made.name, err)
		}
		got, err := client.GetAutomation(ctx, &automationsv1.GetAutomationRequest{Name: created.Name})
		if err != nil {
			log.Fatalf("GetAutomation %s: %v", created.Name, err)
		}
		raw, err := protojson.Marshal(got)
		if err != nil {
			log.Fatal(err)
		}
		out = append(out, map[string]interface{}{
			"id":         got.Uid,
			"automation": json.RawMessage(raw),
			"listed":     listed(ctx, client, `trigger.type = "metric"`, got.Name),
		})
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		log.Fatal(err)
	}
}
