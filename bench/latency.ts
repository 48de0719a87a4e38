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
 */
import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, headers } from "@nats-io/transport-node";
import { createTopology } from "../src/topology.js";
import type { ConfigInput } from "../src/config.js";
import { layerPath } from "../src/sinks/database.js";
import { cpuSince, epochMs, peakRssMb, quantile, startRssSampler, type RssSample } from "./stats.js";
import { benchStream, createStream, deleteStream, streamCount, workloadMessages } from "./workload.js";
import { startWorker } from "./child.js";
import type { WorkerControl } from "./worker.js";

export interface LiveTopologyOptions {
  readonly url: string;
  readonly stream: string;
  readonly subjects: string[];
  readonly consumer: string;
  readonly dataDir: string;
  readonly rssIntervalMs: number;
  readonly config?: Omit<ConfigInput, "nats" | "dataDir">;
}

export interface LiveTopologyResult {
  /** Flat pairs: [epoch ms of a gold commit, messages committed so far, …]. */
  readonly commits: Float64Array;
  readonly committed: number;
  /** Bronze rows whose bronze sequence differs from their stream sequence (must be 0). */
  readonly outOfOrder: number;
  /** Epoch ms at which the source received each message (bronze `received_at`), in bronze order. */
  readonly receivedAt: Float64Array;
  readonly rssSamples: RssSample[];
  /** Sampler time (s) at which the topology reported ready, i.e. roughly when publishing began. */
  readonly readyAtSec: number;
  readonly peakRssMb: number;
  readonly batches: number;
  /** CPU seconds the topology process used from ready until every message was committed. */
  readonly cpuSeconds: number;
  /** Per layer: commits, and how many took longer than 25, 50 and 100 ms (from the metrics histogram). */
  readonly slowCommits: SlowCommits;
}

export type SlowCommits = Record<"bronze" | "silver" | "gold", { commits: number; over25ms: number; over50ms: number; over100ms: number }>;

/** Reads the per-layer commit-duration histogram into counts of slow commits. */
async function slowCommits(topology: ReturnType<typeof createTopology>): Promise<SlowCommits> {
  // `<layer> count` → all commits; `<layer> <le>` → commits that took at most `le` seconds.
  const n = new Map<string, number>();
  for (const v of (await topology.metrics?.commitSeconds.get())?.values ?? []) {
    const labels = v.labels as Record<string, string | number | undefined>;
    n.set(`${labels.layer} ${v.metricName?.endsWith("_count") ? "count" : labels.le}`, v.value);
  }
  const layer = (l: string) => {
    const commits = n.get(`${l} count`) ?? 0;
    const over = (le: number) => commits - (n.get(`${l} ${le}`) ?? 0);
    return { commits, over25ms: over(0.025), over50ms: over(0.05), over100ms: over(0.1) };
  };
  return { bronze: layer("bronze"), silver: layer("silver"), gold: layer("gold") };
}

/** Child side: runs the topology until told how many messages to wait for, then stops it. */
export async function runLiveTopology(o: LiveTopologyOptions, control: WorkerControl): Promise<LiveTopologyResult> {
  let committed = 0;
  const rss = startRssSampler(o.rssIntervalMs, () => committed);
  const topology = createTopology({
    dataDir: o.dataDir,
    source: { kind: "jetstream" },
    config: { ...o.config, nats: { url: o.url, stream: o.stream, subjects: o.subjects, consumer: o.consumer } },
  });
  const commits: number[] = [];
  topology.stats$.subscribe((s) => {
    if (s.bronze > 0) commits.push(epochMs(), s.bronze);
    committed = s.bronze;
  });
  await topology.start();
  const readyAtSec = rss.elapsedSec();
  const cpu0 = process.cpuUsage();
  control.ready();
  const { expected } = await control.finish;
  // Wait for the backlog to drain, however long it is, as long as commits keep coming.
  let last = topology.stats.bronze;
  let lastProgress = Date.now();
  while (topology.stats.bronze < expected && Date.now() - lastProgress < 60_000) {
    await new Promise((r) => setTimeout(r, 20));
    if (topology.stats.bronze !== last) {
      last = topology.stats.bronze;
      lastProgress = Date.now();
    }
  }
  const cpuSeconds = cpuSince(cpu0);
  const slow = await slowCommits(topology);
  const stats = await topology.stop();
  rss.stop();
  const db = new Database(layerPath(o.dataDir, "bronze"), { readonly: true });
  const outOfOrder = db.prepare("SELECT count(*) FROM messages WHERE seq != origin_seq").pluck().get() as number;
  // Read in slices into a typed array: a soak's bronze holds millions of rows, and one JS array of
  // them would strain a heap capped by --max-old-space-size.
  const receivedAt = new Float64Array(stats.bronze);
  const slice = db.prepare("SELECT seq, received_at FROM messages WHERE seq > ? AND seq <= ? ORDER BY seq").raw();
  for (let from = 0; from < stats.bronze; from += 100_000) {
    for (const [seq, at] of slice.all(from, from + 100_000) as [number, number][]) if (seq <= receivedAt.length) receivedAt[seq - 1] = at;
  }
  db.close();
  return {
    commits: Float64Array.from(commits),
    committed: stats.bronze,
    outOfOrder,
    receivedAt,
    rssSamples: rss.samples,
    readyAtSec,
    peakRssMb: peakRssMb(),
    batches: stats.batches,
    cpuSeconds,
    slowCommits: slow,
  };
}

export interface LivePublisherOptions {
  readonly url: string;
  readonly prefix: string;
  /** Messages per second. */
  readonly rate: number;
  readonly seconds: number;
  readonly seed: number;
}

export interface LivePublisherResult {
  readonly sent: number;
  /** Epoch ms of each publish call, in publish order. */
  readonly sentAt: Float64Array;
  readonly seconds: number;
  /** Largest delay of a publish behind its scheduled time (ms): how well the rate was held. */
  readonly maxLagMs: number;
  /** CPU seconds the publisher process used while publishing. */
  readonly cpuSeconds: number;
}

/**
 * Child side: publishes `rate × seconds` generated messages at a fixed rate with core NATS
 * publishes into the stream's subjects (no per-message PubAck round trip, so the publisher costs
 * the shared CPU as little as possible; the parent checks afterwards that the stream stored every
 * message). Every 1 ms timer tick sends whatever is due.
 */
export async function runLivePublisher(o: LivePublisherOptions): Promise<LivePublisherResult> {
  const total = Math.round(o.rate * o.seconds);
  const nc = await connect({ servers: o.url, name: "bench-publisher" });
  const messages = workloadMessages(o.prefix, { seed: o.seed, messages: total });
  const sentAt = new Float64Array(total);
  const msPerMsg = 1000 / o.rate;
  let sent = 0;
  let maxLagMs = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      const due = Math.min(total, Math.floor((now - t0) / msPerMsg) + 1);
      while (sent < due) {
        const m = messages.next().value!;
        const h = headers();
        if (m.contentType) h.set("Content-Type", m.contentType);
        if (m.msgId) h.set("Nats-Msg-Id", m.msgId);
        nc.publish(m.subject, m.data, { headers: h });
        const at = performance.now();
        sentAt[sent] = performance.timeOrigin + at;
        const lag = at - (t0 + sent * msPerMsg);
        if (lag > maxLagMs) maxLagMs = lag;
        sent++;
      }
      if (sent >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  await nc.flush();
  const seconds = (performance.now() - t0) / 1000;
  const cpuSeconds = cpuSince(cpu0);
  await nc.close();
  return { sent, sentAt, seconds, maxLagMs, cpuSeconds };
}

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
  const nc = await connect({ servers: o.url });
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
