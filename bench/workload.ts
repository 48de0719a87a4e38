/**
 * The benchmark's data: a fresh JetStream stream per measurement group, preloaded with the
 * project's own generator (`generateWorkload`) through the project's own producer (`publishAll`).
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, StorageType } from "@nats-io/jetstream";
import { pack, Unpackr } from "msgpackr";
import { generateWorkload, type GeneratorOptions } from "../src/sources/generator.js";
import { publishAll, type OutgoingMessage } from "../src/producers/publisher.js";
import { isJsonPayload } from "../src/operators/decode.js";

/** A stream the bench owns: its name and the subject prefix it captures (`<prefix>.>`). */
export interface BenchStream {
  readonly name: string;
  readonly prefix: string;
  readonly subjects: string[];
}

/**
 * A stream name and subject prefix unique to this run and purpose, so `--nats URL` never collides
 * with a real `TRIBUTARY` stream (whose subjects are `tributary.>`). The entity stays the second
 * subject token, as the data contract requires.
 */
export function benchStream(runId: string, tag: string): BenchStream {
  const prefix = `bench_${runId}_${tag}`;
  return { name: `BENCH_${runId}_${tag}`.toUpperCase(), prefix, subjects: [`${prefix}.>`] };
}

/** Creates the stream (file storage, as `tributary run` would create it). */
export async function createStream(nc: NatsConnection, s: BenchStream): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: s.name, subjects: s.subjects, storage: StorageType.File });
}

/** Deletes the stream, ignoring a stream that is already gone. */
export async function deleteStream(url: string, s: BenchStream): Promise<void> {
  const nc = await connect({ servers: url , noAsyncTraces: true });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(s.name).catch(() => false);
  } finally {
    await nc.close();
  }
}

/** Number of messages the stream holds. */
export async function streamCount(url: string, s: BenchStream): Promise<number> {
  const nc = await connect({ servers: url , noAsyncTraces: true });
  try {
    const jsm = await jetstreamManager(nc);
    return (await jsm.streams.info(s.name)).state.messages;
  } finally {
    await nc.close();
  }
}

export interface WorkloadOptions extends GeneratorOptions {
  /**
   * When set, every customer id is rewritten so that consecutive messages walk a permutation of
   * exactly this many customers: after this many messages each customer has been referenced once.
   * The generator draws customers uniformly, which needs ~3× as many messages to touch them all.
   */
  readonly exactCustomers?: number;
}

const unpackr = new Unpackr({ mapsAsObjects: true, useRecords: false });

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/**
 * A multiplier coprime to `n`, so `(j * p) % n` is a permutation of 0..n-1 that scatters
 * neighbours: near n / φ (golden ratio), consecutive messages land far apart in key order, as
 * uniformly drawn customers do. (A stride near a multiple of n, say 999,983 for n = 10^k, would walk
 * the keys almost in order and make the B-trees look cheaper than real traffic does.)
 */
export function coprimeStride(n: number): number {
  if (n <= 2) return 1;
  let p = Math.max(1, Math.round(n / 1.618033988749895));
  while (gcd(p, n) !== 1) p++;
  return p;
}

/** Rewrites `customer_id` in a generated payload (MessagePack or JSON), keeping its type and format. */
function withCustomer(data: Uint8Array, contentType: string | null, customer: number): Uint8Array {
  const json = isJsonPayload(data, contentType);
  let value: unknown;
  try {
    value = json ? JSON.parse(new TextDecoder().decode(data)) : unpackr.unpack(data);
  } catch {
    return data; // an intentionally broken payload stays broken
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return data;
  const fields = value as Record<string, unknown>;
  const old = fields.customer_id;
  if (typeof old === "number") fields.customer_id = 1_000_000 + customer;
  else if (typeof old === "string" && old.trim() !== "") fields.customer_id = String(1_000_000 + customer);
  else return data;
  return json ? new TextEncoder().encode(JSON.stringify(fields)) : pack(fields);
}

/**
 * The generator's messages on `<prefix>.<entity>`, optionally with exactly `exactCustomers`
 * distinct customers (see {@link WorkloadOptions.exactCustomers}).
 */
export function* workloadMessages(prefix: string, options: WorkloadOptions): Generator<OutgoingMessage> {
  const exact = options.exactCustomers;
  const stride = exact ? coprimeStride(exact) : 0;
  let i = 0;
  for (const m of generateWorkload(options)) {
    const entity = m.subject.slice(m.subject.indexOf(".") + 1);
    const data = exact ? withCustomer(m.data, m.contentType, ((i % exact) * stride) % exact) : m.data;
    i++;
    yield { subject: `${prefix}.${entity}`, data, contentType: m.contentType, msgId: m.msgId };
  }
}

/**
 * Creates a fresh stream and publishes the workload into it. Throws unless the stream stored
 * exactly `messages` messages, so every consumer sees the same N events.
 */
export async function preload(
  url: string,
  s: BenchStream,
  options: WorkloadOptions & { messages: number },
  onProgress?: (n: number) => void,
): Promise<{ stored: number; seconds: number }> {
  const nc = await connect({ servers: url , noAsyncTraces: true });
  try {
    await createStream(nc, s);
    const t0 = performance.now();
    const r = await publishAll(nc, workloadMessages(s.prefix, options), { inFlight: 1024, onProgress });
    const seconds = (performance.now() - t0) / 1000;
    if (r.stored !== options.messages) {
      throw new Error(`preload stored ${r.stored} of ${options.messages} messages (${r.duplicates} dropped as duplicates)`);
    }
    return { stored: r.stored, seconds };
  } finally {
    await nc.close();
  }
}
