/**
 * The two processes of a live run (see `latency.ts`, which starts them and measures): one runs
 * the topology on a JetStream source until told how many messages to wait for, the other
 * publishes the generator's workload at a fixed rate. Each runs in a process of its own, started
 * through `worker.ts`.
 */
import Database from "better-sqlite3";
import { connect, headers } from "@nats-io/transport-node";
import { createTopology } from "../src/topology.js";
import type { ConfigInput } from "../src/config.js";
import { layerPath } from "../src/sinks/database.js";
import { cpuSince, epochMs, peakRssMb, startRssSampler, type RssSample } from "./stats.js";
import { workloadMessages, type WorkloadOptions } from "./workload.js";
import type { WorkerControl } from "./ipc.js";

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
  /** Generator options besides the seed and count (event times, customers); the generator's defaults otherwise. */
  readonly workload?: Omit<WorkloadOptions, "seed" | "messages">;
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
 * message). Every 1 ms timer tick sends whatever is due, until the total is sent or the parent
 * says finish.
 */
export async function runLivePublisher(o: LivePublisherOptions, control?: WorkerControl): Promise<LivePublisherResult> {
  const total = Math.round(o.rate * o.seconds);
  // The parent's `finish` stops it early: `seconds` is then an upper bound.
  let stopped = false;
  void control?.finish.then(() => (stopped = true));
  const nc = await connect({ servers: o.url, name: "bench-publisher" , noAsyncTraces: true });
  const messages = workloadMessages(o.prefix, { ...o.workload, seed: o.seed, messages: total });
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
      if (sent >= total || stopped) resolve();
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
