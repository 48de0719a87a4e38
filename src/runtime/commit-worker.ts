/**
 * The commit worker: a worker thread that owns the layers' write connections and runs
 * {@link LayerWriter} on each batch the topology hands over, reporting each commit back. With
 * `stages`, batches arrive as source messages and the worker runs the built-in record stages
 * first, with the dedupe window and segment cache of its own.
 */
import { parentPort, workerData } from "node:worker_threads";
import type { StorageOptions } from "../sinks/database.js";
import { LayerWriter } from "./layer-writer.js";
import type { Faults } from "./faults.js";
import type { CustomFeature } from "../model/features.js";
import type { EntityDefinition } from "../model/entities.js";
import { decodeBatch, decodeMessages, serializeError, type WorkerReply, type WorkerRequest } from "./committer.js";
import type { SourceMessage, Staged } from "../types.js";
import { builtInStages, type StageSettings } from "../operators/built-ins.js";
import { DedupeWindow } from "../operators/dedupe.js";
import { SegmentCache } from "./segments.js";

const port = parentPort!;
const { dataDir, storage, faults, features, entities, presence, stages } = workerData as {
  dataDir: string;
  storage: StorageOptions;
  faults: Faults;
  features: CustomFeature[];
  entities: EntityDefinition[] | undefined;
  presence: SharedArrayBuffer | undefined;
  stages: { settings: StageSettings; watermark: number | null } | undefined;
};
const post = (m: WorkerReply) => port.postMessage(m);

let writer: LayerWriter | null = null;
let window: DedupeWindow | null = null;
let run: ((m: SourceMessage) => Staged) | null = null;
try {
  const w = (writer = new LayerWriter(dataDir, storage, faults, features, entities, presence));
  if (stages) {
    window = new DedupeWindow(stages.settings.dedupe, stages.watermark);
    run = builtInStages(stages.settings, window, new SegmentCache((id) => w.segmentOf(id)));
  }
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
    const batch = m.wire.staged ? decodeBatch(m.wire) : stageAll(decodeMessages(m.wire));
    writer.commit(batch, {
      bronze: (seqs, ms, perEntity) => post({ type: "bronze", id, seqs, ms, perEntity }),
      silver: (summary, ms) => post({ type: "silver", id, summary: window ? { ...summary, window: { size: window.size, watermark: window.watermark } } : summary, ms }),
      gold: (position, ms, customers) => post({ type: "gold", id, position, ms, customers }),
    });
    post({ type: "done", id });
  } catch (err) {
    failed = true;
    post({ type: "error", id, error: serializeError(err) });
  }
});

/** Runs the record stages over a batch of source messages, in order. */
function stageAll(messages: SourceMessage[]): Staged[] {
  if (!run) throw new Error("the commit worker got source messages but was not given the stages");
  const out: Staged[] = new Array(messages.length);
  for (let i = 0; i < messages.length; i++) out[i] = run(messages[i]!);
  return out;
}
