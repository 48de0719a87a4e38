/**
 * What a running topology answers over HTTP (`src/http.ts` serves it): liveness, readiness, the
 * metrics text and feature lookups.
 */
import { accessSync, constants as fsConstants } from "node:fs";
import type { HttpBackend } from "../http.js";
import type { PipelineMetrics } from "../observability/metrics.js";
import type { JetStreamSource } from "../sources/jetstream.js";
import type { FeatureLookups } from "./features.js";

export interface Health {
  readonly ok: boolean;
  readonly reason?: string;
}

/** The state of a run that readiness is read from. */
export interface RunState {
  readonly failure: Error | null;
  readonly running: boolean;
  /** The source is a broker: readiness says so while connecting. */
  readonly broker: boolean;
  readonly jetstream: JetStreamSource | null;
  readonly dataDir: string;
}

/** Ready when running, connected to the broker and consuming (for JetStream), and the data dir is writable. */
export function readinessOf(s: RunState): Health {
  if (s.failure) return { ok: false, reason: `pipeline failed: ${s.failure.message}` };
  if (!s.running) return { ok: false, reason: s.broker ? "connecting to NATS" : "starting" };
  if (s.jetstream && !s.jetstream.connected) return { ok: false, reason: "disconnected from NATS; reconnecting" };
  const stalled = s.jetstream?.stalled;
  if (stalled) return { ok: false, reason: stalled };
  try {
    accessSync(s.dataDir, fsConstants.W_OK);
  } catch (err) {
    return { ok: false, reason: `data dir ${s.dataDir} is not writable: ${(err as NodeJS.ErrnoException).code}` };
  }
  return { ok: true };
}

/** What the HTTP endpoints read from a topology. */
export interface EndpointSources {
  readonly metrics: PipelineMetrics | null;
  readonly features: FeatureLookups;
  failure(): Error | null;
  readiness(): Health;
}

/** The HTTP backend of a topology: `/metrics`, `/healthz` (alive until the pipeline fails), `/readyz`, `/features/<id>`. */
export function topologyEndpoints(t: EndpointSources): HttpBackend {
  return {
    metrics: async () => ({ contentType: t.metrics?.registry.contentType ?? "text/plain", body: (await t.metrics?.text()) ?? "" }),
    health: () => {
      const failure = t.failure();
      return failure ? { ok: false, reason: failure.message } : { ok: true };
    },
    ready: () => t.readiness(),
    features: (id, asOf) => t.features.get(id, asOf),
  };
}
