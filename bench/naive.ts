/**
 * The naive consumer: what a user would write by hand against the same client. Per message it
 * decodes, validates, INSERTs into SQLite in its own (autocommit) transaction, then acks that one
 * message (AckPolicy.Explicit). It uses tributary's own decode and validate functions, so the
 * difference from tributary is architecture (batching, one transaction per batch), not parsing.
 *
 * SQLite runs in WAL mode with the `synchronous` level tributary uses for bronze (FULL by
 * default), so that an acked message is as durable in both: each ack follows a commit that
 * survives power loss. The comparison is then about design (one fsync per batch instead of one per
 * message), not about durability. The bench also runs it at NORMAL, where an ack can outrun a
 * power cut and the naive consumer has no way to read the lost messages again, and with
 * `sqliteDefaults` (rollback journal, synchronous=FULL), reporting both separately.
 */
import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { AckPolicy } from "@nats-io/jetstream";
import { decodeMessage } from "../src/operators/decode.js";
import { validateRecord } from "../src/operators/validate.js";
import { DEFAULT_RATES } from "../src/config.js";
import { peakRssMb, startRssSampler } from "./stats.js";
import { consumeEvents, type ConsumerPhaseOptions, type PhaseResult } from "./ceiling.js";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS records (
  entity TEXT NOT NULL,
  id TEXT NOT NULL,
  customer_id TEXT NOT NULL,
  event_at INTEGER,
  stream_seq INTEGER NOT NULL,
  body TEXT NOT NULL,
  PRIMARY KEY (entity, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS quarantine (
  stream_seq INTEGER PRIMARY KEY,
  entity TEXT NOT NULL,
  reason TEXT NOT NULL,
  field TEXT
);`;

/** The file the naive consumer writes in `dataDir`. */
export const NAIVE_FILE = "naive.sqlite";

/**
 * Consumes the whole stream once, one transaction and one ack per message; or, with `batchEvery`,
 * one transaction and one cumulative ack (AckPolicy.All) per `batchEvery` messages. The batched
 * form is the single-table floor: the least a consumer that keeps one durable SQLite row per event
 * can cost on this client and server, with no dedupe window, layers or aggregates.
 */
export async function runNaive(
  o: ConsumerPhaseOptions & { dataDir: string; sqliteDefaults?: boolean; synchronous?: "normal" | "full"; batchEvery?: number },
): Promise<PhaseResult> {
  const rss = startRssSampler();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  mkdirSync(o.dataDir, { recursive: true });
  const db = new Database(join(o.dataDir, NAIVE_FILE));
  if (!o.sqliteDefaults) {
    db.pragma("journal_mode = WAL");
    db.pragma(`synchronous = ${(o.synchronous ?? "full").toUpperCase()}`);
  }
  const pragmas = `journal_mode=${db.pragma("journal_mode", { simple: true })}, synchronous=${db.pragma("synchronous", { simple: true })}`;
  db.exec(SCHEMA);
  // Events: the first copy of an id wins. Profiles: the latest wins.
  const insertEvent = db.prepare(
    "INSERT INTO records (entity, id, customer_id, event_at, stream_seq, body) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
  );
  const upsertProfile = db.prepare(
    `INSERT INTO records (entity, id, customer_id, event_at, stream_seq, body) VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (entity, id) DO UPDATE SET body = excluded.body, event_at = excluded.event_at, stream_seq = excluded.stream_seq`,
  );
  const insertQuarantine = db.prepare("INSERT INTO quarantine (stream_seq, entity, reason, field) VALUES (?, ?, ?, ?)");

  const decodeOpts = { maxPayloadBytes: 1_048_576 };
  const validateOpts = { rates: DEFAULT_RATES };
  let valid = 0;
  let quarantined = 0;
  const batchEvery = o.batchEvery ?? 0;
  const ackPolicy = batchEvery > 0 ? AckPolicy.All : AckPolicy.Explicit;
  const { n, seconds, cpuSeconds } = await consumeEvents(o, { name: "bench-naive", ackPolicy, t0, cpu0 }, (m, msg, k) => {
    if (batchEvery > 0 && !db.inTransaction) db.exec("BEGIN");
    const staged = validateRecord(decodeMessage(msg, decodeOpts), validateOpts);
    const out = staged.outcome;
    if (out.status === "valid") {
      const r = out.record;
      const stmt = r.entity === "customers" ? upsertProfile : insertEvent;
      stmt.run(r.entity, r.id, r.customer_id, r.eventAt, m.seq, JSON.stringify(r));
      valid++;
    } else if (out.status === "quarantined") {
      insertQuarantine.run(m.seq, staged.entity, out.reason, out.field);
      quarantined++;
    }
    if (batchEvery === 0) m.ack();
    else if (k % batchEvery === 0 || k === o.events) {
      db.exec("COMMIT");
      m.ack();
    }
  });
  rss.stop();
  db.close();
  return { events: n, seconds, eps: n / seconds, peakRssMb: peakRssMb(), cpuSeconds, valid, quarantined, pragmas, batchEvery, rssSamples: rss.samples };
}
