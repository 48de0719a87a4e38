/**
 * Smoke test of the benchmark harness (`npm run bench`): a short run on 20,000 events must finish,
 * account for every event, and write a well-formed JSON report and chart. Speed itself is never
 * asserted here; it lives in bench/.
 */
import { afterAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const RUN = fileURLToPath(new URL("../dist/bench/run.js", import.meta.url));

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [RUN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    proc.stdout.on("data", (d) => (stdout += d));
    proc.stderr.on("data", (d) => (stderr += d));
    proc.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const positiveFinite = (v: unknown) => typeof v === "number" && Number.isFinite(v) && v > 0;

describe("npm run bench (smoke)", () => {
  const dir = mkdtempSync(join(tmpdir(), "tributary-bench-smoke-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("runs 20,000 events end to end and writes the JSON report and the chart", async () => {
    const json = join(dir, "out.json");
    const svg = join(dir, "bench.svg");
    const r = await run(["--events", "20000", "--quick", "--json", json, "--svg", svg]);
    expect(r.code, r.stderr).toBe(0);

    const out = JSON.parse(readFileSync(json, "utf8"));
    expect(out.events).toBe(20_000);
    for (const key of ["ceiling_eps", "naive_eps", "tributary_eps", "ratio_ceiling", "ratio_naive", "rss_mb"]) {
      expect(positiveFinite(out[key]), `${key} = ${out[key]}`).toBe(true);
    }
    for (const key of ["eps", "ratio_ceiling", "ratio"]) expect(positiveFinite(out.floor?.[key]), `floor.${key} = ${out.floor?.[key]}`).toBe(true);
    expect(out.phases.floor.rounds.length).toBeGreaterThan(0);
    expect(positiveFinite(out.latency_ms?.p50), `latency_ms.p50 = ${out.latency_ms?.p50}`).toBe(true);
    expect(positiveFinite(out.latency_ms?.p99), `latency_ms.p99 = ${out.latency_ms?.p99}`).toBe(true);
    expect(out.latency_ms.p99).toBeGreaterThanOrEqual(out.latency_ms.p50);
    // Every preloaded event reached silver as valid, duplicate or quarantined.
    expect(out.counts.valid + out.counts.duplicates + out.counts.quarantined).toBe(20_000);
    expect(out.counts.duplicates).toBeGreaterThan(0);
    expect(out.counts.quarantined).toBeGreaterThan(0);
    for (const layer of ["bronze", "silver", "gold"]) expect(positiveFinite(out.bytes_per_event[layer]), layer).toBe(true);

    // The lookup phase: GET /features/<id> and features.get(id), idle and under ingest, each with its percentiles and rate.
    expect(out.lookup.probes.map((p: { load: string; via: string }) => `${p.load} ${p.via}`)).toEqual(["idle http", "idle in-process", "ingest http", "ingest in-process"]);
    for (const p of out.lookup.probes) {
      for (const key of ["p50Ms", "p99Ms", "requestsPerSec"]) expect(positiveFinite(p[key]), `${p.load} ${p.via} ${key} = ${p[key]}`).toBe(true);
      expect(p.p99Ms).toBeGreaterThanOrEqual(p.p50Ms);
    }
    expect(out.lookup.probes.find((p: { load: string }) => p.load === "ingest").committedPerSec).toBeGreaterThan(0);
    expect(r.stdout).toMatch(/online lookups, now/);

    expect(readFileSync(svg, "utf8")).toMatch(/^<svg[\s\S]*<\/svg>\s*$/);
    expect(r.stdout).toMatch(/tributary\/ceiling \d/);
  });
});
