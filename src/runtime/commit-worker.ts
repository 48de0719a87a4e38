/**
 * The commit worker: a worker thread that owns the layers' write connections and runs
 * {@link LayerWriter} on each batch the topology hands over, reporting each commit back.
 */
import { parentPort, workerData } from "node:worker_threads";
import type { StorageOptions } from "../sinks/database.js";
import { LayerWriter } from "./layer-writer.js";
import type { Faults } from "./faults.js";
import type { CustomFeature } from "../model/features.js";
import type { EntityDefinition } from "../model/entities.js";
import { decodeBatch, serializeError, type WorkerReply, type WorkerRequest } from "./committer.js";

const port = parentPort!;
const { dataDir, storage, faults, features, entities, presence } = workerData as {
  dataDir: string;
  storage: StorageOptions;
  faults: Faults;
  features: CustomFeature[];
  entities: EntityDefinition[] | undefined;
  presence: SharedArrayBuffer | undefined;
};
const post = (m: WorkerReply) => port.postMessage(m);

let writer: LayerWriter | null = null;
try {
  writer = new LayerWriter(dataDir, storage, faults, features, entities, presence);
  post({ type: "ready" });
} catch (err) {
  post({ type: "error", id: null, error: serializeError(err) });
}

let failed = false;

port.on("message", (m: WorkerRequest) => {
  if (m.type === "close") {
    writer?.close();
    writer = null;
    port.close();
    return;
  }
  // After a failed commit nothing more is written: the topology stops and recovers on restart.
  if (failed || !writer) return;
  const id = m.id;
  try {
    const batch = decodeBatch(m.wire);
    writer.commit(batch, {
      bronze: (seqs, ms) => post({ type: "bronze", id, seqs, ms }),
      silver: (summary, ms) => post({ type: "silver", id, summary, ms }),
      gold: (position, ms) => post({ type: "gold", id, position, ms }),
    });
    post({ type: "done", id });
  } catch (err) {
    failed = true;
    post({ type: "error", id, error: serializeError(err) });
  }
});
