/**
 * The JetStream source: a durable pull consumer on the configured stream. The only code that
 * talks to NATS. It emits source messages whose position is the stream sequence, and finalizes
 * them (acks) only when the topology says their bronze commit is durable.
 */
import { Observable } from "rxjs";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type ConsumerInfo,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import type { SourceMessage } from "../types.js";
import type { Logger } from "../log.js";
import { SourceError } from "../errors.js";

export interface JetStreamSourceOptions {
  readonly url: string;
  readonly stream: string;
  readonly subjects: readonly string[];
  readonly consumer: string;
  readonly ackWaitMs: number;
  readonly maxAckPending: number;
  /** Messages to request per pull. */
  readonly pullSize: number;
  /** Give up connecting after this long (ms); undefined retries forever. */
  readonly connectTimeoutMs?: number;
  readonly log: Logger;
}

const NANOS_PER_MS = 1_000_000;

/** The origin name bronze records JetStream messages under. */
export function jetstreamOrigin(stream: string): string {
  return `jetstream:${stream}`;
}

/** Connects to NATS, retrying with backoff and logging each attempt. */
export async function connectWithRetry(url: string, log: Logger, timeoutMs?: number): Promise<NatsConnection> {
  const started = Date.now();
  let delay = 250;
  for (let attempt = 1; ; attempt++) {
    try {
      const nc = await connect({
        servers: url.split(","),
        name: "tributary",
        maxReconnectAttempts: -1,
        reconnectTimeWait: 1_000,
        timeout: 5_000,
      });
      log.info({ event: "connected", server: nc.getServer(), attempt }, "connected to NATS");
      return nc;
    } catch (err) {
      const elapsed = Date.now() - started;
      const reason = (err as Error).message;
      if (timeoutMs !== undefined && elapsed + delay > timeoutMs) {
        throw new SourceError(`cannot reach NATS at ${url} after ${attempt} attempts in ${Math.round(elapsed / 1000)} s: ${reason}`, { cause: err });
      }
      log.warn({ event: "connect_retry", url, attempt, retryInMs: delay, reason }, "NATS unreachable, retrying");
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5_000);
    }
  }
}

/** Creates the stream when missing; reuses it when present. */
export async function ensureStream(jsm: JetStreamManager, name: string, subjects: readonly string[], log: Logger): Promise<void> {
  try {
    await jsm.streams.info(name);
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || err.code !== JetStreamApiCodes.StreamNotFound) throw err;
    await jsm.streams.add({ name, subjects: [...subjects] });
    log.info({ event: "stream_created", stream: name, subjects }, "created stream");
  }
}

/** A durable pull consumer feeding the topology. */
export class JetStreamSource {
  private messagesHandle: ConsumerMessages | null = null;
  private stopRequested = false;
  private complete: (() => void) | null = null;

  private constructor(
    readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly options: JetStreamSourceOptions,
  ) {}

  /**
   * Connects, then makes sure the stream and the durable consumer exist. A new consumer starts
   * right after `startAfter`, the last stream sequence bronze holds.
   */
  static async open(options: JetStreamSourceOptions, startAfter: number): Promise<JetStreamSource> {
    const nc = await connectWithRetry(options.url, options.log, options.connectTimeoutMs);
    try {
      const jsm = await jetstreamManager(nc);
      await ensureStream(jsm, options.stream, options.subjects, options.log);
      const source = new JetStreamSource(nc, jsm, options);
      await source.ensureConsumer(startAfter);
      return source;
    } catch (err) {
      await nc.close();
      if (err instanceof SourceError) throw err;
      throw new SourceError(`cannot set up stream ${options.stream}: ${(err as Error).message}`, { cause: err });
    }
  }

  get origin(): string {
    return jetstreamOrigin(this.options.stream);
  }

  /**
   * Bronze is the position of record. The durable consumer is reused only when its server-side
   * state agrees with bronze exactly: everything delivered is acknowledged and is in bronze.
   * Otherwise (messages delivered to a process that died, an ack floor ahead of bronze after a
   * rolled-back commit, a different ack policy) it is recreated to deliver from bronze's position,
   * so delivery is in stream order from the first message bronze lacks.
   */
  private async ensureConsumer(startAfter: number): Promise<void> {
    const { stream, consumer, log } = this.options;
    let info: ConsumerInfo;
    try {
      info = await this.jsm.consumers.info(stream, consumer);
    } catch (err) {
      if (!(err instanceof JetStreamApiError) || err.code !== JetStreamApiCodes.ConsumerNotFound) throw err;
      await this.createConsumer(startAfter);
      return;
    }
    const state = {
      consumer,
      bronzePosition: startAfter,
      serverAckFloor: info.ack_floor.stream_seq,
      serverDelivered: info.delivered.stream_seq,
      ackPending: info.num_ack_pending,
    };
    const consistent =
      info.config.ack_policy === AckPolicy.All &&
      info.num_ack_pending === 0 &&
      info.ack_floor.stream_seq === startAfter &&
      info.delivered.stream_seq === startAfter;
    if (consistent) {
      log.info({ event: "consumer_reused", ...state }, "reusing durable consumer");
      return;
    }
    if (info.ack_floor.stream_seq > startAfter) {
      log.warn({ event: "consumer_rewound", ...state }, "server ack floor is ahead of bronze; resuming from bronze's position");
    } else {
      log.info({ event: "consumer_repositioned", ...state }, "consumer state differs from bronze; resuming from bronze's position");
    }
    await this.jsm.consumers.delete(stream, consumer);
    await this.createConsumer(startAfter);
  }

  private async createConsumer(startAfter: number): Promise<void> {
    const { stream, consumer, log } = this.options;
    await this.jsm.consumers.add(stream, {
      durable_name: consumer,
      ack_policy: AckPolicy.All,
      ack_wait: this.options.ackWaitMs * NANOS_PER_MS,
      max_ack_pending: this.options.maxAckPending,
      ...(startAfter > 0
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: startAfter + 1 }
        : { deliver_policy: DeliverPolicy.All }),
    });
    log.info({ event: "consumer_created", stream, consumer, startSeq: startAfter + 1 }, "created durable consumer");
  }

  /** Consumer state from the server: messages not yet delivered, and delivered but not acked. */
  async info(): Promise<ConsumerInfo> {
    return this.jsm.consumers.info(this.options.stream, this.options.consumer);
  }

  /**
   * The message stream. With `drain`, it completes once the consumer has nothing pending and
   * every delivered message is acknowledged; otherwise it runs until {@link stop}.
   */
  messages(drain: boolean): Observable<SourceMessage> {
    return new Observable<SourceMessage>((subscriber) => {
      const origin = this.origin;
      const { log } = this.options;
      let lastMessageAt = Date.now();
      let drainTimer: NodeJS.Timeout | null = null;
      const finish = () => {
        if (drainTimer) clearInterval(drainTimer);
        drainTimer = null;
        this.messagesHandle?.stop();
        if (!subscriber.closed) subscriber.complete();
      };
      this.complete = finish;
      const onMessage = (m: JsMsg) => {
        if (subscriber.closed || this.stopRequested) return;
        lastMessageAt = Date.now();
        const ct = m.headers?.get("Content-Type");
        const msgId = m.headers?.get("Nats-Msg-Id");
        subscriber.next({
          origin,
          originSeq: m.seq,
          subject: m.subject,
          data: m.data,
          receivedAt: lastMessageAt,
          publishedAt: Number(m.timestampNanos / 1_000_000n),
          contentType: ct ? ct : null,
          msgId: msgId ? msgId : null,
          ack: () => m.ack(),
        });
      };
      const start = async () => {
        const js = jetstream(this.nc);
        const consumer = await js.consumers.get(this.options.stream, this.options.consumer);
        this.messagesHandle = await consumer.consume({ max_messages: this.options.pullSize, callback: onMessage });
        void (async () => {
          for await (const s of this.messagesHandle!.status()) {
            if (s.type === "heartbeats_missed" || s.type === "consumer_deleted" || s.type === "consumer_not_found" || s.type === "stream_not_found") {
              log.warn({ event: "consumer_status", status: s.type }, `consumer status: ${s.type}`);
            }
          }
        })().catch(() => undefined);
        if (this.stopRequested) finish();
        if (drain) {
          let checking = false;
          drainTimer = setInterval(() => {
            if (checking || Date.now() - lastMessageAt < 200) return;
            checking = true;
            this.info()
              .then((info) => {
                if (info.num_pending === 0 && info.num_ack_pending === 0) {
                  log.info({ event: "caught_up", consumer: this.options.consumer }, "consumer has nothing pending");
                  finish();
                }
              })
              .catch((err) => log.warn({ event: "consumer_info_failed", reason: (err as Error).message }, "consumer info failed"))
              .finally(() => (checking = false));
          }, 250);
        }
      };
      start().catch((err) => subscriber.error(new SourceError(`cannot consume from ${this.options.stream}/${this.options.consumer}: ${(err as Error).message}`, { cause: err })));
      return () => {
        if (drainTimer) clearInterval(drainTimer);
        this.messagesHandle?.stop();
      };
    });
  }

  /** Stops pulling; the message stream completes so the batch in flight can be committed. */
  stop(): void {
    this.stopRequested = true;
    this.complete?.();
  }

  /** Flushes outstanding acks and closes the connection. */
  async close(): Promise<void> {
    try {
      await this.nc.flush();
    } catch {
      // closing anyway
    }
    await this.nc.close();
  }
}
