/**
 * The child processes of the lookup phase (`lookup.ts` starts them): `topology` runs a live
 * topology with its HTTP server over a preloaded stream and times `topology.features.get(id)`
 * when asked; `http` is a load generator that sends `GET /features/<id>` at a fixed rate over a few
 * keep-alive connections. Each talks to the parent over IPC. Not meant to be started by hand.
 */
import { connect as netConnect, type Socket } from "node:net";
import Database from "better-sqlite3";
import { createTopology } from "../src/topology.js";
import { layerPath } from "../src/sinks/database.js";
import { prng } from "../src/sources/generator.js";
import type { ConfigInput } from "../src/config.js";
import { cpuSince, peakRssMb } from "./stats.js";
import { probeDeadlineMs } from "./lookup.js";

export interface LookupTopologyTask {
  readonly role: "topology";
  readonly url: string;
  readonly stream: string;
  readonly subjects: string[];
  readonly consumer: string;
  readonly dataDir: string;
  /** Messages preloaded into the stream: `ready` is sent once they are all committed. */
  readonly preloaded: number;
  readonly config?: Omit<ConfigInput, "nats" | "dataDir">;
}

export interface LookupHttpTask {
  readonly role: "http";
  readonly port: number;
  /** Requests per second, sent open-loop: a request is due every 1/rate s whether or not earlier ones answered. */
  readonly rate: number;
  readonly seconds: number;
  readonly connections: number;
  /** Customer ids are `1000000 + k` for k uniform in [0, customers). */
  readonly customers: number;
  readonly seed: number;
}

/** What a probe measured: per-request milliseconds (sorted), and how many requests it made in how long. */
export interface ProbeResult {
  readonly ms: Float64Array;
  readonly requests: number;
  readonly seconds: number;
  /** Lookups that found no customer (404, or null in process). */
  readonly notFound: number;
  /** Requests that waited for a free connection, and the longest such wait (HTTP only). */
  readonly queued: number;
  readonly maxQueueMs: number;
  /** CPU seconds of the measuring process during the probe. */
  readonly cpuSeconds: number;
}

export type ParentToTopology = { type: "probe"; rate: number; seconds: number; customers: number; seed: number } | { type: "count" } | { type: "stop" };
export type TopologyToParent =
  | { type: "ready"; port: number; drainSeconds: number; committed: number; goldCustomers: number }
  | { type: "probe"; result: ProbeResult }
  | { type: "committed"; committed: number; cpuSeconds: number }
  | { type: "stopped"; committed: number; peakRssMb: number }
  | { type: "error"; error: string };

const customerIds = (customers: number, seed: number) => {
  const rand = prng(seed);
  return () => String(1_000_000 + Math.floor(rand() * customers));
};

/**
 * Calls `lookup` `rate` times a second for `seconds` (every 1 ms timer tick makes the calls that
 * are due) and records how long each call took: what an embedder calling `topology.features.get`
 * from its own code waits.
 */
async function timedCalls(rate: number, seconds: number, lookup: () => boolean): Promise<ProbeResult> {
  const total = Math.round(rate * seconds);
  const ms = new Float64Array(total);
  let done = 0;
  let notFound = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const deadline = t0 + probeDeadlineMs(seconds);
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
      while (done < due && performance.now() < deadline) {
        const s = performance.now();
        if (!lookup()) notFound++;
        ms[done++] = performance.now() - s;
      }
      if (done >= total || performance.now() >= deadline) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  const answered = ms.subarray(0, done).sort();
  return { ms: answered, requests: done, seconds: (performance.now() - t0) / 1000, notFound, queued: 0, maxQueueMs: 0, cpuSeconds: cpuSince(cpu0) };
}


async function runTopology(task: LookupTopologyTask, send: (m: TopologyToParent) => Promise<void>, messages: AsyncIterable<ParentToTopology>): Promise<void> {
  const t0 = performance.now();
  const topology = createTopology({
    dataDir: task.dataDir,
    source: { kind: "jetstream" },
    http: { host: "127.0.0.1", port: 0 },
    config: { ...task.config, nats: { url: task.url, stream: task.stream, subjects: task.subjects, consumer: task.consumer } },
  });
  const cpu0 = process.cpuUsage();
  await topology.start();
  // Drained: every preloaded message in bronze, and gold caught up with bronze.
  while (topology.stats.bronze < task.preloaded || topology.stats.goldPosition < topology.stats.bronze) await new Promise((r) => setTimeout(r, 50));
  const drainSeconds = (performance.now() - t0) / 1000;
  const gold = new Database(layerPath(task.dataDir, "gold"), { readonly: true });
  const goldCustomers = gold.prepare("SELECT count(*) FROM customer_features").pluck().get() as number;
  gold.close();
  await send({ type: "ready", port: topology.httpAddress!.port, drainSeconds, committed: topology.stats.bronze, goldCustomers });
  for await (const m of messages) {
    if (m.type === "probe") {
      const next = customerIds(m.customers, m.seed);
      await send({ type: "probe", result: await timedCalls(m.rate, m.seconds, () => topology.features.get(next()) !== null) });
    } else if (m.type === "count") {
      await send({ type: "committed", committed: topology.stats.bronze, cpuSeconds: cpuSince(cpu0) });
    } else {
      const stats = await topology.stop();
      await send({ type: "stopped", committed: stats.bronze, peakRssMb: peakRssMb() });
      return;
    }
  }
}

/** One keep-alive connection with at most one request in flight; responses are parsed just enough to find their end. */
class Connection {
  private buffer: Buffer = Buffer.alloc(0);
  private onResponse: ((status: number) => void) | null = null;
  readonly socket: Socket;

  constructor(port: number, onError: (err: Error) => void) {
    this.socket = netConnect({ host: "127.0.0.1", port, noDelay: true });
    this.socket.on("data", (d: Buffer) => this.data(d));
    this.socket.on("error", onError);
  }

  get busy(): boolean {
    return this.onResponse !== null;
  }

  request(path: string, done: (status: number) => void): void {
    this.onResponse = done;
    this.socket.write(`GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`);
  }

  private data(d: Buffer): void {
    this.buffer = this.buffer.length === 0 ? d : Buffer.concat([this.buffer, d]);
    const head = this.buffer.indexOf("\r\n\r\n");
    if (head < 0) return;
    const headers = this.buffer.subarray(0, head).toString("latin1");
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(headers)?.[1] ?? 0);
    if (this.buffer.length < head + 4 + length) return;
    this.buffer = this.buffer.subarray(head + 4 + length);
    const done = this.onResponse!;
    this.onResponse = null;
    done(Number(headers.slice(9, 12)));
  }
}

/** The load generator: requests due at a fixed rate go out on the first free connection, or wait for one. */
async function runHttp(task: LookupHttpTask): Promise<ProbeResult> {
  const total = Math.round(task.rate * task.seconds);
  const ms = new Float64Array(total);
  let failure: Error | null = null;
  const conns = Array.from({ length: task.connections }, () => new Connection(task.port, (err) => (failure ??= err)));
  await Promise.all(conns.map((c) => new Promise((r) => c.socket.once("connect", r))));
  const next = customerIds(task.customers, task.seed);
  const waiting: number[] = [];
  let sent = 0;
  let answered = 0;
  let notFound = 0;
  let queued = 0;
  let maxQueueMs = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const deadline = t0 + probeDeadlineMs(task.seconds);
  await new Promise<void>((resolve, reject) => {
    const dispatch = () => {
      for (const c of conns) {
        if (waiting.length === 0) return;
        if (c.busy) continue;
        const i = waiting.shift()!;
        const start = performance.now();
        const wait = start - (t0 + (i * 1000) / task.rate);
        if (wait > 1) {
          queued++;
          maxQueueMs = Math.max(maxQueueMs, wait);
        }
        c.request(`/features/${next()}`, (status) => {
          ms[answered] = performance.now() - start;
          if (status === 404) notFound++;
          else if (status !== 200) failure ??= new Error(`GET /features answered ${status}`);
          if (++answered === total) resolve();
          else dispatch();
        });
      }
    };
    const tick = () => {
      if (failure) return reject(failure);
      if (performance.now() >= deadline) return resolve();
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * task.rate) + 1);
      while (sent < due) waiting.push(sent++);
      dispatch();
      if (answered < total) setTimeout(tick, sent < total ? 1 : 50);
    };
    tick();
  });
  const seconds = (performance.now() - t0) / 1000;
  const cpuSeconds = cpuSince(cpu0);
  for (const c of conns) c.socket.destroy();
  return { ms: ms.subarray(0, answered).sort(), requests: answered, seconds, notFound, queued, maxQueueMs, cpuSeconds };
}

/** Parent messages as an async stream. */
async function* parentMessages(): AsyncGenerator<ParentToTopology> {
  const queue: ParentToTopology[] = [];
  let wake: (() => void) | null = null;
  process.on("message", (m: ParentToTopology) => {
    queue.push(m);
    wake?.();
  });
  for (;;) {
    while (queue.length) yield queue.shift()!;
    await new Promise<void>((r) => (wake = r));
    wake = null;
  }
}

if (process.send) {
  const send = (m: unknown) => new Promise<void>((resolve) => process.send!(m, undefined, {}, () => resolve()));
  process.once("message", (task: LookupTopologyTask | LookupHttpTask) => {
    const work =
      task.role === "topology"
        ? runTopology(task, send, parentMessages())
        : runHttp(task).then((result) => send({ type: "probe", result }));
    work.then(
      () => process.exit(0),
      async (err: unknown) => {
        await send({ type: "error", error: err instanceof Error ? err.message : String(err) });
        process.exit(1);
      },
    );
  });
}
