/**
 * Micro-benchmarks (tinybench) of each operator and of each layer's SQLite batch commit. Every
 * task handles one commit batch (2,000 records by default, tributary's `batch.maxRecords`) of the
 * generator's mix per call, walking through a pool of distinct records, so the figures are per
 * event at the batch size tributary really uses.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Bench } from "tinybench";
import { generateWorkload } from "../src/sources/generator.js";
import { decodeMessage } from "../src/operators/decode.js";
import { validateRecord } from "../src/operators/validate.js";
import { DedupeWindow, dedupeRecord } from "../src/operators/dedupe.js";
import { enrichRecord, type SegmentDirectory } from "../src/operators/enrich.js";
import { aggregateBatch, type GoldDelta } from "../src/operators/aggregate.js";
import { BronzeStore } from "../src/sinks/bronze.js";
import { SilverStore, type Committed } from "../src/sinks/silver.js";
import { GoldStore } from "../src/sinks/gold.js";
import { DEFAULT_RATES } from "../src/config.js";
import type { Accepted, SourceMessage, Staged } from "../src/types.js";

export interface MicroOptions {
  /** Short time budgets and a small pool (the CI smoke run). */
  readonly quick: boolean;
  /** Records per call; default 2,000. */
  readonly batch?: number;
}

export interface MicroResult {
  readonly name: string;
  /** Mean cost per event, in nanoseconds. */
  readonly nsPerEvent: number;
  /** 1e9 / nsPerEvent. */
  readonly eventsPerSecond: number;
  /** Mean and p99 time of one batch, in ms. */
  readonly batchMeanMs: number;
  readonly batchP99Ms: number;
  /** Relative margin of error of the mean, in percent. */
  readonly rmePct: number;
  readonly samples: number;
  readonly note: string;
}

/** A segment directory held in a plain Map (the topology backs its LRU with silver). */
class MapSegments implements SegmentDirectory {
  private readonly m = new Map<string, string>();
  get(id: string): string | undefined {
    return this.m.get(id);
  }
  set(id: string, segment: string): void {
    this.m.set(id, segment);
  }
}

/** Cycles through fixed slices of a pool: call `next()` for the next batch. */
function cycler<T>(pool: readonly T[], batch: number): { next(): T[]; wrapped: () => boolean } {
  const slices: T[][] = [];
  for (let i = 0; i + batch <= pool.length; i += batch) slices.push(pool.slice(i, i + batch));
  let i = 0;
  let wrapped = false;
  return {
    next() {
      const s = slices[i]!;
      i++;
      if (i === slices.length) {
        i = 0;
        wrapped = true;
      }
      return s;
    },
    wrapped: () => wrapped,
  };
}

/** Runs the micro-benchmarks and returns one row per task. */
export async function runMicro(o: MicroOptions): Promise<MicroResult[]> {
  const batch = o.batch ?? 2_000;
  const poolSize = o.quick ? 20_000 : 200_000;
  const now = Date.now();
  const messages: SourceMessage[] = [];
  let i = 0;
  for (const m of generateWorkload({ seed: 11, messages: poolSize })) {
    i++;
    messages.push({ origin: "micro", originSeq: i, subject: m.subject, data: m.data, receivedAt: now, publishedAt: now, contentType: m.contentType, msgId: m.msgId });
  }
  const decodeOpts = { maxPayloadBytes: 1_048_576 };
  const validateOpts = { rates: DEFAULT_RATES };
  const decoded = messages.map((m) => decodeMessage(m, decodeOpts));
  const validated = decoded.map((s) => validateRecord(s, validateOpts));
  const prepWindow = new DedupeWindow({ windowMs: 3650 * 86_400_000, maxEntries: poolSize });
  const segments = new MapSegments();
  const enriched = validated.map((s) => enrichRecord(dedupeRecord(s, prepWindow), { rates: DEFAULT_RATES, segments }));
  const acceptedPool: Accepted[] = [];
  enriched.forEach((s, k) => {
    if (s.outcome.status === "valid") acceptedPool.push({ bronzeSeq: k + 1, record: s.outcome.record });
  });

  const dir = mkdtempSync(join(tmpdir(), "tributary-micro-"));
  const storage = { synchronous: "normal" as const, busyTimeout: 10_000 };
  const bronze = new BronzeStore(dir, storage);
  const silver = new SilverStore(dir, storage);
  const gold = new GoldStore(dir, storage);

  const msgs = cycler(messages, batch);
  const decs = cycler(decoded, batch);
  const vals = cycler(validated, batch);
  const accs = cycler(acceptedPool, batch);
  const silverBatches = cycler(enriched, batch);
  const deltas: GoldDelta[] = [];
  for (let k = 0; k + batch <= acceptedPool.length; k += batch) deltas.push(aggregateBatch({ position: k, accepted: acceptedPool.slice(k, k + batch) }));
  let deltaIndex = 0;
  // Dedupe with a full window that keeps evicting, as in a long run: the pool holds more ids than fit.
  const dedupeEntries = Math.floor(poolSize / 4);
  const window = new DedupeWindow({ windowMs: 3650 * 86_400_000, maxEntries: dedupeEntries });
  let bronzeSeq = 0;
  let silverSeq = 0;

  const bench = new Bench({ time: o.quick ? 100 : 1_000, iterations: o.quick ? 5 : 20, warmupTime: o.quick ? 20 : 200, warmupIterations: o.quick ? 2 : 5 });
  const sink = { n: 0 };
  const notes: Record<string, string> = {};
  const add = (name: string, note: string, fn: () => void) => {
    notes[name] = note;
    bench.add(name, fn);
  };
  add("decode", "MessagePack/JSON → object, 20% JSON", () => {
    for (const m of msgs.next()) if (decodeMessage(m, decodeOpts).outcome.status === "decoded") sink.n++;
  });
  add("validate", "data contract → typed record or quarantine", () => {
    for (const s of decs.next()) if (validateRecord(s, validateOpts).outcome.status === "valid") sink.n++;
  });
  add("dedupe", `LRU window full at ${dedupeEntries.toLocaleString("en-US")} ids, evicting`, () => {
    for (const s of vals.next()) if (dedupeRecord(s, window).outcome.status === "duplicate") sink.n++;
  });
  add("enrich", "currency conversion + segment lookup (in-memory)", () => {
    for (const s of vals.next()) if (enrichRecord(s, { rates: DEFAULT_RATES, segments }).outcome.status === "valid") sink.n++;
  });
  add("aggregate", "per-customer, per-day deltas of one batch", () => {
    sink.n += aggregateBatch({ position: 0, accepted: accs.next() }).days.length;
  });
  add("sqlite bronze append", "one transaction, raw payloads", () => {
    const b = msgs.next().map((m) => ({ msg: { ...m, originSeq: ++bronzeSeq } }));
    sink.n += bronze.append(b).length;
  });
  add("sqlite silver apply", "one transaction, typed rows + quarantine + duplicates", () => {
    const items: Committed[] = silverBatches.next().map((staged: Staged) => ({ staged, bronzeSeq: ++silverSeq }));
    sink.n += silver.apply(items, silverSeq).accepted.length;
  });
  add("sqlite gold apply", "one transaction, daily upserts + profiles", () => {
    gold.apply(deltas[deltaIndex++ % deltas.length]!);
  });
  try {
    await bench.run();
  } finally {
    bronze.close();
    silver.close();
    gold.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const rows: MicroResult[] = [];
  for (const t of bench.tasks) {
    const r = t.result;
    if (r.state !== "completed") throw new Error(`micro-benchmark ${t.name} did not complete (${r.state}${"error" in r ? `: ${r.error.message}` : ""})`);
    const ns = (r.latency.mean * 1e6) / batch;
    let note = notes[t.name] ?? "";
    if (t.name === "sqlite silver apply" && silverBatches.wrapped()) note += " (pool wrapped: later ids hit the primary key)";
    rows.push({
      name: t.name,
      nsPerEvent: ns,
      eventsPerSecond: 1e9 / ns,
      batchMeanMs: r.latency.mean,
      batchP99Ms: r.latency.p99,
      rmePct: r.latency.rme,
      samples: r.latency.samplesCount,
      note,
    });
  }
  return rows;
}
