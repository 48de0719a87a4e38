import { describe, expect, it } from "vitest";
import { from, lastValueFrom, toArray } from "rxjs";
import { enrich, enrichRecord, type EnrichOptions } from "../../src/operators/enrich.js";
import type { CustomerRecord, EventRecord, Staged, TransactionRecord, ValidRecord } from "../../src/types.js";
import { sourceMessage, validStaged } from "../helpers/fixtures.js";

const RATES = { USD: 1, EUR: 1.08, GBP: 1.27, JPY: 0.0067 };
const T = Date.UTC(2026, 2, 1);

const tx = (id: string, customer_id: string, amount: number, currency: string): TransactionRecord => ({
  entity: "transactions",
  id,
  customer_id,
  eventAt: T,
  amount,
  currency,
  amount_base: Number.NaN,
  customer_segment: "unknown",
});
const customer = (id: string, segment: string): CustomerRecord => ({
  entity: "customers",
  id,
  customer_id: id,
  eventAt: null,
  name: null,
  email: null,
  registration_at: null,
  customer_segment: segment,
});

function options(segments: Record<string, string> = {}): EnrichOptions & { directory: Map<string, string> } {
  const directory = new Map(Object.entries(segments));
  return { rates: RATES, segments: directory, directory };
}

function txOf(staged: Staged): TransactionRecord {
  if (staged.outcome.status !== "valid" || staged.outcome.record.entity !== "transactions") throw new Error("expected a valid transaction");
  return staged.outcome.record;
}

describe("enrichRecord: transactions", () => {
  it.each([
    [10, "EUR", 10 * 1.08],
    [12.5, "USD", 12.5],
    [100, "GBP", 100 * 1.27],
    [1000, "JPY", 1000 * 0.0067],
    [0, "EUR", 0],
  ])("amount %s %s becomes %s in the base currency", (amount, currency, expected) => {
    expect(txOf(enrichRecord(validStaged(tx("t1", "c1", amount, currency)), options())).amount_base).toBe(expected);
  });

  it("keeps the original amount and currency", () => {
    const r = txOf(enrichRecord(validStaged(tx("t1", "c1", 10, "EUR")), options()));
    expect(r).toMatchObject({ id: "t1", customer_id: "c1", amount: 10, currency: "EUR", eventAt: T });
  });

  it("takes the segment from the directory", () => {
    expect(txOf(enrichRecord(validStaged(tx("t1", "c1", 1, "USD")), options({ c1: "premium" }))).customer_segment).toBe("premium");
  });

  it("uses unknown when the directory has no segment for the customer", () => {
    expect(txOf(enrichRecord(validStaged(tx("t1", "c9", 1, "USD")), options({ c1: "premium" }))).customer_segment).toBe("unknown");
  });

  it("does not mutate the input record", () => {
    const input = validStaged(tx("t1", "c1", 10, "EUR"));
    enrichRecord(input, options({ c1: "smb" }));
    const r = (input.outcome as { record: TransactionRecord }).record;
    expect(r.amount_base).toBeNaN();
    expect(r.customer_segment).toBe("unknown");
  });

  it("keeps the message and entity", () => {
    const input = validStaged(tx("t1", "c1", 10, "EUR"), 42);
    const out = enrichRecord(input, options());
    expect(out.msg).toBe(input.msg);
    expect(out.entity).toBe("transactions");
    expect(out.outcome.status).toBe("valid");
  });
});

describe("enrichRecord: customers and others", () => {
  it("records a customer's segment in the directory and passes the profile through", () => {
    const opts = options({ c1: "retail" });
    const input = validStaged(customer("c1", "enterprise"));
    expect(enrichRecord(input, opts)).toBe(input);
    expect(opts.directory.get("c1")).toBe("enterprise");
  });

  it("leaves other event records unchanged", () => {
    const opts = options({ c1: "retail" });
    const record: EventRecord = { entity: "events", id: "e1", customer_id: "c1", eventAt: T, event_type: "login" };
    const input = validStaged(record);
    expect(enrichRecord(input, opts)).toBe(input);
    expect(opts.directory.get("c1")).toBe("retail");
  });

  it("leaves quarantines and duplicate profiles unchanged, and does not touch the directory for them", () => {
    const opts = options();
    const dup: Staged = { msg: sourceMessage(), entity: "customers", outcome: { status: "duplicate", record: customer("c1", "premium") } };
    const q: Staged = { msg: sourceMessage(), entity: "transactions", outcome: { status: "quarantined", reason: "oversize", field: null, detail: "" } };
    expect(enrichRecord(dup, opts)).toBe(dup);
    expect(enrichRecord(q, opts)).toBe(q);
    expect(opts.directory.size).toBe(0);
  });

  it("enriches a transaction the window called a duplicate, keeping the status (silver decides)", () => {
    const opts = options({ c1: "retail" });
    const dup: Staged = { msg: sourceMessage(), entity: "transactions", outcome: { status: "duplicate", record: tx("t1", "c1", 10, "EUR") } };
    const out = enrichRecord(dup, opts);
    expect(out.outcome.status).toBe("duplicate");
    const r = (out.outcome as { record: TransactionRecord }).record;
    expect(r.amount_base).toBeCloseTo(10 * opts.rates.EUR!, 9);
    expect(r.customer_segment).toBe("retail");
  });
});

describe("enrich (pipeable)", () => {
  it("applies a profile earlier in the stream to later transactions of that customer only", async () => {
    const opts = options({ c1: "retail" });
    const records: ValidRecord[] = [
      tx("t1", "c1", 10, "USD"),
      tx("t2", "c2", 10, "USD"),
      customer("c1", "premium"),
      customer("c2", "smb"),
      tx("t3", "c1", 10, "EUR"),
      tx("t4", "c2", 10, "GBP"),
      customer("c1", "enterprise"),
      tx("t5", "c1", 10, "USD"),
    ];
    const out = await lastValueFrom(from(records.map((r, i) => validStaged(r, i + 1))).pipe(enrich(opts), toArray()));
    const seen = out
      .filter((s) => s.outcome.status === "valid" && s.outcome.record.entity === "transactions")
      .map((s) => [txOf(s).id, txOf(s).customer_segment, txOf(s).amount_base]);
    expect(seen).toEqual([
      ["t1", "retail", 10],
      ["t2", "unknown", 10],
      ["t3", "premium", 10 * 1.08],
      ["t4", "smb", 10 * 1.27],
      ["t5", "enterprise", 10],
    ]);
    expect(Object.fromEntries(opts.directory)).toEqual({ c1: "enterprise", c2: "smb" });
  });
});
