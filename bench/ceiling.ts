/**
 * The ceiling: the nats.js pull consumer alone. It consumes, decodes each message with the same
 * `decodeMessage` tributary uses, and acks once per batch (AckPolicy.All), with no other work.
 * Nothing built on this client and server can consume faster.
 */
import { connect } from "@nats-io/transport-node";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import { decodeMessage } from "../src/operators/decode.js";
import type { SourceMessage } from "../src/types.js";
import { cpuSince, peakRssMb, startRssSampler } from "./stats.js";

export interface ConsumerPhaseOptions {
  readonly url: string;
  readonly stream: string;
  readonly consumer: string;
  /** Messages in the stream: the phase ends when it has handled this many. */
  readonly events: number;
  /** Messages requested per pull (tributary pulls 2 × batch.maxRecords). */
  readonly pullSize: number;
  readonly maxAckPending: number;
  readonly ackWaitMs: number;
}

export interface PhaseResult {
  readonly events: number;
  readonly seconds: number;
  readonly eps: number;
  readonly peakRssMb: number;
  /** CPU time (user + system) this process spent between the start and the end of the measurement. */
  readonly cpuSeconds: number;
  readonly [extra: string]: unknown;
}

/**
 * What the hand-written consumers share: creates the durable consumer `o.consumer`, consumes the
 * first `o.events` messages, hands each to `handle` as a `SourceMessage` (with its 1-based count;
 * `handle` acks), then flushes. Returns the seconds and CPU seconds since `t0`/`cpu0`, measured
 * when the last ack has reached the server, before the connection closes.
 */
export async function consumeEvents(
  o: ConsumerPhaseOptions,
  setup: { readonly name: string; readonly ackPolicy: AckPolicy; readonly t0: number; readonly cpu0: NodeJS.CpuUsage },
  handle: (m: JsMsg, msg: SourceMessage, n: number) => void,
): Promise<{ n: number; seconds: number; cpuSeconds: number }> {
  const nc = await connect({ servers: o.url, name: setup.name });
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.add(o.stream, {
    durable_name: o.consumer,
    ack_policy: setup.ackPolicy,
    deliver_policy: DeliverPolicy.All,
    ack_wait: o.ackWaitMs * 1_000_000,
    max_ack_pending: o.maxAckPending,
  });
  const consumer = await jetstream(nc).consumers.get(o.stream, o.consumer);
  const origin = `jetstream:${o.stream}`;
  let n = 0;
  await new Promise<void>((resolve, reject) => {
    let finished = false;
    const onMessage = (m: JsMsg) => {
      if (finished) return; // only the first `events` messages count
      const ct = m.headers?.get("Content-Type");
      n++;
      handle(
        m,
        { origin, originSeq: m.seq, subject: m.subject, data: m.data, receivedAt: Date.now(), publishedAt: null, contentType: ct ? ct : null, msgId: null },
        n,
      );
      if (n === o.events) {
        finished = true;
        resolve();
      }
    };
    consumer.consume({ max_messages: o.pullSize, callback: onMessage }).then((h) => {
      void h.closed().then((err) => err && reject(err));
    }, reject);
  });
  await nc.flush();
  const seconds = (performance.now() - setup.t0) / 1000;
  const cpuSeconds = cpuSince(setup.cpu0);
  await nc.close();
  return { n, seconds, cpuSeconds };
}

/**
 * Consumes the whole stream once, acking every `ackEvery` messages and the last one.
 * Timed from before connecting until the last ack has been flushed to the server.
 */
export async function runCeiling(o: ConsumerPhaseOptions & { ackEvery: number }): Promise<PhaseResult> {
  const rss = startRssSampler();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const opts = { maxPayloadBytes: 1_048_576 };
  let decoded = 0;
  const { n, seconds, cpuSeconds } = await consumeEvents(o, { name: "bench-ceiling", ackPolicy: AckPolicy.All, t0, cpu0 }, (m, msg, k) => {
    if (decodeMessage(msg, opts).outcome.status === "decoded") decoded++;
    if (k % o.ackEvery === 0 || k === o.events) m.ack();
  });
  rss.stop();
  return { events: n, seconds, eps: n / seconds, peakRssMb: peakRssMb(), cpuSeconds, decoded, rssSamples: rss.samples };
}
