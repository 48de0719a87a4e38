/**
 * The shapes that flow through the tributary graph.
 *
 * A {@link SourceMessage} is what a source emits: raw bytes plus where they came from.
 * Operators turn it into a {@link Staged} record whose {@link Outcome} says whether it is
 * valid, quarantined or a duplicate. Sinks commit batches of staged records.
 */

/** The five entities of the data contract, in the order they are documented. */
export const ENTITIES = ["customers", "transactions", "interactions", "events", "sessions"] as const;
export type Entity = (typeof ENTITIES)[number];

/** Entities whose records are events: the first copy of an id wins, later copies are duplicates. */
export const EVENT_ENTITIES = ["transactions", "interactions", "events", "sessions"] as const;
export type EventEntity = (typeof EVENT_ENTITIES)[number];

/** Quarantine reason codes, each counted. */
export const REASONS = [
  "decode_error",
  "unknown_entity",
  "missing_field",
  "invalid_type",
  "invalid_timestamp",
  "invalid_range",
  "unknown_currency",
  "future_timestamp",
  "oversize",
] as const;
export type Reason = (typeof REASONS)[number];

/**
 * The reason a quarantine entry carries: one of {@link REASONS}, or one of an embedder's own
 * stages (a lower-case word such as `pii_found`), stored and counted the same way.
 */
export type QuarantineReason = Reason | (string & {});

/**
 * One message as a source received it. `origin` + `originSeq` identify it for good: for JetStream
 * the origin is `jetstream:<stream>` and the sequence is the stream sequence; for files it is the
 * file and the record's 1-based index.
 */
export interface SourceMessage {
  readonly origin: string;
  readonly originSeq: number;
  /** `tributary.<entity>[.more]`, or `tributary.<entity>` for files and the generator. */
  readonly subject: string;
  readonly data: Uint8Array;
  /** Epoch milliseconds when tributary first received the message (kept in bronze, reused on replay). */
  readonly receivedAt: number;
  /** Epoch milliseconds when the broker stored the message, when known. */
  readonly publishedAt: number | null;
  readonly contentType: string | null;
  readonly msgId: string | null;
  /** Bronze sequence, present when the message is replayed from bronze. */
  readonly bronzeSeq?: number;
  /**
   * Finalizes the message at its source: called once the message is durable in bronze.sqlite,
   * never before, and at most once. A custom Observable source gets one call per message (a
   * JetStream source, one cumulative ack per batch). A message whose position bronze already
   * holds is skipped and acked at once; one whose position is still in a batch being committed
   * is dropped without a call (for JetStream the batch's cumulative ack covers it). Silver and
   * gold follow the bronze commit, and a crash before them is repaired from bronze at the next
   * start, so an acked message is never lost. A message whose batch fails to commit is never acked.
   *
   * @example
   * // Answer a request only once its message is committed.
   * await new Promise<void>((resolve) => subject.next({ ...message, ack: resolve }));
   */
  readonly ack?: () => void;
}

export interface CustomerRecord {
  readonly entity: "customers";
  readonly id: string;
  readonly customer_id: string;
  readonly eventAt: number | null;
  readonly name: string | null;
  readonly email: string | null;
  readonly registration_at: number | null;
  readonly customer_segment: string;
}

export interface TransactionRecord {
  readonly entity: "transactions";
  readonly id: string;
  readonly customer_id: string;
  readonly eventAt: number;
  readonly amount: number;
  readonly currency: string;
  /** Amount in the base currency; set by `enrich`. */
  readonly amount_base: number;
  /** The customer's segment as known when the record was processed; set by `enrich`. */
  readonly customer_segment: string;
}

export interface InteractionRecord {
  readonly entity: "interactions";
  readonly id: string;
  readonly customer_id: string;
  readonly eventAt: number;
  readonly interaction_type: string;
}

export interface EventRecord {
  readonly entity: "events";
  readonly id: string;
  readonly customer_id: string;
  readonly eventAt: number;
  readonly event_type: string;
}

export interface SessionRecord {
  readonly entity: "sessions";
  readonly id: string;
  readonly customer_id: string;
  readonly eventAt: number;
  readonly session_end_at: number;
  readonly device_type: string;
}

/** A record that passed the data contract, typed per entity. `eventAt` is epoch ms. */
export type ValidRecord = CustomerRecord | TransactionRecord | InteractionRecord | EventRecord | SessionRecord;

export interface Quarantine {
  readonly status: "quarantined";
  readonly reason: QuarantineReason;
  /** The field at fault, or null when the whole message is at fault. */
  readonly field: string | null;
  readonly detail: string;
}

export type Outcome =
  | { readonly status: "decoded"; readonly fields: Record<string, unknown> }
  | { readonly status: "valid"; readonly record: ValidRecord }
  | { readonly status: "duplicate"; readonly record: ValidRecord }
  | Quarantine;

/** A source message on its way through the operators. */
export interface Staged {
  readonly msg: SourceMessage;
  /** The entity named by the subject (or file), or the raw token when it is not one of ours. */
  readonly entity: string;
  readonly outcome: Outcome;
}

/** A valid, non-duplicate record together with the bronze sequence it was committed under. */
export interface Accepted {
  readonly bronzeSeq: number;
  readonly record: ValidRecord;
}
