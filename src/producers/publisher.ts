/**
 * The producer side: publishes records to JetStream as MessagePack, with a broker-side dedupe id
 * (`Nats-Msg-Id`) derived from the entity id. Used by `tributary publish`, the tests and the bench.
 */
import { createHash } from "node:crypto";
import { headers, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import { pack } from "msgpackr";
import { CONTRACT } from "../operators/validate.js";
import type { Entity } from "../types.js";
import { ENTITIES } from "../types.js";

export interface OutgoingMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly contentType?: string | null;
  readonly msgId?: string | null;
}

/**
 * The `Nats-Msg-Id` for a record: `<entity>:<id>` for event entities, so the broker drops resends
 * within its duplicate window. Profiles change over time, so a customer's id also carries a hash of
 * the profile: identical resends are dropped, updates go through. Null when the record has no id.
 */
export function msgIdFor(entity: string, record: Record<string, unknown>): string | null {
  if (!(ENTITIES as readonly string[]).includes(entity)) return null;
  const idField = CONTRACT[entity as Entity].fields[0]!.name;
  const id = record[idField];
  if ((typeof id !== "string" && typeof id !== "number") || String(id).trim() === "") return null;
  if (entity !== "customers") return `${entity}:${String(id).trim()}`;
  const digest = createHash("sha1").update(JSON.stringify(record)).digest("hex").slice(0, 16);
  return `${entity}:${String(id).trim()}:${digest}`;
}

/** Encodes a record as MessagePack with its subject and dedupe id. */
export function recordMessage(entity: string, record: Record<string, unknown>, prefix = "tributary"): OutgoingMessage {
  return { subject: `${prefix}.${entity}`, data: pack(record), msgId: msgIdFor(entity, record) };
}

/**
 * Publishes messages with at most `inFlight` unacknowledged publishes. Resolves with the number the
 * stream stored and the number it dropped as duplicates.
 */
export async function publishAll(
  nc: NatsConnection,
  messages: Iterable<OutgoingMessage> | AsyncIterable<OutgoingMessage>,
  options: { inFlight?: number; onProgress?: (n: number) => void } = {},
): Promise<{ stored: number; duplicates: number }> {
  const js: JetStreamClient = jetstream(nc);
  const inFlight = options.inFlight ?? 512;
  const pending = new Set<Promise<void>>();
  let stored = 0;
  let duplicates = 0;
  let sent = 0;
  let failure: Error | null = null;
  // Resolved when a publish settles while the loop waits for a free slot. Promise.race over the
  // pending set would attach a reaction to every pending publish per message: O(inFlight) each,
  // and those reactions pile up on the publishes until they settle.
  let slotFreed: (() => void) | null = null;
  for await (const m of messages) {
    if (failure) break;
    const h = m.contentType || m.msgId ? headers() : undefined;
    if (m.contentType) h!.set("Content-Type", m.contentType);
    const p: Promise<void> = js
      .publish(m.subject, m.data, { headers: h, msgID: m.msgId ?? undefined })
      .then(
        (ack) => {
          if (ack.duplicate) duplicates++;
          else stored++;
        },
        (err: Error) => {
          failure ??= new Error(`publish to ${m.subject} failed: ${err.message}`, { cause: err });
        },
      )
      .finally(() => {
        pending.delete(p);
        const wake = slotFreed;
        slotFreed = null;
        wake?.();
      });
    pending.add(p);
    sent++;
    if (pending.size >= inFlight) await new Promise<void>((resolve) => (slotFreed = resolve));
    if (options.onProgress && sent % 10_000 === 0) options.onProgress(sent);
  }
  await Promise.all(pending);
  if (failure) throw failure;
  return { stored, duplicates };
}
