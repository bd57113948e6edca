// Quickstart: create an automation, stream 10,000 events into it with backpressure, list its
// firings.
//
//   npx tsx examples/quickstart.ts [HOST:PORT]        (default $AUTOMATIONS_SERVER or 127.0.0.1:50051)
//
// The automation is reactive: it fires when one customer places 100 orders within 60 s
// (`for_each` the customer's resource id) and then does nothing (`do-nothing`); as in Prefect, a
// customer's window that fired ignores the rest of its minute. The EVENTS orders (default 10,000)
// go round-robin to CUSTOMERS customers (default 100), a millisecond apart and ending now (closer
// together when there are more, so that they always span at most ten seconds), so
// every customer places 100 orders within ten seconds: each customer's bucket fires exactly once,
// on its 100th order, and a single lost event would show as a missing firing.
//
// Prints progress on stderr and, on stdout, one JSON object: the automation's id, the publish
// summary and the firings (protobuf JSON of automations.v1.Firing).
import { randomUUID } from "node:crypto";

import {
  type Automation,
  connect,
  CreateAutomationRequest,
  Event,
  EventStatus,
  EventStreamPublisher,
  Firing,
  type ListFiringsResponse,
  Posture,
  type Ticket,
  unary,
} from "../src";

const EVENTS = Number(process.env.EVENTS ?? 10_000);
const CUSTOMERS = Number(process.env.CUSTOMERS ?? 100);
const THRESHOLD = 100;
const BATCH_SIZE = 500;
/** Events are SPACING_MS apart: 1 ms, or less so that all of them fit in ten seconds. */
const SPACING_MS = Math.min(1, 10_000 / EVENTS);

function orderEvent(i: number, start: number): Event {
  const customer = `acme.customer.${i % CUSTOMERS}`;
  return Event.fromPartial({
    id: randomUUID(),
    event: "acme.order.placed",
    occurred: new Date(start + i * SPACING_MS),
    resource: { labels: { "prefect.resource.id": customer, "prefect.resource.name": customer } },
    payload: { order: i, amount: 10 + (i % 90) },
  });
}

async function main(): Promise<void> {
  const target = process.argv[2] ?? process.env.AUTOMATIONS_SERVER ?? "127.0.0.1:50051";
  const engine = connect(target);
  try {
    // 1. The automation (the same as Prefect's JSON `{"trigger": {"type": "event", ...}}`).
    const request = CreateAutomationRequest.fromPartial({
      automation: {
        displayName: "busy customer",
        description: "100 orders from one customer within a minute",
        tags: ["quickstart"],
        trigger: {
          kind: {
            $case: "event",
            value: {
              expect: ["acme.order.placed"],
              forEach: ["prefect.resource.id"],
              posture: Posture.POSTURE_REACTIVE,
              threshold: THRESHOLD,
              within: { seconds: 60 },
            },
          },
        },
        actions: [{ type: "do-nothing" }],
      },
    });
    const automation: Automation = await unary((cb) => engine.automations.createAutomation(request, cb));
    console.error(`created ${automation.name}`);

    // 2. The events, over one StreamEvents call: at most 4 batches of 500 unanswered at a time.
    const publisher = new EventStreamPublisher(engine.events, { maxInFlight: 4 });
    const start = Date.now() - EVENTS * SPACING_MS; // the last event occurs about now
    const tickets: Ticket[] = [];
    const summary = { accepted: 0, duplicate: 0, rejected: 0, retries: 0 };
    const began = performance.now();
    for (let first = 0; first < EVENTS; first += BATCH_SIZE) {
      const batch: Event[] = [];
      for (let i = first; i < Math.min(first + BATCH_SIZE, EVENTS); i++) batch.push(orderEvent(i, start));
      tickets.push(await publisher.send(batch));
    }
    for (const ticket of tickets) {
      for (const result of await ticket.done) {
        if (result.status === EventStatus.EVENT_STATUS_ACCEPTED) summary.accepted++;
        else if (result.status === EventStatus.EVENT_STATUS_DUPLICATE) summary.duplicate++;
        else {
          summary.rejected++;
          console.error(`rejected ${result.eventId}: ${result.reason} ${result.field} ${result.message}`);
        }
      }
    }
    await publisher.close();
    summary.retries = publisher.retries;
    const seconds = (performance.now() - began) / 1000;
    console.error(
      `published ${EVENTS} events in ${seconds.toFixed(2)} s: ${summary.accepted} accepted, ` +
        `${summary.duplicate} duplicate, ${summary.rejected} rejected, ${summary.retries} retries`,
    );

    // 3. The firings. The engine evaluates accepted events asynchronously: poll until the
    //    expected number is there (one per customer with at least THRESHOLD orders, since they
    //    all fall within one window), or the count has not changed for 5 s (60 s at most).
    let expected = 0;
    for (let c = 0; c < CUSTOMERS; c++) {
      const orders = Math.floor(EVENTS / CUSTOMERS) + (c < EVENTS % CUSTOMERS ? 1 : 0);
      if (orders >= THRESHOLD) expected++;
    }
    const listAll = async (): Promise<Firing[]> => {
      const firings: Firing[] = [];
      let pageToken = "";
      do {
        const page: ListFiringsResponse = await unary((cb) =>
          engine.automations.listFirings({ parent: automation.name, pageSize: 1000, pageToken }, cb),
        );
        firings.push(...page.firings);
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      return firings;
    };
    let firings = await listAll();
    let stableSince = Date.now();
    const giveUp = Date.now() + 60_000;
    const settled = () => firings.length > 0 && Date.now() - stableSince >= 5000;
    while (firings.length < expected && !settled() && Date.now() < giveUp) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      const again = await listAll();
      if (again.length !== firings.length) stableSince = Date.now();
      firings = again;
    }
    console.error(`${firings.length} firings (expected ${expected})`);
    console.log(
      JSON.stringify({
        automation_id: automation.uid,
        published: summary,
        expected_firings: expected,
        firings: firings.map((f) => Firing.toJSON(f)),
      }),
    );
  } finally {
    engine.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
