/**
 * A custom Observable source learns when its messages are durable: each message's `ack` is called
 * only once the message is in bronze.sqlite, on both commit threads.
 */
import { describe, expect, it } from "vitest";
import { join } from "node:path";
import { Subject } from "rxjs";
import Database from "better-sqlite3";
import { createTopology } from "../src/topology.js";
import type { SourceMessage } from "../src/types.js";
import { tempDirs } from "./helpers/tmp.js";

const tempDir = tempDirs("ack");
const ORIGIN = "test:acks";

/** Whether bronze.sqlite holds the origin's message at this position, read from the file itself. */
function inBronze(dataDir: string, originSeq: number): boolean {
  const db = new Database(join(dataDir, "bronze.sqlite"), { readonly: true, fileMustExist: true });
  try {
    const row = db
      .prepare("SELECT count(*) AS n FROM messages m JOIN origins o ON o.id = m.origin_id WHERE o.name = ? AND m.origin_seq = ?")
      .get(ORIGIN, originSeq) as { n: number };
    return row.n === 1;
  } finally {
    db.close();
  }
}

function transaction(seq: number, ack: () => void): SourceMessage {
  const record = { transaction_id: `t${seq}`, customer_id: "c1", amount: 1, currency: "USD", transaction_date: "2026-03-01T10:00:00Z" };
  return {
    origin: ORIGIN,
    originSeq: seq,
    subject: "tributary.transactions",
    data: new TextEncoder().encode(JSON.stringify(record)),
    receivedAt: Date.now(),
    publishedAt: null,
    contentType: "application/json",
    msgId: null,
    ack,
  };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe.each(["worker", "inline"] as const)("observable source acks (%s commit thread)", (commitThread) => {
  it("calls each message's ack once, only after the message is in bronze.sqlite", async () => {
    const dir = tempDir();
    const messages = new Subject<SourceMessage>();
    const topology = createTopology({
      dataDir: dir,
      source: { kind: "observable", messages },
      config: { batch: { maxRecords: 50, maxWait: 5 }, storage: { commitThread } },
      metrics: false,
      // Slow bronze commits, so an ack that came early would be seen early.
      faults: { crashPoint: null, crashAfterBatches: 0, commitDelayMs: 150 },
    });
    await topology.start();
    const acked: { seq: number; durable: boolean }[] = [];
    const total = 120;
    for (let seq = 1; seq <= total; seq++) messages.next(transaction(seq, () => acked.push({ seq, durable: inBronze(dir, seq) })));
    if (commitThread === "worker") {
      // The commits run on the worker, 150 ms each: nothing is committed yet, so nothing is acked.
      await new Promise((r) => setTimeout(r, 50));
      expect(acked).toEqual([]);
    }
    await until(() => acked.length === total, "every ack");
    expect(acked.map((a) => a.seq)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(acked.every((a) => a.durable)).toBe(true);
    messages.complete();
    const stats = await topology.done;
    expect(stats.bronze).toBe(total);
    expect(acked).toHaveLength(total);
  });
});
