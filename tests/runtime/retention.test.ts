/**
 * Bronze retention on real SQLite files: only messages silver and gold have both applied and
 * that arrived long enough ago are deleted, the last message of each origin stays, the trigger
 * refuses any other delete, a redelivery of pruned messages counts nothing twice, and the
 * features do not change.
 */
import { describe, expect, it } from "vitest";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { Subject, from } from "rxjs";
import Database from "better-sqlite3";
import { createTopology } from "../../src/topology.js";
import { BronzeStore, pruneBronze, prunedCount } from "../../src/sinks/bronze.js";
import type { SourceMessage } from "../../src/types.js";
import { tempDirs } from "../helpers/tmp.js";
import { until } from "../helpers/poll.js";
import { bronzeRetention } from "../helpers/tables.js";
import { sourceMessage } from "../helpers/fixtures.js";

const tmp = tempDirs("retention");
const DAY = 86_400_000;
const NOW = Date.now();
const enc = new TextEncoder();

/** 600 transactions received 10 days ago, then 200 received now, over 30 customers. */
function stream(): { messages: SourceMessage[]; spend: Map<string, number> } {
  const messages: SourceMessage[] = [];
  const spend = new Map<string, number>();
  for (let i = 0; i < 800; i++) {
    const c = `c${i % 30}`;
    const receivedAt = i < 600 ? NOW - 10 * DAY + i : NOW - 1000 + i;
    const amount = 1 + (i % 17);
    spend.set(c, (spend.get(c) ?? 0) + amount);
    messages.push({
      origin: "test:retention",
      originSeq: i + 1,
      subject: "tributary.transactions",
      data: enc.encode(JSON.stringify({ transaction_id: `t${i}`, customer_id: c, amount, currency: "USD", transaction_date: new Date(receivedAt - 60_000).toISOString() })),
      receivedAt,
      publishedAt: null,
      contentType: "application/json",
      msgId: null,
    });
  }
  return { messages, spend };
}

const count = (dir: string, sql: string) => {
  const db = new Database(join(dir, "bronze.sqlite"), { readonly: true });
  try {
    return db.prepare(sql).pluck().get() as number;
  } finally {
    db.close();
  }
};

describe("bronze retention", () => {
  for (const thread of ["inline", "worker"] as const) {
    it(`deletes applied messages older than retention.bronze and nothing else (${thread} commits), and a redelivery counts nothing twice`, async () => {
      const dir = tmp();
      const { messages, spend } = stream();
      const config = { storage: { commitThread: thread }, retention: { bronze: "7d", pruneEvery: "100ms" }, batch: { maxRecords: 100 } };
      // A source that stays open, as a daemon's does: retention runs while the topology does.
      const live = new Subject<SourceMessage>();
      const t = createTopology({ dataDir: dir, source: { kind: "observable", messages: live }, metrics: false, config });
      await t.start();
      for (const m of messages) live.next(m);
      // Pruning runs on its own clock: wait for it, with a deadline.
      await until("retention to prune the 600 old messages", () => bronzeRetention(dir).pruned >= 600, 20_000);
      await t.stop();
      // The 200 recent ones stay (the origin's last message is among them).
      expect(count(dir, "SELECT count(*) FROM messages")).toBe(200);
      expect(count(dir, "SELECT pruned FROM retention")).toBe(600);
      expect(count(dir, "SELECT min(origin_seq) FROM messages")).toBe(601);
      for (const [c, total] of spend) expect(t.features.get(c)?.total_spend, c).toBe(total);

      // The whole stream again (a redelivery, pruned messages included): nothing new anywhere.
      const again = createTopology({ dataDir: dir, source: { kind: "observable", messages: from(messages) }, metrics: false, config });
      await again.start();
      const stats = await again.done;
      await again.stop();
      expect(stats.bronze).toBe(0);
      expect(Object.values(stats.silver).reduce((a, b) => a + b, 0)).toBe(0);
      for (const [c, total] of spend) expect(again.features.get(c)?.total_spend, c).toBe(total);

      // Silver and gold lost after pruning: they cannot be rebuilt from bronze, and are not, partly.
      for (const f of ["silver.sqlite", "gold.sqlite"]) for (const x of ["", "-wal", "-shm"]) rmSync(join(dir, f + x), { force: true });
      const rebuild = createTopology({ dataDir: dir, source: { kind: "observable", messages: from([]) }, metrics: false, config });
      await expect(rebuild.start()).rejects.toThrow(/bronze retention has deleted messages up to \d+: silver cannot be rebuilt from bronze/);
    });
  }

  it("never deletes above what both layers applied, keeps each origin's last message, and the trigger refuses other deletes", () => {
    const dir = tmp();
    const bronze = new BronzeStore(dir, { synchronous: "normal", busyTimeout: 1000 });
    try {
      const old = NOW - 30 * DAY;
      bronze.append([
        ...Array.from({ length: 10 }, (_, i) => ({ msg: sourceMessage({ origin: "a", originSeq: i + 1, receivedAt: old + i }) })),
        ...Array.from({ length: 5 }, (_, i) => ({ msg: sourceMessage({ origin: "b", originSeq: i + 1, receivedAt: old + 100 + i }) })),
      ]);
      // a: seqs 1..10, b: 11..15. Both layers applied up to 7 only.
      expect(pruneBronze(bronze.db, { applied: 7, receivedBefore: NOW, limit: 100 })).toBe(7);
      expect(bronze.db.prepare("SELECT seq FROM messages ORDER BY seq").pluck().all()).toEqual([8, 9, 10, 11, 12, 13, 14, 15]);
      // Everything applied: all but the last message of each origin.
      expect(pruneBronze(bronze.db, { applied: 15, receivedBefore: NOW, limit: 3 })).toBe(3);
      expect(pruneBronze(bronze.db, { applied: 15, receivedBefore: NOW, limit: 100 })).toBe(3);
      expect(bronze.db.prepare("SELECT seq FROM messages ORDER BY seq").pluck().all()).toEqual([10, 15]);
      expect(prunedCount(bronze.db)).toBe(13);
      expect(bronze.lastOriginSeq("a")).toBe(10);
      expect(bronze.lastOriginSeq("b")).toBe(5);
      // Too recent: nothing.
      bronze.append([{ msg: sourceMessage({ origin: "a", originSeq: 11, receivedAt: NOW }) }, { msg: sourceMessage({ origin: "a", originSeq: 12, receivedAt: NOW }) }]);
      // Seq 10 is no longer a's last message: it goes; the new ones are too recent.
      expect(pruneBronze(bronze.db, { applied: 15, receivedBefore: NOW - DAY, limit: 100 })).toBe(1);
      expect(pruneBronze(bronze.db, { applied: 17, receivedBefore: NOW - DAY, limit: 100 })).toBe(0);
      expect(bronze.db.prepare("SELECT seq FROM messages ORDER BY seq").pluck().all()).toEqual([15, 16, 17]);
      // A delete above the floor (15) fails, whoever issues it; below it, of what remains, it may.
      expect(() => bronze.db.prepare("DELETE FROM messages WHERE seq = 16").run()).toThrow(/only messages silver and gold have applied/);
      expect(() => bronze.db.prepare("UPDATE retention SET floor = 3").run()).toThrow(/only moves forward/);
      expect(() => bronze.db.prepare("UPDATE messages SET subject = 'x' WHERE seq = 16").run()).toThrow(/append-only/);
    } finally {
      bronze.close();
    }
  });
});
