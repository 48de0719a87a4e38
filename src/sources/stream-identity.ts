/**
 * Stream identity: is the stream on the server the one bronze read? A stream is known by its
 * creation time (the server keeps it across restarts and restores; a deleted and recreated
 * stream, or one on another server, has another) and by its content: the message at bronze's
 * last sequence must be the one bronze holds. Pure: the JetStream source gathers the facts.
 */
import { createHash } from "node:crypto";

/** What bronze recorded of the stream an origin reads. */
export interface StreamIdentity {
  /** The stream's creation time as the server reports it (RFC 3339, nanoseconds). */
  readonly created: string;
  /** The stream's first sequence when bronze recorded it. */
  readonly firstSeq: number;
}

/** The stream as the server has it now. */
export interface StreamState {
  readonly created: string;
  readonly firstSeq: number;
  readonly lastSeq: number;
  /** True when the stream did not exist and was just created. */
  readonly createdNow: boolean;
}

export interface StreamPolicy {
  /** Read a stream that is not the one bronze recorded as a new origin, from its first message. */
  readonly newStream: boolean;
  /** Continue past messages the stream no longer holds instead of stopping. */
  readonly acceptGap: boolean;
}

export type StreamVerdict =
  /** The stream bronze read; continue after `position`. */
  | { readonly kind: "same" }
  /** Nothing is known against it (nothing read yet, or no identity recorded): record this one. */
  | { readonly kind: "record" }
  /** Another stream, accepted with `newStream`: read it as a new origin from its first message. */
  | { readonly kind: "new-origin" }
  /** The same stream, but it no longer holds `lost` messages after bronze's position (accepted). */
  | { readonly kind: "gap"; readonly from: number; readonly to: number; readonly lost: number }
  /** Reading on could skip or re-count; `remedy` names the policy that would read on anyway, if one would. */
  | { readonly kind: "refuse"; readonly message: string; readonly remedy?: "newStream" | "acceptGap" };

function describe(s: { created: string; firstSeq: number }, lastSeq?: number): string {
  return `created ${s.created}, first sequence ${s.firstSeq}${lastSeq === undefined ? "" : `, last sequence ${lastSeq}`}`;
}

/**
 * Judges the stream on the server against what bronze read of it up to `position` (the highest
 * stream sequence held or received). Refuses whenever reading on could skip or re-count a message.
 *
 * @example
 * judgeStream("TRIBUTARY", { created: "2026-12-01T08:00:00Z", firstSeq: 1 }, 7300,
 *   { created: "2026-12-01T09:00:00Z", firstSeq: 1, lastSeq: 14474, createdNow: false }, { newStream: false, acceptGap: false })
 * // { kind: "refuse", message: "stream TRIBUTARY is not the stream bronze read: ..." }
 */
export function judgeStream(
  stream: string,
  recorded: StreamIdentity | null,
  position: number,
  server: StreamState,
  policy: StreamPolicy,
): StreamVerdict {
  if (position === 0) return recorded !== null && recorded.created === server.created ? { kind: "same" } : { kind: "record" };
  const replaced = server.createdNow || (recorded !== null && recorded.created !== server.created);
  if (replaced) {
    if (policy.newStream) return { kind: "new-origin" };
    const was = recorded ? describe(recorded) : "identity not recorded";
    const now = server.createdNow ? "it did not exist and was created empty" : describe(server, server.lastSeq);
    return {
      kind: "refuse",
      message:
        `stream ${stream} is not the stream bronze read up to sequence ${position} (bronze read: ${was}; the server has: ${now}): ` +
        `it was deleted and recreated, restored, or this is another server`,
      remedy: "newStream",
    };
  }
  if (server.lastSeq < position) {
    return {
      kind: "refuse",
      message:
        `stream ${stream} ends at sequence ${server.lastSeq}, but bronze read it up to ${position}: the server lost messages it had stored ` +
        `(restored from an older copy, or a power cut); new messages would reuse sequences bronze holds. Restore the server's store, or use a new data directory`,
    };
  }
  if (server.firstSeq > position + 1) {
    const from = position + 1;
    const to = server.firstSeq - 1;
    const lost = to - from + 1;
    if (policy.acceptGap) return { kind: "gap", from, to, lost };
    return {
      kind: "refuse",
      message:
        `stream ${stream} no longer holds sequences ${from}..${to}: ${lost} messages were removed (purged, or expired by the stream's limits) ` +
        `before tributary read them`,
      remedy: "acceptGap",
    };
  }
  return recorded === null ? { kind: "record" } : { kind: "same" };
}

/** A message as a stream or bronze holds it, for the content check. */
export interface HeldMessage {
  readonly data: Uint8Array;
  /** When the stream stored it, epoch ms (null when not known). */
  readonly storedAt: number | null;
}

/** sha256 of a payload, hex, shortened for messages. */
export function payloadDigest(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex").slice(0, 16);
}

/**
 * The Jepsen check: the stream's message at sequence `seq` must be the one bronze holds there,
 * by payload and by stored time (to the millisecond; nanoseconds reach tributary as a double, so
 * 1 ms of slack). Returns null when they agree, else the reason to stop.
 */
export function compareHeld(stream: string, seq: number, bronze: HeldMessage, server: HeldMessage): string | null {
  const a = payloadDigest(bronze.data);
  const b = payloadDigest(server.data);
  const timeDiffers = bronze.storedAt !== null && server.storedAt !== null && Math.abs(bronze.storedAt - server.storedAt) > 1;
  if (a === b && !timeDiffers) return null;
  const at = (t: number | null) => (t === null ? "an unknown time" : new Date(t).toISOString());
  return (
    `stream ${stream} no longer holds what bronze read: at sequence ${seq} bronze has a message stored at ${at(bronze.storedAt)} (sha256 ${a}), ` +
    `the stream has one stored at ${at(server.storedAt)} (sha256 ${b}). The server lost acknowledged messages and took new ones under the same sequences ` +
    `(restored from an older copy, or a power cut); restore the server's store, or use a new data directory`
  );
}

/** Parses an RFC 3339 time with up to nanosecond digits into epoch ms (truncating), or null. */
export function parseStoredTime(value: string): number | null {
  const m = /^(.*T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/.exec(value);
  if (!m) return null;
  const ms = Date.parse(`${m[1]}.${(m[2] ?? "").padEnd(3, "0").slice(0, 3)}${m[3]}`);
  return Number.isNaN(ms) ? null : ms;
}
