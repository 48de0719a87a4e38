/**
 * Crash safety: the daemon is killed with SIGKILL in the middle of a drain (at a random instant,
 * and at each named point of the commit protocol), then run again. Silver and gold must end up
 * identical, table for table, to an uninterrupted run over the same stream.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { generateWorkload } from "../src/sources/generator.js";
import { publishAll } from "../src/producers/publisher.js";
import { CRASH_POINTS } from "../src/topology.js";
import { startNatsServer, type NatsServer } from "../src/testing/nats-server.js";
import { runCli, startCli } from "./helpers/cli.js";
import { bronzeCount, dumpLayers } from "./helpers/tables.js";

const MESSAGES = 50_000;

describe("kill -9 during a drain", () => {
  let server: NatsServer;
  let reference: Record<string, unknown[]>;
  let referenceCsv: string;
  const dirs: string[] = [];
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), "tributary-crash-"));
    dirs.push(d);
    return d;
  };
  const drain = (dir: string, consumer: string, env: Record<string, string> = {}) =>
    runCli(["run", "--drain", "--nats", server.url, "--data-dir", dir], { TRIBUTARY_NATS_CONSUMER: consumer, ...env });
  const features = async (dir: string) => (await runCli(["features", "--data-dir", dir, "--as-of", "2026-03-01", "--format", "csv"])).stdout;

  beforeAll(async () => {
    server = await startNatsServer();
    const nc = await connect({ servers: server.url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "TRIBUTARY", subjects: ["tributary.>"] });
    await publishAll(nc, generateWorkload({ seed: 11, messages: MESSAGES }));
    await nc.close();
    const dir = tmp();
    const run = await drain(dir, "reference");
    expect(run.code, run.stderr).toBe(0);
    reference = dumpLayers(dir);
    referenceCsv = await features(dir);
    expect(reference["silver.transactions"]!.length).toBeGreaterThan(1000);
  });
  afterAll(async () => {
    await server?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("loses nothing and counts nothing twice after SIGKILL at 10 random instants", async () => {
    const dir = tmp();
    const kills: number[] = [];
    // Ten kills at random depths of the drain (each somewhere in its own slice of the stream),
    // a random few milliseconds after bronze reaches that depth, then a run to the end.
    const slice = MESSAGES / 11;
    for (let i = 0; i < 10; i++) {
      const threshold = Math.floor(i * slice + Math.random() * slice * 0.8);
      const { proc, result } = startCli(["run", "--drain", "--nats", server.url, "--data-dir", dir], { TRIBUTARY_NATS_CONSUMER: "random" });
      while (bronzeCount(dir) < threshold && proc.exitCode === null) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, Math.random() * 30));
      proc.kill("SIGKILL");
      const r = await result;
      expect(r.signal, "the daemon was still running when killed").toBe("SIGKILL");
      kills.push(bronzeCount(dir));
    }
    expect(kills.at(-1)!).toBeLessThan(MESSAGES);
    const last = await drain(dir, "random");
    expect(last.code, last.stderr).toBe(0);
    expect(dumpLayers(dir)).toEqual(reference);
    expect(await features(dir)).toBe(referenceCsv);
  });

  it.each(CRASH_POINTS)("recovers from a crash at %s", async (point) => {
    const dir = tmp();
    const crashed = await drain(dir, `point-${point}`, { TRIBUTARY_CRASH_POINT: point, TRIBUTARY_CRASH_AFTER_BATCHES: "4" });
    expect(crashed.signal).toBe("SIGKILL");
    const resumed = await drain(dir, `point-${point}`);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(dumpLayers(dir)).toEqual(reference);
  });
});
