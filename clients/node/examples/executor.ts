// A third-party executor in Node: carries out the custom action type `acme.page-oncall` for the
// engine, by implementing automations.executor.v1.ExecutorService (protos/automations/executor/v1).
//
//   npx tsx examples/executor.ts [HOST:PORT]        (default $EXECUTOR_ADDR or 127.0.0.1:50061)
//   automations serve --executor acme.page-oncall=127.0.0.1:50061
//
// and an automation with the action `{"type": "acme.page-oncall", "message": "{{ event.resource.id }}"}`.
//
// Delivery is at least once, so the executor deduplicates on `idempotency_key`: the first call
// for a key does the work (here: writes one JSON line, "kind": "executed") and remembers its
// result; every later call with that key (a retry) does nothing and returns the remembered
// result (and writes a "kind": "duplicate" line). The memory is a Map, saved to the JSON file
// $EXECUTOR_STATE after every new key when that is set, so a restarted executor still knows
// what it did.
//
// Environment: EXECUTOR_ADDR, ACTION_TYPES (comma-separated, default acme.page-oncall),
// EXECUTOR_LOG (append the JSON lines to this file instead of stdout), EXECUTOR_STATE.
// It serves grpc.health.v1.Health too, and drains on SIGTERM / SIGINT.
import { appendFileSync, existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";

import {
  Server,
  type ServerUnaryCall,
  type sendUnaryData,
  ServerCredentials,
  status,
} from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";

import {
  ExecuteActionRequest,
  ExecuteActionResponse,
  type ExecuteActionsRequest,
  type ExecuteActionsResponse,
  type ExecutorServiceServer,
  ExecutorServiceService,
} from "../src";

const address = process.argv[2] ?? process.env.EXECUTOR_ADDR ?? "127.0.0.1:50061";
const actionTypes = new Set(
  (process.env.ACTION_TYPES ?? "acme.page-oncall").split(",").map((t) => t.trim()).filter(Boolean),
);
const logFile = process.env.EXECUTOR_LOG;
const stateFile = process.env.EXECUTOR_STATE;

/** idempotency key -> the response returned the first time. */
const done = new Map<string, ExecuteActionResponse>();
if (stateFile !== undefined && existsSync(stateFile)) {
  const saved = JSON.parse(readFileSync(stateFile, "utf8")) as Record<string, unknown>;
  for (const [key, value] of Object.entries(saved)) done.set(key, ExecuteActionResponse.fromJSON(value));
}

function save(): void {
  if (stateFile === undefined) return;
  const data: Record<string, unknown> = {};
  for (const [key, value] of done) data[key] = ExecuteActionResponse.toJSON(value);
  writeFileSync(`${stateFile}.tmp`, JSON.stringify(data));
  renameSync(`${stateFile}.tmp`, stateFile);
}

function log(entry: Record<string, unknown>): void {
  const line = `${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`;
  if (logFile !== undefined) appendFileSync(logFile, line);
  else process.stdout.write(line);
}

const executor: ExecutorServiceServer = {
  executeAction(
    call: ServerUnaryCall<ExecuteActionRequest, ExecuteActionResponse>,
    callback: sendUnaryData<ExecuteActionResponse>,
  ): void {
    const request = call.request;
    const key = request.idempotencyKey;
    if (!actionTypes.has(request.actionType)) {
      // final: the engine does not retry INVALID_ARGUMENT
      callback({ code: status.INVALID_ARGUMENT, details: `unknown action type ${request.actionType}` });
      return;
    }
    if (key === "") {
      callback({ code: status.INVALID_ARGUMENT, details: "idempotency_key is required" });
      return;
    }
    const entry = {
      idempotency_key: key,
      attempt: request.attempt,
      action_type: request.actionType,
      automation: request.automation?.uid ?? "",
      firing: request.firing?.uid ?? "",
      action_index: request.actionIndex,
      triggering_labels: request.triggeringLabels,
    };
    // Check and record without an `await` in between: Node runs this handler to completion, so
    // two concurrent attempts with the same key cannot both get past the check.
    const previous = done.get(key);
    if (previous !== undefined) {
      log({ kind: "duplicate", ...entry });
      callback(null, previous);
      return;
    }
    const message = String(request.parameters?.message ?? "");
    // The "work": a real executor would call the paging service here, passing `key` on as that
    // service's idempotency key.
    const response = ExecuteActionResponse.fromPartial({
      result: { paged: "on-call", message, incident: `inc-${key.slice(-12)}` },
    });
    done.set(key, response);
    save();
    log({ kind: "executed", message, ...entry });
    callback(null, response);
  },
  // Batches are optional: UNIMPLEMENTED makes the engine send each invocation to executeAction.
  executeActions(
    _call: ServerUnaryCall<ExecuteActionsRequest, ExecuteActionsResponse>,
    callback: sendUnaryData<ExecuteActionsResponse>,
  ): void {
    callback({ code: status.UNIMPLEMENTED, details: "this executor takes one invocation per call" });
  },
};

const server = new Server();
server.addService(ExecutorServiceService, executor);
const health = new HealthImplementation({
  "": "SERVING",
  "automations.executor.v1.ExecutorService": "SERVING",
});
health.addToServer(server);

server.bindAsync(address, ServerCredentials.createInsecure(), (error, port) => {
  if (error !== null) {
    console.error(`cannot listen on ${address}: ${error.message}`);
    process.exit(1);
  }
  const host = address.slice(0, address.lastIndexOf(":"));
  console.error(`executor for ${[...actionTypes].join(", ")} listening on ${host}:${port}`);
});

function drain(): void {
  health.setStatus("", "NOT_SERVING");
  health.setStatus("automations.executor.v1.ExecutorService", "NOT_SERVING");
  server.tryShutdown(() => process.exit(0));
  setTimeout(() => process.exit(0), 5000).unref();
}
process.on("SIGTERM", drain);
process.on("SIGINT", drain);
