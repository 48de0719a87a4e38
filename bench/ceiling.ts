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
 * Consumes the whole stream once, acking every `ackEvery` messages and the last one.
 * Timed from before connecting until the last ack has been flushed to the server.
 */
export async function runCeiling(o: ConsumerPhaseOptions & { ackEvery: number }): Promise<PhaseResult> {
  const rss = startRssSampler();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const nc = await connect({ servers: o.url, name: "bench-ceiling" });
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.add(o.stream, {
    durable_name: o.consumer,
    ack_policy: AckPolicy.All,
    deliver_policy: DeliverPolicy.All,
    ack_wait: o.ackWaitMs * 1_000_000,
    max_ack_pending: o.maxAckPending,
  });
  const consumer = await jetstream(nc).consumers.get(o.stream, o.consumer);
  let n = 0;
  let decoded = 0;
  const origin = `jetstream:${o.stream}`;
  const opts = { maxPayloadBytes: 1_048_576 };
  await new Promise<void>((resolve, reject) => {
    let finished = false;
    const onMessage = (m: JsMsg) => {
      if (finished) return; // only the first `events` messages count
      const ct = m.headers?.get("Content-Type");
      const msg: SourceMessage = {
        origin,
        originSeq: m.seq,
        subject: m.subject,
        data: m.data,
        receivedAt: Date.now(),
        publishedAt: null,
        contentType: ct ? ct : null,
        msgId: null,
      };
      if (decodeMessage(msg, opts).outcome.status === "decoded") decoded++;
      n++;
      if (n % o.ackEvery === 0 || n === o.events) m.ack();
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
  const seconds = (performance.now() - t0) / 1000;
  const cpuSeconds = cpuSince(cpu0);
  rss.stop();
  await nc.close();
  return { events: n, seconds, eps: n / seconds, peakRssMb: peakRssMb(), cpuSeconds, decoded, rssSamples: rss.samples };
}
