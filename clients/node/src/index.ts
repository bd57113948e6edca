// The automations engine's gRPC API for Node: the generated messages and @grpc/grpc-js clients
// (src/gen, from ../../protos by ts-proto; regenerate with `npm run gen`), plus two small helpers:
// `connect` (the engine's two service clients), `unary` (a unary call as a Promise) and
// `EventStreamPublisher` (StreamEvents with bounded in-flight batches and retries).
import {
  type ChannelCredentials,
  type ClientOptions,
  credentials,
  type ServiceError,
} from "@grpc/grpc-js";

import { AutomationServiceClient } from "./gen/automations/v1/automation_service";
import { EventServiceClient } from "./gen/automations/v1/event_service";

export * from "./gen";
export { EventStreamPublisher, type PublisherOptions, type Ticket } from "./publisher";

/** The engine's default address (`automations serve --grpc-addr`). */
export const DEFAULT_TARGET = "127.0.0.1:50051";

/** The clients of one engine. */
export interface Engine {
  automations: AutomationServiceClient;
  events: EventServiceClient;
  /** Closes both clients' channels. */
  close(): void;
}

/**
 * Returns clients for the engine at `target` (`host:port`), over plaintext unless `creds` says
 * otherwise.
 */
export function connect(
  target: string = process.env.AUTOMATIONS_SERVER ?? DEFAULT_TARGET,
  creds: ChannelCredentials = credentials.createInsecure(),
  options: Partial<ClientOptions> = {},
): Engine {
  const opts: Partial<ClientOptions> = {
    "grpc.max_receive_message_length": 64 << 20,
    "grpc.max_send_message_length": 64 << 20,
    ...options,
  };
  const automations = new AutomationServiceClient(target, creds, opts);
  const events = new EventServiceClient(target, creds, opts);
  return {
    automations,
    events,
    close() {
      automations.close();
      events.close();
    },
  };
}

/**
 * Runs a unary call as a Promise: `await unary<Automation>((cb) => automations.getAutomation(req, cb))`.
 * Rejects with the call's `ServiceError` (its `code` is a `status` of @grpc/grpc-js).
 */
export function unary<T>(
  start: (callback: (error: ServiceError | null, response?: T) => void) => unknown,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    start((error, response) => {
      if (error !== null) reject(error);
      else resolve(response as T);
    });
  });
}
