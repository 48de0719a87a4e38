/**
 * An outside chaos run: start nats-server, publish a generated workload, then kill the daemon
 * with SIGKILL at random instants in a loop, restarting it each time, and finally drain. The
 * features it prints must match an independent computation from the same records.
 *
 *   npm run chaos -- [--messages 60000] [--kills 20] [--seed 1] [--nats URL] [--keep]
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parse as parseCsv } from "csv-parse/sync";
import { connect } from "@nats-io/transport-node";
import { generateWorkload } from "../src/sources/generator.js";
import { publishAll } from "../src/producers/publisher.js";
import { ensureStream } from "../src/sources/jetstream.js";
import { jetstreamManager } from "@nats-io/jetstream";
import { startNatsServer } from "../src/testing/nats-server.js";
import { compareFeatures, referenceFeatures } from "../src/testing/reference.js";
import { DEFAULT_RATES } from "../src/config.js";
import { silentLogger } from "../src/log.js";

const CLI = fileURLToPath(new URL("../src/cli.js", import.meta.url));
const AS_OF = ["2026-01-20", "2026-02-15", "2026-03-10", "2026-04-05"];

function cli(args: string[], env: Record<string, string> = {}) {
  const proc = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, TRIBUTARY_LOG_LEVEL: "error", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  proc.stdout.on("data", (d) => (stdout += d));
  proc.stderr.on("data", (d) => (stderr += d));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    proc.once("close", (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { proc, done };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      messages: { type: "string", default: "60000" },
      kills: { type: "string", default: "20" },
      seed: { type: "string", default: "1" },
      nats: { type: "string" },
      keep: { type: "boolean", default: false },
    },
  });
  const messages = Number(values.messages);
  const kills = Number(values.kills);
  const seed = Number(values.seed);
  const server = values.nats ? null : await startNatsServer();
  const url = values.nats ?? server!.url;
  const stream = `CHAOS_${Date.now()}`;
  const dataDir = mkdtempSync(join(tmpdir(), "tributary-chaos-"));
  const env = { TRIBUTARY_NATS_STREAM: stream, TRIBUTARY_NATS_CONSUMER: "chaos" };
  try {
    const workload = [...generateWorkload({ seed, messages })];
    const nc = await connect({ servers: url });
    await ensureStream(await jetstreamManager(nc), stream, ["tributary.>"], silentLogger);
    await publishAll(nc, workload);
    await nc.close();
    console.log(`chaos: published ${messages} messages (seed ${seed}) to ${stream} on ${url}; data in ${dataDir}`);

    let killed = 0;
    for (let i = 0; i < kills; i++) {
      const { proc, done } = cli(["run", "--drain", "--nats", url, "--data-dir", dataDir], env);
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 500));
      if (proc.exitCode !== null) break; // it finished the drain before this kill
      proc.kill("SIGKILL");
      const r = await done;
      if (r.signal === "SIGKILL") killed++;
    }
    const last = await cli(["run", "--drain", "--nats", url, "--data-dir", dataDir], env).done;
    if (last.code !== 0) throw new Error(`final drain failed (${last.code}): ${last.stderr}`);
    console.log(`chaos: killed the daemon with SIGKILL ${killed} times, then drained`);

    const expectations = workload.map((m) => m.expect);
    let failures = 0;
    for (const day of AS_OF) {
      const out = await cli(["features", "--data-dir", dataDir, "--as-of", day, "--format", "csv"]).done;
      const actual = parseCsv(out.stdout, { columns: true, skip_empty_lines: true }) as Record<string, string>[];
      const expected = referenceFeatures(expectations, DEFAULT_RATES, Date.parse(`${day}T00:00:00Z`));
      const problems = compareFeatures(actual, expected);
      console.log(`chaos: as of ${day}: ${expected.length} customers, ${problems.length === 0 ? "features match the independent computation" : `${problems.length} mismatches`}`);
      for (const p of problems.slice(0, 10)) console.log(`  ${p}`);
      failures += problems.length;
    }
    const status = JSON.parse((await cli(["status", "--data-dir", dataDir, "--format", "json"]).done).stdout);
    console.log(`chaos: bronze holds ${status.bronze.messages} of ${messages} published messages`);
    if (status.bronze.messages !== messages) failures++;
    console.log(failures === 0 ? "chaos: OK" : "chaos: FAILED");
    return failures === 0 ? 0 : 1;
  } finally {
    await server?.stop();
    if (!values.keep) rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(
  (code) => (process.exitCode = code),
  (err) => {
    console.error(`chaos: ${(err as Error).message}`);
    process.exitCode = 1;
  },
);
