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
import { SourceError, StreamMismatchError } from "../errors.js";
import { compareHeld, judgeStream, parseStoredTime, type StreamIdentity, type StreamPolicy, type StreamState } from "./stream-identity.js";
import { connectWithRetry, type NatsAuth } from "./nats-connection.js";
import { rawMessage, readMsgHeaders } from "./msg-headers.js";
import { parseAckSubject } from "./ack-subject.js";

export { connectWithRetry, redactUrl, type NatsAuth } from "./nats-connection.js";

/** The limits of a stream tributary creates (`nats.maxAge`, `nats.maxBytes`); 0 or absent is none. */
export interface StreamLimits {
  readonly maxAgeMs?: number;
  readonly maxBytes?: number;
}

export interface JetStreamSourceOptions {
  /** Limits for the stream when this source creates it. */
  readonly limits?: StreamLimits;
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
  /** What to do with a stream that is not the one bronze read, or that lost messages. */
  readonly policy?: StreamPolicy;
  /**
   * Nothing received for this long while the consumer has messages for this process counts as
   * stalled: readiness says so and the consumer is repositioned (default 15 s).
   */
  readonly stallMs?: number;
  /** Stops connection attempts (a SIGTERM while the broker is still unreachable). */
  readonly signal?: AbortSignal;
  readonly log: Logger;
}

/**
 * What the source needs from bronze, the position of record. The topology backs it with the
 * bronze file; the source itself never touches storage.
 */
export interface BronzeLedger {
  /** The origin this stream's messages are recorded under, with the identity recorded for it. */
  streamOrigin(stream: string): { origin: string; recorded: StreamIdentity | null };
  /** Highest stream sequence bronze holds for an origin (0 when none). */
  lastSeq(origin: string): number;
  /** Bronze's copy of the message at a stream sequence, or null. */
  messageAt(origin: string, seq: number): { data: Uint8Array; publishedAt: number | null } | null;
  /** Records the identity of the stream an origin reads (creating the origin when new). */
  recordStream(stream: string, origin: string, identity: StreamIdentity): void;
}

const DEFAULT_STALL_MS = 15_000;
/**
 * Repositionings within four stall timeouts that mean another client is consuming the same
 * durable. Only repositionings for lost deliveries or a stall count, not reconnects: two of those
 * in a row mean deliveries keep going elsewhere.
 */
const FLAPPING_REPOSITIONS = 2;
/** Stalled this long despite repositioning: give up, so a supervisor restarts the daemon. */
const STALL_GIVE_UP_MS = 180_000;

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
  limits: StreamLimits = {},
): Promise<{ info: StreamInfo; created: boolean }> {
  try {
    return { info: await jsm.streams.info(name), created: false };
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || err.code !== JetStreamApiCodes.StreamNotFound) throw err;
    const maxAgeMs = limits.maxAgeMs ?? 0;
    const maxBytes = limits.maxBytes ?? 0;
    const info = await jsm.streams.add({
      name,
      subjects: [...subjects],
      // nanoseconds; 0 means no limit, as -1 does for bytes
      max_age: maxAgeMs > 0 ? maxAgeMs * 1_000_000 : 0,
      max_bytes: maxBytes > 0 ? maxBytes : -1,
    });
    log.info({ event: "stream_created", stream: name, subjects, maxAgeMs, maxBytes }, "created stream");
    return { info, created: true };
  }
}

function stateOf(info: StreamInfo, createdNow: boolean): StreamState {
  return { created: info.created, firstSeq: info.state.first_seq, lastSeq: info.state.last_seq, createdNow };
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
  /** The origin bronze records this stream under (a new one after `--new-stream`). */
  private originName: string;
  /** The identity of the stream being read, as bronze recorded it. */
  private identity: StreamIdentity | null = null;
  /** Why consumption is stuck, while it is; null when it is not. */
  private stallReason: string | null = null;
  private readonly repositionedAt: number[] = [];
  /** The last message emitted, for the content check of messages received but not yet in bronze. */
  private lastHeld: { seq: number; data: Uint8Array; storedAt: number } | null = null;

  private constructor(
    readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly options: JetStreamSourceOptions,
    private readonly ledger: BronzeLedger,
  ) {
    this.originName = jetstreamOrigin(options.stream);
  }

  /**
   * Connects, makes sure the stream exists and is the one bronze read (see {@link judgeStream}),
   * then makes sure the durable consumer delivers from the first message bronze lacks.
   *
   * @throws StreamMismatchError when the stream is not the one bronze read, or no longer holds it.
   */
  static async open(options: JetStreamSourceOptions, ledger: BronzeLedger): Promise<JetStreamSource> {
    const nc = await connectWithRetry(options.url, options.log, options.connectTimeoutMs, options.auth, options.signal);
    try {
      const jsm = await jetstreamManager(nc);
      const { info, created } = await ensureStream(jsm, options.stream, options.subjects, options.log, options.limits);
      const source = new JetStreamSource(nc, jsm, options, ledger);
      await source.identify(info, created);
      await source.ensureConsumer(source.lastEmitted);
      return source;
    } catch (err) {
      await nc.close();
      if (err instanceof SourceError) throw err;
      throw new SourceError(`cannot set up stream ${options.stream}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Decides the origin and the position to read from, or refuses the stream. */
  private async identify(info: StreamInfo, createdNow: boolean): Promise<void> {
    const { stream, log } = this.options;
    const policy = this.options.policy ?? { newStream: false, acceptGap: false };
    const { origin, recorded } = this.ledger.streamOrigin(stream);
    let position = this.ledger.lastSeq(origin);
    const verdict = judgeStream(stream, recorded, position, stateOf(info, createdNow), policy);
    const identity: StreamIdentity = { created: info.created, firstSeq: info.state.first_seq };
    this.originName = origin;
    this.identity = recorded;
    switch (verdict.kind) {
      case "refuse":
        throw new StreamMismatchError(verdict.message, { remedy: verdict.remedy });
      case "new-origin":
        this.originName = `jetstream:${stream}@${info.created}`;
        position = this.ledger.lastSeq(this.originName);
        log.warn(
          { event: "stream_new_origin", stream, origin: this.originName, previous: origin, previousCreated: recorded?.created ?? null, created: info.created },
          `--new-stream: reading stream ${stream} (created ${info.created}) as a new origin from its first message`,
        );
        this.record(identity);
        break;
      case "gap":
        log.error(
          { event: "messages_lost_upstream", stream, missingFrom: verdict.from, missingTo: verdict.to, lost: verdict.lost },
          `--accept-gap: stream ${stream} no longer holds sequences ${verdict.from}..${verdict.to} (${verdict.lost} messages); continuing after them`,
        );
        break;
      case "record":
      case "same":
        break;
    }
    this.lastEmitted = position;
    await this.checkContent(info);
    if (verdict.kind === "record") this.record(identity);
    if (verdict.kind === "gap" && recorded === null) this.record(identity);
  }

  private record(identity: StreamIdentity): void {
    this.ledger.recordStream(this.options.stream, this.originName, identity);
    this.identity = identity;
  }

  /**
   * The message at bronze's last committed sequence must still be in the stream as bronze holds
   * it: a server restored from an older copy that took new messages under the same sequences
   * passes every check of positions, and fails this one.
   */
  private async checkContent(info: StreamInfo, held?: { seq: number; data: Uint8Array; storedAt: number }): Promise<void> {
    const seq = held?.seq ?? this.ledger.lastSeq(this.originName);
    if (seq === 0 || seq < info.state.first_seq || seq > info.state.last_seq) return;
    const mine = held ? { data: held.data, publishedAt: held.storedAt } : this.ledger.messageAt(this.originName, seq);
    if (!mine) return;
    const theirs = await this.jsm.streams.getMessage(this.options.stream, { seq });
    if (!theirs) {
      this.options.log.debug({ event: "content_check_skipped", seq }, "the stream no longer holds bronze's last message; nothing to compare");
      return;
    }
    const reason = compareHeld(
      this.options.stream,
      seq,
      { data: mine.data, storedAt: mine.publishedAt },
      { data: theirs.data, storedAt: parseStoredTime(theirs.timestamp) },
    );
    if (reason) throw new StreamMismatchError(reason);
  }

  /**
   * Before every consumer recreation: the stream must still be the one bronze read, and must
   * still hold what this run received. Throws {@link StreamMismatchError} otherwise.
   */
  private async verifyStream(): Promise<void> {
    const { stream } = this.options;
    let info: StreamInfo;
    try {
      info = await this.jsm.streams.info(stream);
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) {
        throw new StreamMismatchError(`stream ${stream} was deleted while tributary was consuming it (bronze read it up to sequence ${this.lastEmitted})`);
      }
      throw err;
    }
    const verdict = judgeStream(stream, this.identity, this.lastEmitted, stateOf(info, false), {
      newStream: false,
      acceptGap: this.options.policy?.acceptGap ?? false,
    });
    if (verdict.kind === "refuse") throw new StreamMismatchError(verdict.message, { remedy: verdict.remedy });
    if (verdict.kind === "gap") {
      this.options.log.error({ event: "messages_lost_upstream", stream, missingFrom: verdict.from, missingTo: verdict.to, lost: verdict.lost }, "messages removed before tributary read them");
    }
    await this.checkContent(info);
    // Messages received but not yet in bronze count too: a server that lost them in a power cut
    // and took others under their sequences would otherwise be read on from after them.
    const held = this.lastHeld;
    if (held && held.seq > this.ledger.lastSeq(this.originName)) await this.checkContent(info, held);
  }

  /** False between a lost connection and the reconnect. */
  get connected(): boolean {
    return !this.nc.isClosed() && this.isConnected;
  }

  /** The origin bronze records this stream's messages under. */
  get origin(): string {
    return this.originName;
  }

  /**
   * Why consumption is stuck (nothing received while the consumer has messages for this process,
   * or the durable repositioned again and again), or null. Readiness reports it.
   */
  get stalled(): string | null {
    const now = Date.now();
    const windowMs = 4 * (this.options.stallMs ?? DEFAULT_STALL_MS);
    while (this.repositionedAt.length > 0 && now - this.repositionedAt[0]! > windowMs) this.repositionedAt.shift();
    if (this.stallReason) return this.stallReason;
    if (this.repositionedAt.length >= FLAPPING_REPOSITIONS) {
      return `durable consumer ${this.options.consumer} was repositioned ${this.repositionedAt.length} times in the last ${Math.round(windowMs / 1000)} s: is another client consuming it?`;
    }
    return null;
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
          { event: "consumer_missing", consumer, bronzeLastSeq: startAfter },
          `durable consumer ${consumer} is missing (deleted?); recreating it at bronze's position ${startAfter + 1}`,
        );
      }
      await this.createConsumer(startAfter);
      return;
    }
    const state = {
      consumer,
      bronzeLastSeq: startAfter,
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
   * last one it emitted. It does the same after every reconnect, when the consumer goes missing,
   * and when nothing arrives while the consumer has messages for this process (a stall).
   */
  messages(drain: boolean): Observable<SourceMessage> {
    return new Observable<SourceMessage>((subscriber) => {
      const origin = this.origin;
      const { log, stream, consumer: consumerName } = this.options;
      const stallMs = this.options.stallMs ?? DEFAULT_STALL_MS;
      let lastMessageAt = Date.now();
      let drainTimer: NodeJS.Timeout | null = null;
      let repositioning: Promise<void> | null = null;
      let closed = false;
      let stalledSince: number | null = null;
      let watchdog: NodeJS.Timeout | null = null;
      const timers = () => {
        if (drainTimer) clearInterval(drainTimer);
        if (watchdog) clearInterval(watchdog);
        drainTimer = watchdog = null;
      };
      const finish = () => {
        closed = true;
        timers();
        this.messagesHandle?.stop();
        if (!subscriber.closed) subscriber.complete();
      };
      this.complete = finish;
      const fail = (err: unknown) => {
        closed = true;
        timers();
        this.messagesHandle?.stop();
        subscriber.error(err);
      };

      const onMessage = (m: JsMsg) => {
        if (closed || this.stopRequested || repositioning) return;
        // The reply subject is parsed once here, without nats.js's split (m.info, m.seq and
        // m.timestampNanos each split it); an unfamiliar form falls back to nats.js's parser.
        const info = parseAckSubject((m as JsMsg & { reply?: string }).reply) ?? m.info;
        const dseq = info.deliverySequence;
        if (dseq !== this.nextDeliverySeq) {
          log.warn(
            { event: "delivery_gap", expected: this.nextDeliverySeq, got: dseq, streamSeq: info.streamSequence, resumeAt: this.lastEmitted + 1 },
            "deliveries were lost in transit; repositioning the consumer",
          );
          reposition("delivery_gap");
          return;
        }
        this.nextDeliverySeq = dseq + 1;
        const seq = info.streamSequence;
        if (seq > this.lastEmitted) this.lastEmitted = seq;
        lastMessageAt = Date.now();
        if (stalledSince !== null) {
          stalledSince = null;
          this.stallReason = null;
          log.info({ event: "consumer_resumed", streamSeq: seq }, "receiving again");
        }
        // The two headers and the payload straight from the raw bytes, without nats.js's
        // per-message header decode (msg-headers.ts); its getters when the bytes are not there.
        const raw = rawMessage(m);
        let ct: string | null;
        let msgId: string | null;
        let data: Uint8Array;
        if (raw) {
          const h = readMsgHeaders(raw.bytes, raw.headerEnd);
          ct = h.contentType;
          msgId = h.msgId;
          data = raw.headerEnd > -1 ? raw.bytes.subarray(raw.headerEnd) : raw.bytes;
        } else {
          ct = m.headers?.get("Content-Type") ?? null;
          msgId = m.headers?.get("Nats-Msg-Id") ?? null;
          data = m.data;
        }
        const publishedAt = Math.floor(info.timestampNanos / 1_000_000);
        this.lastHeld = { seq, data, storedAt: publishedAt };
        subscriber.next({
          origin,
          originSeq: seq,
          subject: m.subject,
          data,
          receivedAt: lastMessageAt,
          // Nanoseconds as a double are exact to well under a microsecond at today's epoch.
          publishedAt,
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
              if (s.type === "heartbeats_missed") void checkProgress(true);
              else if (!repositioning) setTimeout(() => void verifyResources(), 1_000);
            }
          }
        })().catch(() => undefined);
      };

      // Recreate the consumer right after the last message emitted, then consume again, once the
      // stream is confirmed to be the one bronze read. Retries while the broker is unreachable.
      // Only lost deliveries and stalls count towards "contested"; a reconnect repositions too.
      const reposition = (cause: "delivery_gap" | "stall" | "reconnect" | "consumer_missing") => {
        if (repositioning || closed) return;
        this.messagesHandle?.stop();
        if (cause === "delivery_gap" || cause === "stall") this.repositionedAt.push(Date.now());
        repositioning = (async () => {
          for (let attempt = 1; !closed; attempt++) {
            try {
              await this.verifyStream();
              try {
                await this.jsm.consumers.delete(stream, consumerName);
              } catch (err) {
                if (!(err instanceof JetStreamApiError) || err.code !== JetStreamApiCodes.ConsumerNotFound) throw err;
              }
              await this.createConsumer(this.lastEmitted);
              this.nextDeliverySeq = 1;
              await consume();
              // A fresh consumer gets a full stall timeout before the watchdog judges it again.
              lastMessageAt = Date.now();
              log.info({ event: "consumer_repositioned", cause, resumeAt: this.lastEmitted + 1, attempt }, "consuming again from the first message not yet received");
              return;
            } catch (err) {
              if (err instanceof StreamMismatchError) {
                log.error({ event: "stream_mismatch", reason: err.message }, "the stream is not the one bronze read");
                fail(err);
                return;
              }
              log.warn({ event: "reposition_retry", attempt, reason: (err as Error).message }, "repositioning the consumer failed; retrying");
              await new Promise((r) => setTimeout(r, Math.min(250 * 2 ** attempt, 5_000)));
            }
          }
        })().finally(() => {
          repositioning = null;
        });
      };

      // A deleted consumer is recreated at bronze's position; a deleted stream stops the daemon
      // loudly. The client also reports these transiently while a server restarts, so confirm first.
      let verifying = false;
      const verifyResources = async () => {
        if (verifying || closed) return;
        verifying = true;
        try {
          await this.info();
        } catch (err) {
          if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) {
            fail(new StreamMismatchError(`stream ${stream} was deleted while tributary was consuming it (bronze read it up to sequence ${this.lastEmitted})`));
          } else if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound) {
            log.warn({ event: "consumer_missing", consumer: consumerName, resumeAt: this.lastEmitted + 1 }, "durable consumer was deleted; recreating it");
            reposition("consumer_missing");
          }
        } finally {
          verifying = false;
        }
      };

      // The watchdog: nothing received for `stallMs` while the consumer holds messages for this
      // process (not yet delivered, or delivered to someone else) means consumption is stuck.
      // Readiness says so at once; the consumer is repositioned; a stall that repositioning does
      // not cure fails the run, so a supervisor restarts it.
      let checking = false;
      const checkProgress = async (heartbeatsMissed = false) => {
        if (checking || closed || repositioning || this.stopRequested) return;
        if (!heartbeatsMissed && Date.now() - lastMessageAt < stallMs) return;
        checking = true;
        try {
          let reason: string | null = null;
          try {
            const info = await this.info();
            const idle = Date.now() - lastMessageAt;
            // Deliveries this process did not get. Compare consumer sequences: the server moves
            // delivered.stream_seq past deleted messages without delivering anything.
            const elsewhere = info.delivered.consumer_seq > this.nextDeliverySeq - 1;
            const waiting = info.num_pending > 0 && info.num_ack_pending < this.options.maxAckPending;
            if (idle >= stallMs && elsewhere) {
              reason = `durable consumer ${consumerName} delivered up to stream sequence ${info.delivered.stream_seq}, but this process received only up to ${this.lastEmitted} in the last ${Math.round(idle / 1000)} s: another client is consuming it`;
            } else if (idle >= stallMs && waiting) {
              reason = `nothing received for ${Math.round(idle / 1000)} s while ${info.num_pending} messages are pending for durable consumer ${consumerName}${heartbeatsMissed ? " (heartbeats missed)" : ""}`;
            }
          } catch (err) {
            if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound) {
              reason = `durable consumer ${consumerName} is missing`;
            } else if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) {
              return void verifyResources();
            } else {
              return; // unreachable broker: the connection status covers it
            }
          }
          if (reason === null) {
            if (stalledSince !== null) log.info({ event: "consumer_resumed" }, "nothing pending for this process");
            stalledSince = null;
            this.stallReason = null;
            return;
          }
          stalledSince ??= Date.now();
          this.stallReason = reason;
          log.warn({ event: "consumer_stalled", reason, stalledForMs: Date.now() - stalledSince }, `consumption is stuck: ${reason}; repositioning`);
          if (Date.now() - stalledSince > STALL_GIVE_UP_MS) {
            fail(new SourceError(`consumption stuck for ${Math.round((Date.now() - stalledSince) / 1000)} s despite repositioning: ${reason}`));
            return;
          }
          reposition("stall");
        } finally {
          checking = false;
        }
      };
      watchdog = setInterval(() => void checkProgress(), Math.max(250, Math.min(5_000, stallMs / 3)));
      watchdog.unref();

      const watchConnection = async () => {
        for await (const s of this.nc.status()) {
          if (closed) return;
          if (s.type === "disconnect") this.isConnected = false;
          if (s.type === "reconnect") {
            this.isConnected = true;
            reposition("reconnect");
          }
        }
      };
      void watchConnection().catch(() => undefined);

      consume()
        .then(() => {
          if (this.stopRequested) finish();
          if (!drain) return;
          let draining = false;
          drainTimer = setInterval(() => {
            if (draining || repositioning || Date.now() - lastMessageAt < 200) return;
            draining = true;
            this.info()
              .then((info) => {
                if (!repositioning && info.num_pending === 0 && info.num_ack_pending === 0 && info.delivered.consumer_seq <= this.nextDeliverySeq - 1) {
                  log.info({ event: "caught_up", consumer: consumerName }, "consumer has nothing pending");
                  finish();
                }
              })
              .catch((err) => log.warn({ event: "consumer_info_failed", reason: (err as Error).message }, "consumer info failed"))
              .finally(() => (draining = false));
          }, 250);
        })
        .catch((err) => fail(new SourceError(`cannot consume from ${stream}/${consumerName}: ${(err as Error).message}`, { cause: err })));
      return () => {
        closed = true;
        timers();
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
