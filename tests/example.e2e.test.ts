/** The embedding example runs as documented: events in over HTTP, features out, restart-safe. */
import { afterAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

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

describe("examples/edge-service.ts", () => {
  const dir = mkdtempSync(join(tmpdir(), "tributary-edge-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("embeds the topology, serves features, and continues after a restart", async () => {
    const svc = startService(dir);
    const base = `http://127.0.0.1:${await svc.port}`;
    const post = (entity: string, body: unknown) =>
      fetch(`${base}/events/${entity}`, { method: "POST", body: JSON.stringify(body) }).then((r) => r.status);
    expect(await post("customers", { customer_id: "c1", customer_segment: "premium", registration_date: "2026-01-01" })).toBe(202);
    expect(await post("transactions", { transaction_id: "t1", customer_id: "c1", amount: 10, currency: "EUR", transaction_date: "2026-03-01T10:00:00Z" })).toBe(202);
    expect(await post("transactions", { transaction_id: "t1", customer_id: "c1", amount: 999, currency: "EUR", transaction_date: "2026-03-01T10:00:00Z" })).toBe(202);
    expect(await post("transactions", { transaction_id: "t2", customer_id: "c1", amount: "abc", currency: "EUR", transaction_date: "2026-03-01" })).toBe(202);
    expect(await post("widgets", {})).toBe(404);
    await new Promise((r) => setTimeout(r, 200));
    const f = await (await fetch(`${base}/customers/c1/features?as_of=2026-03-02`)).json();
    expect(f).toMatchObject({ customer_id: "c1", customer_segment: "premium", purchase_frequency: 1, total_spend: 10.8, days_since_registration: 60 });
    expect((await fetch(`${base}/customers/nobody/features`)).status).toBe(404);
    svc.proc.kill("SIGTERM");
    expect(await svc.exited).toBe(0);
    expect(svc.output()).toMatch(/edge service stopped: 4 messages/);

    const again = startService(dir);
    const base2 = `http://127.0.0.1:${await again.port}`;
    await fetch(`${base2}/events/transactions`, {
      method: "POST",
      body: JSON.stringify({ transaction_id: "t3", customer_id: "c1", amount: 5, currency: "USD", transaction_date: "2026-03-01T11:00:00Z" }),
    });
    await new Promise((r) => setTimeout(r, 200));
    const g = await (await fetch(`${base2}/customers/c1/features?as_of=2026-03-02`)).json();
    expect(g).toMatchObject({ purchase_frequency: 2, total_spend: 15.8 });
    again.proc.kill("SIGTERM");
    expect(await again.exited).toBe(0);
  });
});
