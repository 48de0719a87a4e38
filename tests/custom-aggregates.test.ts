/**
 * Every aggregate and field kind of custom features, through a real topology and real SQLite
 * files, against a plain computation at instants that cut days (and windows) in the middle:
 * mean and sum of money, min and max of times, mean of durations, count with a filter, lifetime
 * and windowed.
 */
import { describe, expect, it } from "vitest";
import { from } from "rxjs";
import { createTopology } from "../src/topology.js";
import type { SourceMessage } from "../src/types.js";
import { tempDirs } from "./helpers/tmp.js";

const tmp = tempDirs("aggregates");
const DAY = 86_400_000;
const enc = new TextEncoder();

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

describe("custom aggregates", () => {
  it("count, sum, mean, min and max over money, times and durations are exact at mid-day instants", async () => {
    const r = rng(99);
    const start = Date.UTC(2026, 9, 1);
    const tx: { id: string; c: string; at: number; amount: number; currency: string }[] = [];
    const ss: { id: string; c: string; at: number; ms: number; device: string }[] = [];
    const messages: SourceMessage[] = [];
    for (let i = 0; i < 1_500; i++) {
      const c = `c${Math.floor(r() * 12)}`;
      const at = start + Math.floor(r() * 50 * DAY);
      if (r() < 0.6) {
        const t = { id: `t${i}`, c, at, amount: Math.round(r() * 30_000) / 100, currency: r() < 0.5 ? "USD" : "GBP" };
        tx.push(t);
        messages.push({ origin: "test:agg", originSeq: messages.length + 1, subject: "tributary.transactions", contentType: "application/json", msgId: null, receivedAt: Date.UTC(2026, 10, 30), publishedAt: null, data: enc.encode(JSON.stringify({ transaction_id: t.id, customer_id: c, amount: t.amount, currency: t.currency, transaction_date: new Date(at).toISOString() })) });
      } else {
        const s = { id: `s${i}`, c, at, ms: Math.floor(r() * 5_400_000), device: r() < 0.4 ? "mobile" : "desktop" };
        ss.push(s);
        messages.push({ origin: "test:agg", originSeq: messages.length + 1, subject: "tributary.sessions", contentType: "application/json", msgId: null, receivedAt: Date.UTC(2026, 10, 30), publishedAt: null, data: enc.encode(JSON.stringify({ session_id: s.id, customer_id: c, session_start: new Date(at).toISOString(), session_end: new Date(at + s.ms).toISOString(), device_type: s.device })) });
      }
    }
    // Arrival order unrelated to event time.
    messages.reverse();
    messages.forEach((m, i) => ((m as { originSeq: number }).originSeq = i + 1));
    const rates: Record<string, number> = { USD: 1, GBP: 1.27 };
    const t = createTopology({
      dataDir: tmp(),
      source: { kind: "observable", messages: from(messages) },
      metrics: false,
      config: {
        storage: { commitThread: "inline" },
        features: {
          custom: [
            { name: "mean_spend_10d", from: "transactions", aggregate: "mean", field: "amount_base", window: "10d" },
            { name: "gbp_sum", from: "transactions", aggregate: "sum", field: "amount", where: { currency: "GBP" } },
            { name: "first_purchase", from: "transactions", aggregate: "min", field: "transaction_date" },
            { name: "last_mobile_session_end", from: "sessions", aggregate: "max", field: "session_end", where: { device_type: "mobile" } },
            { name: "mean_session_3d", from: "sessions", aggregate: "mean", field: "duration", window: "3d" },
            { name: "sessions_2d", from: "sessions", aggregate: "count", window: "2d" },
          ],
        },
      },
    });
    await t.start();
    await t.done;
    for (const T of [Date.UTC(2026, 9, 12, 7, 13), Date.UTC(2026, 9, 20, 0, 0), Date.UTC(2026, 10, 3, 23, 59, 59, 999), Date.UTC(2026, 10, 30)]) {
      for (let k = 0; k < 12; k++) {
        const id = `c${k}`;
        const row = t.features.get(id, T);
        const mine = tx.filter((x) => x.c === id && x.at < T);
        const sess = ss.filter((x) => x.c === id && x.at < T);
        if (mine.length + sess.length === 0) {
          expect(row, `${id} at ${new Date(T).toISOString()}`).toBeNull();
          continue;
        }
        const label = `${id} at ${new Date(T).toISOString()}`;
        const w10 = mine.filter((x) => x.at >= T - 10 * DAY);
        const mean10 = w10.length ? w10.reduce((a, x) => a + x.amount * rates[x.currency]!, 0) / w10.length : null;
        if (mean10 === null) expect(row!.mean_spend_10d, label).toBeNull();
        else expect(Math.abs((row!.mean_spend_10d as number) - mean10), label).toBeLessThanOrEqual(0.0101);
        const gbp = mine.filter((x) => x.currency === "GBP").reduce((a, x) => a + x.amount, 0);
        expect(Math.abs((row!.gbp_sum as number) - gbp), label).toBeLessThanOrEqual(0.0101);
        const first = mine.length ? new Date(Math.min(...mine.map((x) => x.at))).toISOString() : null;
        expect(row!.first_purchase, label).toBe(first);
        const mobile = sess.filter((x) => x.device === "mobile");
        expect(row!.last_mobile_session_end, label).toBe(mobile.length ? new Date(Math.max(...mobile.map((x) => x.at + x.ms))).toISOString() : null);
        const w3 = sess.filter((x) => x.at >= T - 3 * DAY);
        const mean3 = w3.length ? w3.reduce((a, x) => a + x.ms / 1000, 0) / w3.length : null;
        if (mean3 === null) expect(row!.mean_session_3d, label).toBeNull();
        else expect(Math.abs((row!.mean_session_3d as number) - mean3), label).toBeLessThanOrEqual(0.001);
        expect(row!.sessions_2d, label).toBe(sess.filter((x) => x.at >= T - 2 * DAY).length);
      }
    }
  });
});
