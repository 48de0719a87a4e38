/**
 * Where the layer writer runs. `worker` (the default) commits on a worker thread, so the thread
 * that runs the NATS client never waits for SQLite; batches are handed over as one JSON text plus
 * one payload buffer ({@link encodeMessages}, or {@link encodeBatch} for records an embedder's
 * stages staged on the calling thread), and the worker runs the record stages itself. `inline`
 * commits on the calling thread, as a library embedded where worker threads are unwelcome may
 * prefer. Both run {@link LayerWriter}.
 */
import { Worker } from "node:worker_threads";
import type { SourceMessage, Staged } from "../types.js";
import { CheckpointError, StorageError } from "../errors.js";
import { layerPath, type StorageOptions } from "../sinks/database.js";
import { LayerWriter, type CommitReports, type WireRecord } from "./layer-writer.js";
import type { Faults } from "./faults.js";
import type { CustomFeature } from "../model/features.js";
import type { EntityDefinition } from "../model/entities.js";
import { retains, type Retention, type RetentionOptions } from "./retention.js";
import { foldInBackground } from "./maintenance.js";
import type { StageSettings } from "../operators/built-ins.js";

export type CommitThread = "worker" | "inline";

/** What a batch holds: staged records, or, for a committer that {@link Committer.runsStages}, source messages. */
export type CommitItem = Staged | SourceMessage;

/** Commits batches in submission order. */
export interface Committer {
  /**
   * Whether this committer runs the record stages itself, on its own thread: then batches are
   * source messages, and the thread that consumes only admits and batches them.
   */
  readonly runsStages: boolean;
  /**
   * Queues a batch. Its reports arrive in protocol order; the promise resolves after its last
   * commit and rejects when any commit fails (every later batch then fails too).
   */
  submit(batch: readonly CommitItem[], reports: CommitReports): Promise<void>;
  /** Closes the layer files once everything submitted is done (or failed). */
  close(): Promise<void>;
}

export interface CommitterOptions {
  readonly dataDir: string;
  readonly storage: StorageOptions;
  readonly faults: Faults;
  /** Custom features gold computes besides the built-in ones. */
  readonly features?: readonly CustomFeature[];
  /** The entities silver keeps (built-in and an embedder's); default the built-in five. */
  readonly entities?: readonly EntityDefinition[];
  /** How often the checkpoint thread runs the incremental parts of `optimize` (`storage.optimizeEvery`); 0 or absent never. */
  readonly optimizeEveryMs?: number;
  /** Retention (`retention.*`); none when absent. */
  readonly retention?: RetentionOptions;
  /** Told when a pruning round fails for a reason other than a busy file. */
  readonly onPruneFailed?: (message: string) => void;
  /** Told when a step of gold's compaction fails for a reason other than a busy file. */
  readonly onFoldFailed?: (message: string) => void;
  readonly thread: CommitThread;
  /** The buffer of this process's gold presence bitmaps (`sinks/gold-presence.ts`), which the writer keeps for lookups. */
  readonly presence?: SharedArrayBuffer;
  /**
   * Run the built-in record stages on the commit thread, with a dedupe window of its own whose
   * watermark starts where the caller's stood. Only a worker committer does; inline, the
   * caller's thread runs them anyway.
   */
  readonly stages?: { readonly settings: StageSettings; readonly watermark: number | null };
}

/** Opens a committer; resolves once the layer files are open for writing. */
export async function openCommitter(options: CommitterOptions): Promise<Committer> {
  if (options.thread === "inline") {
    const writer = new LayerWriter(options.dataDir, options.storage, options.faults, options.features ?? [], options.entities, options.presence);
    const pruner = retains(options.retention) ? writer.retention(options.retention!) : null;
    return new InlineCommitter(writer, pruner, options.retention?.everyMs, options.onPruneFailed, options.onFoldFailed, options.faults.foldDelayMs);
  }
  return WorkerCommitter.open(options);
}

class InlineCommitter implements Committer {
  readonly runsStages = false;
  private failure: unknown = null;
  private readonly pruning: NodeJS.Timeout | null;
  private readonly folding: { stop(): void };

  constructor(
    private readonly writer: LayerWriter,
    pruner: Retention | null,
    everyMs = 10_000,
    onPruneFailed?: (message: string) => void,
    onFoldFailed?: (message: string) => void,
    foldDelayMs?: number,
  ) {
    // Gold's compaction, on this thread between commits, like retention.
    this.folding = foldInBackground(writer.goldDb, onFoldFailed, foldDelayMs);
    // Inline, retention runs on this thread between commits (JavaScript runs one at a time), a
    // small batch per round.
    this.pruning = pruner
      ? setInterval(() => {
          try {
            pruner.round();
          } catch (err) {
            if (!/busy|locked/i.test((err as Error).message)) onPruneFailed?.((err as Error).message);
          }
        }, everyMs)
      : null;
    this.pruning?.unref();
  }

  submit(batch: readonly CommitItem[], reports: CommitReports): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    try {
      this.writer.commit(batch as readonly Staged[], reports);
      return Promise.resolve();
    } catch (err) {
      this.failure = err;
      return Promise.reject(err);
    }
  }

  async close(): Promise<void> {
    if (this.pruning) clearInterval(this.pruning);
    this.folding.stop();
    this.writer.close();
  }
}

/** Messages from the commit worker. */
export type WorkerReply =
  | { readonly type: "ready" }
  | { readonly type: "bronze"; readonly id: number; readonly seqs: (number | null)[]; readonly ms: number; readonly perEntity: [string, number][] }
  | { readonly type: "silver"; readonly id: number; readonly summary: Parameters<CommitReports["silver"]>[0]; readonly ms: number }
  | { readonly type: "gold"; readonly id: number; readonly position: number; readonly ms: number; readonly customers: string[] }
  | { readonly type: "done"; readonly id: number }
  | { readonly type: "error"; readonly id: number | null; readonly error: SerializedError };

/** Messages to the commit worker. */
export type WorkerRequest = { readonly type: "batch"; readonly id: number; readonly wire: WireBatch } | { readonly type: "close" };

export interface SerializedError {
  readonly name: string;
  readonly message: string;
  readonly code?: string;
}

export function serializeError(err: unknown): SerializedError {
  const e = err instanceof Error ? err : new Error(String(err));
  const code = (e as { code?: unknown }).code;
  return { name: e.name, message: e.message, code: typeof code === "string" ? code : undefined };
}

/** Rebuilds an error from the worker with its class, so callers can still tell them apart. */
function deserializeError(s: SerializedError): Error {
  const e = s.name === "StorageError" ? new StorageError(s.message) : s.name === "CheckpointError" ? new CheckpointError(s.message) : new Error(s.message);
  if (e.name !== s.name) e.name = s.name;
  if (s.code !== undefined) (e as Error & { code?: string }).code = s.code;
  return e;
}

/**
 * A batch on its way to the commit worker: the payloads concatenated into one buffer, their
 * lengths, and everything else as one JSON text. V8's JSON is native and fast for these plain
 * records (numbers, strings, nulls); the payloads, which are binary, never pass through it.
 * Both buffers are transferred, not copied. `staged` says whether the rows carry each record's
 * entity and outcome, or only the message, for a worker that runs the stages itself.
 */
export interface WireBatch {
  readonly staged: boolean;
  readonly json: string;
  readonly payloads: Uint8Array;
  readonly lengths: Uint32Array;
}

type WireMessage = [origin: string, originSeq: number, subject: string, receivedAt: number, publishedAt: number | null, contentType: string | null, msgId: string | null];
type WireRow = [...WireMessage, entity: string, outcome: WireRecord["outcome"]];

/** Encodes a batch of staged records for the worker. */
export function encodeBatch(batch: readonly Staged[]): WireBatch {
  const rows: WireRow[] = new Array(batch.length);
  for (let i = 0; i < batch.length; i++) {
    const s = batch[i]!;
    const m = s.msg;
    rows[i] = [m.origin, m.originSeq, m.subject, m.receivedAt, m.publishedAt, m.contentType, m.msgId, s.entity, s.outcome];
  }
  return wireOf(true, rows, batch, (s) => s.msg.data);
}

/** Encodes a batch of source messages, not yet staged, for a worker that runs the stages. */
export function encodeMessages(batch: readonly SourceMessage[]): WireBatch {
  const rows: WireMessage[] = new Array(batch.length);
  for (let i = 0; i < batch.length; i++) {
    const m = batch[i]!;
    rows[i] = [m.origin, m.originSeq, m.subject, m.receivedAt, m.publishedAt, m.contentType, m.msgId];
  }
  return wireOf(false, rows, batch, (m) => m.data);
}

function wireOf<T>(staged: boolean, rows: unknown[], batch: readonly T[], dataOf: (item: T) => Uint8Array): WireBatch {
  const n = batch.length;
  const lengths = new Uint32Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) total += lengths[i] = dataOf(batch[i]!).byteLength;
  const payloads = new Uint8Array(total);
  let at = 0;
  for (let i = 0; i < n; i++) {
    payloads.set(dataOf(batch[i]!), at);
    at += lengths[i]!;
  }
  return { staged, json: JSON.stringify(rows), payloads, lengths };
}

/** Decodes a batch of staged records in the worker; each payload is a view into the one transferred buffer. */
export function decodeBatch(wire: WireBatch): WireRecord[] {
  return decodeRows<WireRow, WireRecord>(wire, (r, msg) => ({ msg, entity: r[7], outcome: r[8] }));
}

/** Decodes a batch of source messages ({@link encodeMessages}) in the worker. */
export function decodeMessages(wire: WireBatch): SourceMessage[] {
  return decodeRows<WireMessage, SourceMessage>(wire, (_, msg) => msg);
}

function decodeRows<R extends readonly unknown[], T>(wire: WireBatch, make: (row: R, msg: SourceMessage) => T): T[] {
  const rows = JSON.parse(wire.json) as R[];
  const payloads = Buffer.from(wire.payloads.buffer, wire.payloads.byteOffset, wire.payloads.byteLength);
  const out: T[] = new Array(rows.length);
  let at = 0;
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    const r = row as unknown as WireMessage;
    const len = wire.lengths[i]!;
    out[i] = make(row, { origin: r[0], originSeq: r[1], subject: r[2], data: payloads.subarray(at, at + len), receivedAt: r[3], publishedAt: r[4], contentType: r[5], msgId: r[6] });
    at += len;
  }
  return out;
}

/**
 * A worker thread's module, `path` relative to `src/` without its extension. Under a TypeScript
 * loader (vitest runs `src/` directly) the worker still needs JavaScript, so it is taken from the
 * build in `dist/`.
 */
export function threadModule(path: string): URL {
  const here = new URL(import.meta.url);
  if (here.pathname.endsWith(".ts")) return new URL(`../../dist/src/${path}.js`, here);
  return new URL(`../${path}.js`, here);
}

const workerUrl = (name: "commit-worker" | "checkpoint-worker") => threadModule(`runtime/${name}`);

/** How often the checkpointer copies the WALs into the layer files. */
const CHECKPOINT_INTERVAL_MS = 200;

interface Pending {
  readonly reports: CommitReports;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

class WorkerCommitter implements Committer {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private failure: Error | null = null;
  private readonly exited: Promise<void>;
  private readonly checkpointerExited: Promise<void>;

  private constructor(
    private readonly worker: Worker,
    private readonly checkpointer: Worker,
    readonly runsStages: boolean,
  ) {
    this.exited = new Promise((resolve) => worker.once("exit", () => resolve()));
    this.checkpointerExited = new Promise((resolve) => checkpointer.once("exit", () => resolve()));
    worker.on("message", (m: WorkerReply) => this.onReply(m));
    worker.on("error", (err) => this.fail(err));
    worker.once("exit", (code) => this.fail(new CheckpointError(`the commit worker exited (code ${code})`)));
  }

  static open(options: CommitterOptions): Promise<Committer> {
    const worker = new Worker(workerUrl("commit-worker"), {
      workerData: { dataDir: options.dataDir, storage: options.storage, faults: options.faults, features: options.features ?? [], entities: options.entities, presence: options.presence, stages: options.stages },
      // The worker's heap holds a few batches at a time (SQLite's page cache lives outside it);
      // without a limit V8 lets garbage pile up to gigabytes before a full collection. The young
      // generation is sized for the stages' garbage, which dies within a batch: at 16 MB their
      // records outlived scavenges and were copied (GC 7-10% of this thread); 48 MB measured
      // +10% events/s and -10% CPU per event, with the same peak RSS (bench/README, sixth round).
      resourceLimits: { maxOldGenerationSizeMb: 128, maxYoungGenerationSizeMb: 48 },
    });
    return new Promise((resolve, reject) => {
      const onMessage = (m: WorkerReply) => {
        if (m.type === "ready") {
          cleanup();
          // The layer files exist now; checkpoint them off the commit path.
          const checkpointer = new Worker(workerUrl("checkpoint-worker"), {
            workerData: {
              files: (["bronze", "silver", "gold"] as const).map((l) => layerPath(options.dataDir, l)),
              intervalMs: CHECKPOINT_INTERVAL_MS,
              busyTimeout: options.storage.busyTimeout,
              retention: options.retention ?? { bronzeMs: 0, everyMs: 60_000 },
              optimizeEveryMs: options.optimizeEveryMs ?? 0,
              foldDelayMs: options.faults.foldDelayMs ?? 0,
              entities: options.entities,
            },
            resourceLimits: { maxOldGenerationSizeMb: 32 },
          });
          checkpointer.on("error", () => undefined); // the writer's autocheckpoint is the fallback
          checkpointer.on("message", (m: { type: string; error?: string }) => {
            if (m.type === "prune_failed") options.onPruneFailed?.(m.error ?? "unknown error");
            else if (m.type === "fold_failed") options.onFoldFailed?.(m.error ?? "unknown error");
          });
          resolve(new WorkerCommitter(worker, checkpointer, options.stages !== undefined));
        } else if (m.type === "error") {
          cleanup();
          void worker.terminate();
          reject(deserializeError(m.error));
        }
      };
      const onError = (err: Error) => {
        cleanup();
        reject(err);
      };
      const onExit = (code: number) => {
        cleanup();
        reject(new StorageError(`the commit worker exited while opening the data dir (code ${code})`));
      };
      const cleanup = () => {
        worker.off("message", onMessage);
        worker.off("error", onError);
        worker.off("exit", onExit);
      };
      worker.on("message", onMessage);
      worker.on("error", onError);
      worker.on("exit", onExit);
    });
  }

  submit(batch: readonly CommitItem[], reports: CommitReports): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const wire = this.runsStages ? encodeMessages(batch as readonly SourceMessage[]) : encodeBatch(batch as readonly Staged[]);
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { reports, resolve, reject });
      this.worker.postMessage({ type: "batch", id, wire } satisfies WorkerRequest, [wire.payloads.buffer as ArrayBuffer, wire.lengths.buffer as ArrayBuffer]);
    });
  }

  private onReply(m: WorkerReply): void {
    if (m.type === "ready") return;
    if (m.type === "error") {
      this.fail(deserializeError(m.error));
      return;
    }
    const p = this.pending.get(m.id);
    if (!p) return;
    try {
      switch (m.type) {
        case "bronze":
          p.reports.bronze(m.seqs, m.ms, m.perEntity);
          break;
        case "silver":
          p.reports.silver(m.summary, m.ms);
          break;
        case "gold":
          p.reports.gold(m.position, m.ms, m.customers);
          break;
        case "done":
          this.pending.delete(m.id);
          p.resolve();
          break;
      }
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
  }

  async close(): Promise<void> {
    this.checkpointer.postMessage({ type: "close" });
    const stuck = setTimeout(() => void this.checkpointer.terminate(), 5_000);
    await this.checkpointerExited;
    clearTimeout(stuck);
    // Posting to a worker that has already exited is a no-op.
    this.worker.postMessage({ type: "close" } satisfies WorkerRequest);
    const timer = setTimeout(() => void this.worker.terminate(), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}
