/**
 * Live latency: a publisher process sends the generator's workload at a fixed rate while a
 * separate process runs the topology (non-draining JetStream source). Latency is measured per
 * message from the publish call to the gold commit that covers it.
 *
 * How: the publisher records the wall-clock time of every publish call, in publish order. The
 * topology process records the wall-clock time of every `stats$` emission (emitted right after
 * each gold commit) together with the number of messages committed so far. On a fresh stream with
 * one publisher connection, publish order is stream order, and on a fresh data dir bronze order is
 * stream order (the topology delivers in stream order; the child checks `seq = origin_seq` for
 * every bronze row). So message k was committed to gold at the first emission whose count is ≥ k.
 * Both processes run on the same host and read the same clock (`performance.timeOrigin + now()`).
 * This file is the parent's side; the two processes run `live-tasks.ts`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import type { ConfigInput } from "../src/config.js";
import { quantile, type RssSample } from "./stats.js";
import { benchStream, createStream, deleteStream, streamCount } from "./workload.js";
import { startWorker } from "./child.js";
import type { LivePublisherResult, LiveTopologyResult, SlowCommits } from "./live-tasks.js";

export interface LiveRunOptions {
  readonly url: string;
  readonly runId: string;
  readonly tag: string;
  readonly rate: number;
  /** Measured seconds, after the warm-up. */
  readonly seconds: number;
  /** Seconds published first and left out of the percentiles (JIT, caches, first pulls). */
  readonly warmupSeconds: number;
  readonly seed: number;
  readonly rssIntervalMs?: number;
  readonly config?: Omit<ConfigInput, "nats" | "dataDir">;
  /** Node flags for the topology process. */
  readonly execArgv?: string[];
  /** Reads nats-server's CPU seconds, when the bench started the server. */
  readonly serverCpu?: (() => number | null) | null;
  readonly log?: (line: string) => void;
}

export interface LatencyPercentiles {
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

export interface LiveRunResult {
  readonly rate: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly sent: number;
  readonly measured: number;
  readonly achievedRate: number;
  readonly publisherMaxLagMs: number;
  readonly latencyMs: LatencyPercentiles;
  /**
   * The same latency split at the moment tributary's source received the message (bronze
   * `received_at`, whole milliseconds): delivery (publish → received: NATS, the pull consumer, and
   * time queued behind a commit in progress) and inside tributary (received → gold commit).
   */
  readonly deliveryMs: LatencyPercentiles;
  readonly insideMs: LatencyPercentiles;
  readonly batches: number;
  readonly meanBatch: number;
  readonly peakRssMb: number;
  /** Per layer: commits, and how many took longer than 25, 50 and 100 ms. */
  readonly slowCommits: SlowCommits;
  /**
   * Share of one core each process used over the run (CPU seconds ÷ wall seconds of publishing):
   * the machine has 2 cores, and during a live run the publisher and nats-server share them with
   * tributary.
   */
  readonly cpuShare: { tributary: number; publisher: number; natsServer: number | null };
  readonly rssSamples: RssSample[];
  readonly readyAtSec: number;
}

/** Publish→gold-commit latency of every message after the first `skip`. */
export function latencies(sentAt: Float64Array, commits: Float64Array, skip: number): Float64Array {
  const out = new Float64Array(Math.max(0, sentAt.length - skip));
  let c = 0;
  for (let k = skip; k < sentAt.length; k++) {
    while (c < commits.length && commits[c + 1]! < k + 1) c += 2;
    if (c >= commits.length) throw new Error(`message ${k + 1} was never committed to gold`);
    out[k - skip] = commits[c]! - sentAt[k]!;
  }
  return out;
}

/** Summary percentiles of latencies (ms). */
export function percentiles(values: Float64Array): LatencyPercentiles {
  const s = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of s) sum += v;
  return { p50: quantile(s, 0.5), p95: quantile(s, 0.95), p99: quantile(s, 0.99), max: s[s.length - 1]!, mean: sum / s.length };
}

/** One live run: fresh stream, topology process, publisher process; returns latency percentiles. */
export async function liveRun(o: LiveRunOptions): Promise<LiveRunResult> {
  const s = benchStream(o.runId, o.tag);
  const dataDir = mkdtempSync(join(tmpdir(), `tributary-bench-${o.tag}-`));
  const nc = await connect({ servers: o.url , noAsyncTraces: true });
  await createStream(nc, s);
  await nc.close();
  try {
    const topo = startWorker<LiveTopologyResult>({
      kind: "live-topology",
      url: o.url,
      stream: s.name,
      subjects: s.subjects,
      consumer: "bench-live",
      dataDir,
      rssIntervalMs: o.rssIntervalMs ?? 1_000,
      config: o.config,
    }, { execArgv: o.execArgv });
    await Promise.race([topo.ready, topo.result]);
    const server0 = o.serverCpu?.() ?? null;
    o.log?.(`  publishing ${Math.round(o.rate)} msg/s for ${o.warmupSeconds + o.seconds} s (${o.warmupSeconds} s warm-up)`);
    const pub = await startWorker<LivePublisherResult>({
      kind: "live-publisher",
      url: o.url,
      prefix: s.prefix,
      rate: o.rate,
      seconds: o.warmupSeconds + o.seconds,
      seed: 4242,
    }).result;
    topo.send({ type: "finish", expected: pub.sent });
    const t = await topo.result;
    const server1 = o.serverCpu?.() ?? null;
    const stored = await streamCount(o.url, s);
    if (stored !== pub.sent) throw new Error(`the stream stored ${stored} of ${pub.sent} published messages`);
    if (t.committed !== pub.sent) throw new Error(`tributary committed ${t.committed} of ${pub.sent} messages`);
    if (t.outOfOrder !== 0) throw new Error(`${t.outOfOrder} bronze rows are not in stream order; latency mapping is invalid`);
    const skip = Math.round(o.rate * o.warmupSeconds);
    const lat = latencies(pub.sentAt, t.commits, skip);
    const delivery = new Float64Array(lat.length);
    const inside = new Float64Array(lat.length);
    for (let k = skip; k < pub.sent; k++) {
      delivery[k - skip] = t.receivedAt[k]! - pub.sentAt[k]!;
      inside[k - skip] = lat[k - skip]! - delivery[k - skip]!;
    }
    return {
      rate: o.rate,
      seconds: o.seconds,
      warmupSeconds: o.warmupSeconds,
      sent: pub.sent,
      measured: lat.length,
      achievedRate: pub.sent / pub.seconds,
      publisherMaxLagMs: pub.maxLagMs,
      latencyMs: percentiles(lat),
      deliveryMs: percentiles(delivery),
      insideMs: percentiles(inside),
      batches: t.batches,
      meanBatch: t.committed / Math.max(1, t.batches),
      peakRssMb: t.peakRssMb,
      slowCommits: t.slowCommits,
      cpuShare: {
        tributary: t.cpuSeconds / pub.seconds,
        publisher: pub.cpuSeconds / pub.seconds,
        natsServer: server0 !== null && server1 !== null ? (server1 - server0) / pub.seconds : null,
      },
      rssSamples: t.rssSamples,
      readyAtSec: t.readyAtSec,
    };
  } finally {
    await deleteStream(o.url, s).catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
  }
}
