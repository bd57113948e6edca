// EventStreamPublisher: publishes batches of events over one EventService.StreamEvents call with
// backpressure.
//
// The protocol (see protos/automations/v1/event_service.proto): every request is one batch, the
// engine answers every request with exactly one response, in order, echoing its `sequence`. A
// response carries either the per-event results or a google.rpc.Status for the whole batch;
// RESOURCE_EXHAUSTED (the engine is behind) and UNAVAILABLE mean "nothing of this batch was
// accepted, resend it later". Publishing is idempotent by `Event.id`, so resending is always safe.
//
// Backpressure here is three things:
//   1. at most `maxInFlight` batches are unanswered at any time: `send` waits for a free slot;
//   2. `send` also waits for the stream's write buffer to drain (Node's `write() === false`);
//   3. a batch refused with RESOURCE_EXHAUSTED or UNAVAILABLE keeps its slot and is resent after
//      an exponential backoff with jitter; if the whole call fails with one of those codes, the
//      stream is reopened and every unanswered batch is resent.
import { type ClientDuplexStream, type ServiceError, status } from "@grpc/grpc-js";

import type { Event } from "./gen/automations/v1/event";
import type {
  EventResult,
  EventServiceClient,
  StreamEventsRequest,
  StreamEventsResponse,
} from "./gen/automations/v1/event_service";

/** Status codes after which a batch (or the whole stream) is resent. */
const RETRYABLE: ReadonlySet<number> = new Set([status.RESOURCE_EXHAUSTED, status.UNAVAILABLE]);

export interface PublisherOptions {
  /** How many batches may be unanswered at once (default 4). */
  maxInFlight?: number;
  /** How often one batch is sent before giving up (default 12). */
  maxAttempts?: number;
  /** The first retry's delay in milliseconds, doubled on each retry (default 50). */
  initialBackoffMs?: number;
  /** The longest delay between two attempts, in milliseconds (default 2000). */
  maxBackoffMs?: number;
}

/** A batch handed to the publisher. */
export interface Ticket {
  /** Resolves with one result per event once the engine accepted the batch (after retries). */
  done: Promise<EventResult[]>;
}

interface Batch {
  events: Event[];
  attempts: number;
  resolve: (results: EventResult[]) => void;
  reject: (error: Error) => void;
}

type StreamCall = ClientDuplexStream<StreamEventsRequest, StreamEventsResponse>;

export class EventStreamPublisher {
  private readonly maxInFlight: number;
  private readonly maxAttempts: number;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private call: StreamCall | undefined;
  private nextSequence = 1;
  /** Batches written on the current call and not yet answered, by their sequence. */
  private readonly unanswered = new Map<number, Batch>();
  private active = 0;
  private readonly slotWaiters: Array<() => void> = [];
  private readonly outstanding = new Set<Promise<unknown>>();
  /** How many times a batch or the stream was retried (for reporting). */
  retries = 0;

  constructor(
    private readonly client: EventServiceClient,
    options: PublisherOptions = {},
  ) {
    this.maxInFlight = options.maxInFlight ?? 4;
    this.maxAttempts = options.maxAttempts ?? 12;
    this.initialBackoffMs = options.initialBackoffMs ?? 50;
    this.maxBackoffMs = options.maxBackoffMs ?? 2000;
  }

  /**
   * Sends one batch. Resolves once the batch is on the wire, which may wait for a free in-flight
   * slot or for the write buffer to drain; the returned ticket's `done` resolves with the results.
   */
  async send(events: Event[]): Promise<Ticket> {
    while (this.active >= this.maxInFlight) {
      await new Promise<void>((wake) => this.slotWaiters.push(wake));
    }
    this.active += 1;
    let batch!: Batch;
    const done = new Promise<EventResult[]>((resolve, reject) => {
      batch = { events, attempts: 0, resolve, reject };
    });
    const settled = done.then(
      () => this.release(),
      () => this.release(),
    );
    this.outstanding.add(settled);
    void settled.then(() => this.outstanding.delete(settled));
    await this.write(batch);
    return { done };
  }

  /** Waits for every batch to be answered, then ends the stream. */
  async close(): Promise<void> {
    while (this.outstanding.size > 0) {
      await Promise.all([...this.outstanding]);
    }
    const call = this.call;
    this.call = undefined;
    if (call !== undefined) {
      await new Promise<void>((resolve) => {
        call.once("status", () => resolve());
        call.once("error", () => resolve());
        call.end();
      });
    }
  }

  private release(): void {
    this.active -= 1;
    this.slotWaiters.shift()?.();
  }

  private backoff(attempt: number): number {
    const base = Math.min(this.initialBackoffMs * 2 ** Math.max(0, attempt - 1), this.maxBackoffMs);
    return base * (0.5 + Math.random() / 2);
  }

  private async write(batch: Batch): Promise<void> {
    batch.attempts += 1;
    const call = this.open();
    const sequence = this.nextSequence++;
    this.unanswered.set(sequence, batch);
    if (!call.write({ sequence, events: batch.events })) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          call.off("drain", done);
          call.off("error", done);
          resolve();
        };
        call.on("drain", done);
        call.on("error", done);
      });
    }
  }

  private open(): StreamCall {
    if (this.call !== undefined) return this.call;
    const call = this.client.streamEvents();
    this.call = call;
    call.on("data", (response: StreamEventsResponse) => this.onResponse(response));
    call.on("error", (error: ServiceError) => this.onCallEnded(call, error));
    call.on("end", () =>
      this.onCallEnded(call, { code: status.UNAVAILABLE, message: "stream ended" }),
    );
    return call;
  }

  private onResponse(response: StreamEventsResponse): void {
    const batch = this.unanswered.get(response.sequence);
    if (batch === undefined) return;
    this.unanswered.delete(response.sequence);
    const outcome = response.outcome;
    if (outcome?.$case === "result") {
      batch.resolve(outcome.value.results);
      return;
    }
    const code = outcome?.$case === "error" ? outcome.value.code : status.UNKNOWN;
    const message = outcome?.$case === "error" ? outcome.value.message : "empty response";
    this.retryOrFail(batch, code, message);
  }

  private retryOrFail(batch: Batch, code: number, message: string): void {
    if (!RETRYABLE.has(code) || batch.attempts >= this.maxAttempts) {
      batch.reject(new Error(`batch failed after ${batch.attempts} attempts: ${status[code]}: ${message}`));
      return;
    }
    this.retries += 1;
    setTimeout(() => void this.write(batch), this.backoff(batch.attempts));
  }

  /** The call is over (error or end): every unanswered batch is in an unknown state. */
  private onCallEnded(call: StreamCall, error: { code: number; message: string }): void {
    if (this.call !== call) return;
    this.call = undefined;
    const lost = [...this.unanswered.values()];
    this.unanswered.clear();
    for (const batch of lost) this.retryOrFail(batch, error.code, error.message);
  }
}
