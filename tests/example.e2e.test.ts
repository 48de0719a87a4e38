/**
 * The embedding example runs as documented: events in over HTTP, answered only once committed to
 * bronze, features out, restart-safe.
 */
import { afterAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";

const EXAMPLE = fileURLToPath(new URL("../dist/examples/edge-service.js", import.meta.url));

function startService(dataDir: string) {
  const proc = spawn(process.execPath, [EXAMPLE], { env: { ...process.env, PORT: "0", DATA_DIR: dataDir }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout.on("data", (d) => (out += d));
  proc.stderr.on("data", (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => proc.once("close", (code) => resolve(code)));
  const port = new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no port in: ${out}`)), 10_000);
    proc.stdout.on("data", () => {
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
  });
  return { proc, port, exited, output: () => out };
}

/** The bronze row of the example's origin at this position, read from the file as another process would. */
function inBronze(dataDir: string, originSeq: number): boolean {
  const db = new Database(join(dataDir, "bronze.sqlite"), { readonly: true, fileMustExist: true });
  try {
    const row = db
      .prepare("SELECT count(*) AS n FROM messages m JOIN origins o ON o.id = m.origin_id WHERE o.name = 'edge:http' AND m.origin_seq = ?")
      .get(originSeq) as { n: number };
    return row.n === 1;
  } finally {
    db.close();
  }
}

/** Polls a features URL until it matches, or gives up at the deadline and returns what it last saw. */
async function featuresWhen(url: string, ready: (f: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await fetch(url);
    const f = r.status === 200 ? ((await r.json()) as Record<string, unknown>) : {};
    if (ready(f) || Date.now() > deadline) return f;
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe("examples/edge-service.ts", () => {
  const dir = mkdtempSync(join(tmpdir(), "tributary-edge-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("embeds the topology, serves features, and continues after a restart", async () => {
    const svc = startService(dir);
    const base = `http://127.0.0.1:${await svc.port}`;
    // Each reply comes after its commit: the record is in bronze.sqlite by the time it arrives.
    const post = async (entity: string, body: unknown) => {
      const r = await fetch(`${base}/events/${entity}`, { method: "POST", body: JSON.stringify(body) });
      const reply = (await r.json()) as { committed?: number };
      if (r.status === 202) expect(inBronze(dir, reply.committed!)).toBe(true);
      return r.status;
    };
    expect(await post("customers", { customer_id: "c1", customer_segment: "premium", registration_date: "2026-01-01" })).toBe(202);
    expect(await post("transactions", { transaction_id: "t1", customer_id: "c1", amount: 10, currency: "EUR", transaction_date: "2026-03-01T10:00:00Z" })).toBe(202);
    expect(await post("transactions", { transaction_id: "t1", customer_id: "c1", amount: 999, currency: "EUR", transaction_date: "2026-03-01T10:00:00Z" })).toBe(202);
    expect(await post("transactions", { transaction_id: "t2", customer_id: "c1", amount: "abc", currency: "EUR", transaction_date: "2026-03-01" })).toBe(202);
    expect(await post("widgets", {})).toBe(404);
    const f = await featuresWhen(`${base}/customers/c1/features?as_of=2026-03-02`, (f) => f.purchase_frequency === 1);
    expect(f).toMatchObject({ customer_id: "c1", customer_segment: "premium", purchase_frequency: 1, total_spend: 10.8, days_since_registration: 60 });
    expect((await fetch(`${base}/customers/nobody/features`)).status).toBe(404);
    // A bad time is the client's mistake (400), and the service keeps serving.
    expect((await fetch(`${base}/customers/c1/features?as_of=bogus`)).status).toBe(400);
    const midDay = await fetch(`${base}/customers/c1/features?as_of=2026-03-01T10:00:01Z`);
    expect(midDay.status).toBe(200);
    expect(await midDay.json()).toMatchObject({ purchase_frequency: 1 });
    svc.proc.kill("SIGTERM");
    expect(await svc.exited).toBe(0);
    expect(svc.output()).toMatch(/edge service stopped: 4 messages/);

    const again = startService(dir);
    const base2 = `http://127.0.0.1:${await again.port}`;
    const r = await fetch(`${base2}/events/transactions`, {
      method: "POST",
      body: JSON.stringify({ transaction_id: "t3", customer_id: "c1", amount: 5, currency: "USD", transaction_date: "2026-03-01T11:00:00Z" }),
    });
    expect(r.status).toBe(202);
    expect(await r.json()).toEqual({ committed: 5 });
    expect(inBronze(dir, 5)).toBe(true);
    const g = await featuresWhen(`${base2}/customers/c1/features?as_of=2026-03-02`, (f) => f.purchase_frequency === 2);
    expect(g).toMatchObject({ purchase_frequency: 2, total_spend: 15.8 });
    again.proc.kill("SIGTERM");
    expect(await again.exited).toBe(0);
  });
});
