/**
 * Online lookups: `GET /features/<id>` (no `as_of`: now) and `topology.features.get(id)` against a
 * daemon whose gold holds `customers` customers, first idle, then while it ingests at a share of
 * its throughput.
 *
 * How: a stream is preloaded with events over exactly `customers` customers whose event times end
 * at the start of the run (90 days of them), so that today's partial day and the 30-day window hold
 * records, as they do for a live daemon. A topology process (live JetStream source, HTTP on) drains
 * it, then a load-generator process sends GET requests open-loop at `lookupRate` over keep-alive
 * connections to random customers, and the topology process calls `features.get` at the same rate
 * on its own thread. Then a publisher process publishes new events (event times in the last hours,
 * the same customers) at `ingestShare` of the throughput, and both probes run again. Each probe
 * reports p50, p99 and requests/s.
 */
import { fork, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ConfigInput } from "../src/config.js";
import { DAY_MS } from "../src/timestamps.js";
import { quantile } from "./stats.js";
import { startWorker } from "./child.js";
import { benchStream, deleteStream, preload } from "./workload.js";
import type { LivePublisherResult } from "./live-tasks.js";
import type { LookupHttpTask, LookupTopologyTask, ParentToTopology, ProbeResult, TopologyToParent } from "./lookup-child.js";

const CHILD = fileURLToPath(new URL("./lookup-child.js", import.meta.url));

/** A probe that cannot keep up stops after this long, with what it answered by then. */
export function probeDeadlineMs(seconds: number): number {
  return (seconds * 2 + 5) * 1000;
}
const HOUR_MS = 3_600_000;

export interface LookupOptions {
  readonly url: string;
  readonly runId: string;
  /** Distinct customers in the preloaded stream (gold ends up holding ~95% of them). */
  readonly customers: number;
  /** Events preloaded. */
  readonly events: number;
  /** Lookups per second each probe sends. */
  readonly lookupRate: number;
  /** Seconds per probe. */
  readonly seconds: number;
  /** Keep-alive connections of the HTTP load generator. */
  readonly connections: number;
  /** The ingest rate of the second half, in messages/s; by default `ingestShare` × the drain rate measured here. */
  readonly ingestRate?: number;
  readonly ingestShare: number;
  readonly seed: number;
  readonly config?: Omit<ConfigInput, "nats" | "dataDir">;
  readonly execArgv?: string[];
  readonly log: (line: string) => void;
}

export interface LookupProbe {
  readonly via: "http" | "in-process";
  readonly load: "idle" | "ingest";
  readonly targetRate: number;
  readonly requestsPerSec: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
  readonly notFound: number;
  /** HTTP: requests that waited over 1 ms for a free connection (the latency above excludes that wait), and the longest wait. */
  readonly queued: number;
  readonly maxQueueMs: number;
  /** Cores the measuring process used: the load generator for HTTP, the whole topology process in process. */
  readonly cpuShare: number;
  /** Cores the topology process used during the probe (all its threads: pipeline, commits, HTTP). */
  readonly topologyCpuShare: number;
  /** Messages the topology committed per second during the probe. */
  readonly committedPerSec: number;
}

export interface LookupResult {
  readonly customers: number;
  readonly goldCustomers: number;
  readonly preloaded: number;
  readonly drainSeconds: number;
  readonly ingestRate: number;
  readonly probes: LookupProbe[];
  readonly topologyPeakRssMb: number;
}

function summarize(via: LookupProbe["via"], load: LookupProbe["load"], targetRate: number, r: ProbeResult, committedPerSec: number, topologyCpuShare: number): LookupProbe {
  let sum = 0;
  for (const v of r.ms) sum += v;
  return {
    via,
    load,
    targetRate,
    requestsPerSec: r.requests / r.seconds,
    p50Ms: quantile(r.ms, 0.5),
    p90Ms: quantile(r.ms, 0.9),
    p99Ms: quantile(r.ms, 0.99),
    p999Ms: quantile(r.ms, 0.999),
    maxMs: r.ms[r.ms.length - 1] ?? Number.NaN,
    meanMs: sum / Math.max(1, r.ms.length),
    notFound: r.notFound,
    queued: r.queued,
    maxQueueMs: r.maxQueueMs,
    cpuShare: r.cpuSeconds / r.seconds,
    topologyCpuShare,
    committedPerSec,
  };
}

/** The topology child, with a request/reply helper over its IPC channel. */
class TopologyChild {
  private readonly replies: TopologyToParent[] = [];
  private waiter: (() => void) | null = null;
  private exit: Error | null = null;

  constructor(readonly proc: ChildProcess) {
    proc.on("message", (m: TopologyToParent) => {
      this.replies.push(m);
      this.waiter?.();
    });
    proc.once("exit", (code, signal) => {
      this.exit = new Error(`the lookup topology process exited (${signal ?? code})`);
      this.waiter?.();
    });
  }

  async next<T extends TopologyToParent["type"]>(type: T): Promise<Extract<TopologyToParent, { type: T }>> {
    for (;;) {
      const i = this.replies.findIndex((m) => m.type === type || m.type === "error");
      if (i >= 0) {
        const m = this.replies.splice(i, 1)[0]!;
        if (m.type === "error") throw new Error(`lookup topology: ${m.error}`);
        return m as Extract<TopologyToParent, { type: T }>;
      }
      if (this.exit) throw this.exit;
      await new Promise<void>((r) => (this.waiter = r));
      this.waiter = null;
    }
  }

  send(m: ParentToTopology): void {
    this.proc.send(m);
  }

  /** Messages committed so far, and the CPU seconds the topology process has used. */
  async committed(): Promise<{ committed: number; cpuSeconds: number }> {
    this.send({ type: "count" });
    return await this.next("committed");
  }
}

function forkChild(execArgv: string[] = []): ChildProcess {
  return fork(CHILD, [], { execArgv, serialization: "advanced", stdio: ["ignore", "inherit", "inherit", "ipc"] });
}

async function httpProbe(port: number, o: LookupOptions, seed: number): Promise<ProbeResult> {
  const proc = forkChild();
  const task: LookupHttpTask = { role: "http", port, rate: o.lookupRate, seconds: o.seconds, connections: o.connections, customers: o.customers, seed };
  return new Promise<ProbeResult>((resolve, reject) => {
    proc.on("message", (m: { type: string; result?: ProbeResult; error?: string }) => {
      if (m.type === "probe") resolve(m.result!);
      else if (m.type === "error") reject(new Error(`lookup load generator: ${m.error}`));
    });
    proc.once("exit", (code) => reject(new Error(`the lookup load generator exited (${code}) before reporting`)));
    proc.send(task);
  });
}

/** Runs the lookup phase; see the module comment. */
export async function lookupPhase(o: LookupOptions): Promise<LookupResult> {
  const stream = benchStream(o.runId, "lookup");
  const dataDir = mkdtempSync(join(tmpdir(), "tributary-bench-lookup-"));
  const start = Date.now();
  let topology: TopologyChild | null = null;
  try {
    o.log(`lookup: preloading ${o.events.toLocaleString("en-US")} events over ${o.customers.toLocaleString("en-US")} customers, event times up to now`);
    // Event times end an hour before now, jittered by at most an hour: none lies in the future.
    const pre = await preload(o.url, stream, { seed: o.seed, messages: o.events, exactCustomers: o.customers, startMs: start - 90 * DAY_MS - HOUR_MS, spanDays: 90, jitterMs: HOUR_MS });
    o.log(`  stored in ${pre.seconds.toFixed(1)} s`);
    const task: LookupTopologyTask = {
      role: "topology",
      url: o.url,
      stream: stream.name,
      subjects: stream.subjects,
      consumer: "bench-lookup",
      dataDir,
      preloaded: o.events,
      config: o.config,
    };
    topology = new TopologyChild(forkChild(o.execArgv));
    topology.proc.send(task);
    const ready = await topology.next("ready");
    const drainEps = ready.committed / ready.drainSeconds;
    o.log(`  drained in ${ready.drainSeconds.toFixed(1)} s (${Math.round(drainEps)} msg/s); gold holds ${ready.goldCustomers.toLocaleString("en-US")} customers`);
    const probes: LookupProbe[] = [];
    const both = async (load: LookupProbe["load"], seed: number) => {
      for (const via of ["http", "in-process"] as const) {
        const before = await topology!.committed();
        const t0 = performance.now();
        let r: ProbeResult;
        if (via === "http") r = await httpProbe(ready.port, o, seed);
        else {
          topology!.send({ type: "probe", rate: o.lookupRate, seconds: o.seconds, customers: o.customers, seed });
          r = (await topology!.next("probe")).result;
        }
        const after = await topology!.committed();
        const seconds = (performance.now() - t0) / 1000;
        const p = summarize(via, load, o.lookupRate, r, (after.committed - before.committed) / seconds, (after.cpuSeconds - before.cpuSeconds) / seconds);
        probes.push(p);
        o.log(`  ${load}, ${via}: p50 ${p.p50Ms.toFixed(2)} ms, p99 ${p.p99Ms.toFixed(2)} ms, ${Math.round(p.requestsPerSec)} lookups/s (ingest ${Math.round(p.committedPerSec)} msg/s; topology CPU ${Math.round(p.topologyCpuShare * 100)}%)`);
      }
    };
    await both("idle", o.seed);

    const ingestRate = o.ingestRate ?? o.ingestShare * drainEps;
    const warmup = 2;
    // Long enough for both probes even when they cannot keep up and run to their deadline (the
    // second must not run after the publisher stopped: it then measured a pipeline half idle);
    // told to finish once they are done.
    const publishSeconds = warmup + (2 * probeDeadlineMs(o.seconds)) / 1000 + 6;
    o.log(`  publishing ${Math.round(ingestRate)} msg/s while probing again (for at most ${publishSeconds} s)`);
    const now = Date.now();
    const publisher = startWorker<LivePublisherResult>({
      kind: "live-publisher",
      url: o.url,
      prefix: stream.prefix,
      rate: ingestRate,
      seconds: publishSeconds,
      seed: o.seed + 1,
      // Events of the last hours, for the same customers: today's buckets grow while lookups read them.
      workload: { exactCustomers: o.customers, startMs: now - 3 * HOUR_MS, spanDays: HOUR_MS / DAY_MS, jitterMs: HOUR_MS },
    });
    await new Promise((r) => setTimeout(r, warmup * 1000));
    await both("ingest", o.seed + 2);
    publisher.send({ type: "finish", expected: 0 });
    const pub = await publisher.result;
    o.log(`  publisher sent ${pub.sent.toLocaleString("en-US")} at ${Math.round(pub.sent / pub.seconds)} msg/s`);
    topology.send({ type: "stop" });
    const stopped = await topology.next("stopped");
    return {
      customers: o.customers,
      goldCustomers: ready.goldCustomers,
      preloaded: o.events,
      drainSeconds: ready.drainSeconds,
      ingestRate,
      probes,
      topologyPeakRssMb: stopped.peakRssMb,
    };
  } finally {
    if (topology && topology.proc.exitCode === null) topology.proc.kill("SIGKILL");
    await deleteStream(o.url, stream).catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
  }
}
