/**
 * The HTTP server's own thread (`startHttpThread` in `src/http.ts` starts it): it answers
 * `/features/<id>` from a feature reader of its own, so that a lookup never waits behind a batch
 * on the thread that runs the NATS client (and the stages, when that thread runs them). `/metrics`, `/healthz` and `/readyz`
 * are that thread's to answer; they are asked over the port.
 */
import { parentPort, workerData } from "node:worker_threads";
import { startHttpServer, type HttpBackend, type HttpLog, type HttpThreadData, type HttpThreadMessage } from "../http.js";
import { FeatureService } from "./features.js";

const port = parentPort!;
const { listen, options, lookups } = workerData as HttpThreadData;
const post = (m: HttpThreadMessage) => port.postMessage(m);

// Not told of commits from here: any commit to gold clears the cache of as-of lookups.
const service = new FeatureService(lookups.dataDir, { busyTimeout: lookups.busyTimeout, features: lookups.features, presence: lookups.presence }, "commits");

const waiting = new Map<number, (value: unknown) => void>();
let nextId = 1;
function ask<T>(what: "metrics" | "health" | "ready"): Promise<T> {
  const id = nextId++;
  return new Promise<T>((resolve, reject) => {
    waiting.set(id, (value) => {
      const failed = (value as { error?: string } | null)?.error;
      if (typeof failed === "string") reject(new Error(failed));
      else resolve(value as T);
    });
    post({ type: "ask", id, what });
  });
}

const backend: HttpBackend = {
  metrics: () => ask("metrics"),
  health: () => ask("health"),
  ready: () => ask("ready"),
  features: (id, asOf) => service.get(id, asOf),
};

const forward = (level: "info" | "warn" | "error") => (fields: object, message: string) => post({ type: "log", level, fields, message });
const log = { info: forward("info"), warn: forward("warn"), error: forward("error") } as unknown as HttpLog;

startHttpServer(listen, backend, log, options).then(
  ({ server, address }) => {
    post({ type: "listening", address });
    port.on("message", (m: { type: "answer"; id: number; value: unknown } | { type: "close" }) => {
      if (m.type === "answer") {
        waiting.get(m.id)?.(m.value);
        waiting.delete(m.id);
        return;
      }
      server.closeAllConnections();
      server.close(() => {
        service.close();
        port.close();
      });
    });
  },
  (err: Error) => {
    post({ type: "failed", name: err.name, message: err.message });
    service.close();
    port.close();
  },
);
