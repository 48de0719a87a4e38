import { describe, expect, it } from "vitest";
import { Writable } from "node:stream";
import { pino } from "pino";
import { createProgress } from "../src/progress.js";

describe("createProgress without a TTY", () => {
  it("logs a periodic progress line with done, total, rate and ETA", async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(JSON.parse(String(chunk)));
        cb();
      },
    });
    const log = pino({ level: "info" }, sink);
    const p = createProgress("ingest", log, { tty: false, intervalMs: 30 });
    p.update(250, 1000);
    await new Promise((r) => setTimeout(r, 80));
    p.update(500);
    await new Promise((r) => setTimeout(r, 50));
    p.stop();
    const count = lines.length;
    await new Promise((r) => setTimeout(r, 60));
    expect(lines.length, "no lines after stop").toBe(count);
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(lines[0]).toMatchObject({ event: "progress", task: "ingest", done: 250, total: 1000 });
    expect(lines.at(-1)).toMatchObject({ done: 500, total: 1000 });
    expect(typeof lines.at(-1)!.rate).toBe("number");
    expect(typeof lines.at(-1)!.etaSeconds).toBe("number");
  });
});
