/**
 * The source factory: turns a {@link SourceSpec} into the Observable of messages the topology
 * consumes. Each source names its own origin (`jetstream:<stream>`, a file's path,
 * `generator:<seed>`) and resumes after the last position bronze holds for it.
 */
import type { Observable } from "rxjs";
import type { Config } from "../config.js";
import type { SourceMessage } from "../types.js";
import type { BronzeStore } from "../sinks/bronze.js";
import type { CommitCredit } from "../runtime/commit-credit.js";
import type { Logger } from "../log.js";
import { JetStreamSource } from "./jetstream.js";
import { filesSource } from "./files.js";
import { generatorSource, type GeneratorOptions } from "./generator.js";

/** Where records come from. */
export type SourceSpec =
  | {
      readonly kind: "jetstream";
      readonly drain?: boolean;
      readonly connectTimeoutMs?: number;
      /** Read a stream that is not the one bronze read (deleted and recreated, restored) as a new origin. */
      readonly newStream?: boolean;
      /** Continue past messages the stream no longer holds (purged or expired before they were read). */
      readonly acceptGap?: boolean;
    }
  | { readonly kind: "files"; readonly files: readonly string[]; readonly entity?: string }
  | ({ readonly kind: "generator" } & GeneratorOptions)
  /**
   * Any Observable of messages. Its messages' `ack` callbacks tell it when each one is durable in
   * bronze (see {@link SourceMessage.ack}); it is not pulled, so it should not outrun them.
   */
  | { readonly kind: "observable"; readonly messages: Observable<SourceMessage> };

export interface SourceContext {
  readonly config: Config;
  /** Bronze, the position of record: where each source resumes. */
  readonly bronze: BronzeStore;
  readonly log: Logger;
  /** Aborts connecting (a stop before the source is open). */
  readonly signal: AbortSignal;
  /** Commit credit for a pulled source, and the chunk size it reads in. */
  readonly pull: () => { credit: CommitCredit; chunkSize: number };
}

/** An opened source: its messages, and the JetStream consumer when it is one. */
export interface OpenedSource {
  readonly messages: Observable<SourceMessage>;
  readonly jetstream: JetStreamSource | null;
}

/** Opens the source a spec names. */
export async function openSource(spec: SourceSpec, ctx: SourceContext): Promise<OpenedSource> {
  const { config: c, bronze } = ctx;
  switch (spec.kind) {
    case "jetstream": {
      const jetstream = await JetStreamSource.open(
        {
          url: c.nats.url,
          stream: c.nats.stream,
          subjects: c.nats.subjects,
          consumer: c.nats.consumer,
          ackWaitMs: c.nats.ackWait,
          maxAckPending: c.nats.maxAckPending,
          pullSize: Math.min(c.batch.maxRecords * 2, c.nats.maxAckPending),
          connectTimeoutMs: spec.connectTimeoutMs,
          auth: c.nats,
          policy: { newStream: spec.newStream ?? false, acceptGap: spec.acceptGap ?? false },
          stallMs: c.nats.stallTimeout,
          limits: { maxAgeMs: c.nats.maxAge, maxBytes: c.nats.maxBytes },
          signal: ctx.signal,
          log: ctx.log,
        },
        {
          streamOrigin: (stream) => bronze.streamOrigin(stream),
          lastSeq: (origin) => bronze.lastOriginSeq(origin),
          messageAt: (origin, seq) => bronze.messageAt(origin, seq),
          recordStream: (stream, origin, identity) => bronze.recordStream(stream, { origin, ...identity }),
        },
      );
      return { messages: jetstream.messages(spec.drain ?? false), jetstream };
    }
    case "files":
      return { messages: filesSource(spec.files, { entity: spec.entity, startAfter: (o) => bronze.lastOriginSeq(o), ...ctx.pull() }), jetstream: null };
    case "generator": {
      const { kind: _kind, ...gen } = spec;
      return { messages: generatorSource(gen, bronze.lastOriginSeq(`generator:${gen.seed ?? 42}`), ctx.pull()), jetstream: null };
    }
    case "observable":
      return { messages: spec.messages, jetstream: null };
  }
}
