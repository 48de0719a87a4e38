/**
 * The JetStream source: a durable pull consumer on the configured stream. The only code that
 * talks to NATS. It emits source messages whose position is the stream sequence, and finalizes
 * them (acks) only when the topology says their bronze commit is durable.
 */
import { Observable } from "rxjs";
import type { NatsConnection } from "@nats-io/transport-node";
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
  type StreamInfo,
} from "@nats-io/jetstream";
import type { SourceMessage } from "../types.js";
import type { Logger } from "../log.js";
import { SourceError } from "../errors.js";
import { connectWithRetry, type NatsAuth } from "./nats-connection.js";

export { connectWithRetry, redactUrl, type NatsAuth } from "./nats-connection.js";

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
  readonly auth?: NatsAuth;
  readonly log: Logger;
}

const NANOS_PER_MS = 1_000_000;

/** The origin name bronze records JetStream messages under. */
export function jetstreamOrigin(stream: string): string {
  return `jetstream:${stream}`;
}

/** Creates the stream when missing; reuses it when present. Returns its info and whether it is new. */
export async function ensureStream(
  jsm: JetStreamManager,
  name: string,
  subjects: readonly string[],
  log: Logger,
): Promise<{ info: StreamInfo; created: boolean }> {
  try {
    return { info: await jsm.streams.info(name), created: false };
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || err.code !== JetStreamApiCodes.StreamNotFound) throw err;
    const info = await jsm.streams.add({ name, subjects: [...subjects] });
    log.info({ event: "stream_created", stream: name, subjects }, "created stream");
    return { info, created: true };
  }
}

/**
 * Refuses to consume a stream that cannot be the one bronze was filled from: one that had to be
 * created, or one that ends before bronze's position. Either way new messages would carry
 * sequences bronze already holds and would be skipped silently. Messages removed from the stream
 * before tributary read them (retention limits) are reported, since they cannot be recovered.
 */
export function checkStreamAgainstBronze(stream: string, info: StreamInfo, created: boolean, startAfter: number, log: Logger): void {
  if (startAfter === 0) return;
  const hint = "use a new data directory, or restore the stream";
  if (created) {
    throw new SourceError(`stream ${stream} did not exist, but bronze holds its messages up to sequence ${startAfter}: it was deleted; ${hint}`);
  }
  if (info.state.last_seq < startAfter) {
    throw new SourceError(
      `stream ${stream} ends at sequence ${info.state.last_seq}, but bronze holds messages up to ${startAfter}: the stream was replaced; ${hint}`,
    );
  }
  if (info.state.first_seq > startAfter + 1) {
    log.error(
      { event: "messages_lost_upstream", stream, missingFrom: startAfter + 1, missingTo: info.state.first_seq - 1 },
      `stream ${stream} no longer holds sequences ${startAfter + 1}..${info.state.first_seq - 1}: they were removed before tributary read them`,
    );
  }
}

/** A durable pull consumer feeding the topology. */
export class JetStreamSource {
  private messagesHandle: ConsumerMessages | null = null;
  private isConnected = true;
  /** Highest stream sequence emitted (or held in bronze at start). */
  private lastEmitted = 0;
  /** Consumer delivery sequence the next message must carry. */
  private nextDeliverySeq = 1;
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
    const nc = await connectWithRetry(options.url, options.log, options.connectTimeoutMs, options.auth);
    try {
      const jsm = await jetstreamManager(nc);
      const { info, created } = await ensureStream(jsm, options.stream, options.subjects, options.log);
      checkStreamAgainstBronze(options.stream, info, created, startAfter, options.log);
      const source = new JetStreamSource(nc, jsm, options);
      source.lastEmitted = startAfter;
      await source.ensureConsumer(startAfter);
      return source;
    } catch (err) {
      await nc.close();
      if (err instanceof SourceError) throw err;
      throw new SourceError(`cannot set up stream ${options.stream}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** False between a lost connection and the reconnect. */
  get connected(): boolean {
    return !this.nc.isClosed() && this.isConnected;
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
      if (startAfter > 0) {
        log.warn(
          { event: "consumer_missing", consumer, bronzePosition: startAfter },
          `durable consumer ${consumer} is missing (deleted?); recreating it at bronze's position ${startAfter + 1}`,
        );
      }
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
      this.nextDeliverySeq = info.delivered.consumer_seq + 1;
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
    this.nextDeliverySeq = 1;
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
   *
   * Delivery must stay in stream order. Every delivery carries a consumer sequence that grows by
   * one; a jump means deliveries were lost in transit (typically across a reconnect). Since acks
   * are cumulative, acking past such a hole would acknowledge messages never received, so the
   * source repositions instead: it recreates the consumer to deliver from the message after the
   * last one it emitted. It does the same after every reconnect.
   */
  messages(drain: boolean): Observable<SourceMessage> {
    return new Observable<SourceMessage>((subscriber) => {
      const origin = this.origin;
      const { log, stream, consumer: consumerName } = this.options;
      let lastMessageAt = Date.now();
      let drainTimer: NodeJS.Timeout | null = null;
      let repositioning: Promise<void> | null = null;
      let closed = false;
      const finish = () => {
        closed = true;
        if (drainTimer) clearInterval(drainTimer);
        drainTimer = null;
        this.messagesHandle?.stop();
        if (!subscriber.closed) subscriber.complete();
      };
      this.complete = finish;
      const fail = (err: unknown) => {
        closed = true;
        if (drainTimer) clearInterval(drainTimer);
        this.messagesHandle?.stop();
        subscriber.error(err);
      };

      const onMessage = (m: JsMsg) => {
        if (closed || this.stopRequested || repositioning) return;
        // The reply subject is parsed once here; m.seq and m.timestampNanos would parse it again.
        const info = m.info;
        const dseq = info.deliverySequence;
        if (dseq !== this.nextDeliverySeq) {
          log.warn(
            { event: "delivery_gap", expected: this.nextDeliverySeq, got: dseq, streamSeq: info.streamSequence, resumeAt: this.lastEmitted + 1 },
            "deliveries were lost in transit; repositioning the consumer",
          );
          reposition();
          return;
        }
        this.nextDeliverySeq = dseq + 1;
        const seq = info.streamSequence;
        if (seq > this.lastEmitted) this.lastEmitted = seq;
        lastMessageAt = Date.now();
        const ct = m.headers?.get("Content-Type");
        const msgId = m.headers?.get("Nats-Msg-Id");
        subscriber.next({
          origin,
          originSeq: seq,
          subject: m.subject,
          data: m.data,
          receivedAt: lastMessageAt,
          // Nanoseconds as a double are exact to well under a microsecond at today's epoch.
          publishedAt: Math.floor(info.timestampNanos / 1_000_000),
          contentType: ct ? ct : null,
          msgId: msgId ? msgId : null,
          ack: () => m.ack(),
        });
      };

      const consume = async () => {
        const js = jetstream(this.nc);
        const c = await js.consumers.get(stream, consumerName);
        const handle = await c.consume({ max_messages: this.options.pullSize, callback: onMessage });
        this.messagesHandle = handle;
        void (async () => {
          for await (const s of handle.status()) {
            if (s.type === "heartbeats_missed" || s.type === "consumer_deleted" || s.type === "consumer_not_found" || s.type === "stream_not_found") {
              log.warn({ event: "consumer_status", status: s.type }, `consumer status: ${s.type}`);
              if (s.type !== "heartbeats_missed" && !repositioning) setTimeout(() => void verifyResources(), 1_000);
            }
          }
        })().catch(() => undefined);
      };

      // Recreate the consumer right after the last message emitted, then consume again. Retries
      // while the broker is unreachable.
      const reposition = () => {
        if (repositioning || closed) return;
        this.messagesHandle?.stop();
        repositioning = (async () => {
          for (let attempt = 1; !closed; attempt++) {
            try {
              try {
                await this.jsm.consumers.delete(stream, consumerName);
              } catch (err) {
                if (!(err instanceof JetStreamApiError) || err.code !== JetStreamApiCodes.ConsumerNotFound) throw err;
              }
              await this.createConsumer(this.lastEmitted);
              this.nextDeliverySeq = 1;
              await consume();
              log.info({ event: "consumer_repositioned", resumeAt: this.lastEmitted + 1, attempt }, "consuming again from the first message not yet received");
              return;
            } catch (err) {
              log.warn({ event: "reposition_retry", attempt, reason: (err as Error).message }, "repositioning the consumer failed; retrying");
              await new Promise((r) => setTimeout(r, Math.min(250 * 2 ** attempt, 5_000)));
            }
          }
        })().finally(() => {
          repositioning = null;
        });
      };

      // A deleted consumer or stream must stop the daemon loudly, never be skipped past. The
      // client also reports these transiently while a server restarts, so confirm first.
      let verifying = false;
      const verifyResources = async () => {
        if (verifying || closed) return;
        verifying = true;
        try {
          await this.info();
        } catch (err) {
          if (err instanceof JetStreamApiError && (err.code === JetStreamApiCodes.ConsumerNotFound || err.code === JetStreamApiCodes.StreamNotFound)) {
            const what = err.code === JetStreamApiCodes.StreamNotFound ? `stream ${stream}` : `consumer ${consumerName}`;
            fail(new SourceError(`${what} was deleted while tributary was consuming it; restart to resume from bronze's position`));
          }
        } finally {
          verifying = false;
        }
      };

      const watchConnection = async () => {
        for await (const s of this.nc.status()) {
          if (closed) return;
          if (s.type === "disconnect") this.isConnected = false;
          if (s.type === "reconnect") {
            this.isConnected = true;
            reposition();
          }
        }
      };
      void watchConnection().catch(() => undefined);

      consume()
        .then(() => {
          if (this.stopRequested) finish();
          if (!drain) return;
          let checking = false;
          drainTimer = setInterval(() => {
            if (checking || repositioning || Date.now() - lastMessageAt < 200) return;
            checking = true;
            this.info()
              .then((info) => {
                if (!repositioning && info.num_pending === 0 && info.num_ack_pending === 0 && info.delivered.stream_seq <= this.lastEmitted) {
                  log.info({ event: "caught_up", consumer: consumerName }, "consumer has nothing pending");
                  finish();
                }
              })
              .catch((err) => log.warn({ event: "consumer_info_failed", reason: (err as Error).message }, "consumer info failed"))
              .finally(() => (checking = false));
          }, 250);
        })
        .catch((err) => fail(new SourceError(`cannot consume from ${stream}/${consumerName}: ${(err as Error).message}`, { cause: err })));
      return () => {
        closed = true;
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

  /**
   * Flushes outstanding acks (for at most 2 s: while the broker is unreachable a flush would wait
   * for the reconnect) and closes the connection. Unflushed acks only cause redeliveries, which
   * bronze recognises.
   */
  async close(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([this.nc.flush(), new Promise((resolve) => (timer = setTimeout(resolve, 2_000)))]);
    } catch {
      // closing anyway
    } finally {
      clearTimeout(timer);
    }
    await this.nc.close();
  }
}
