import { describe, expect, it } from "vitest";
import { decodeBatch, decodeMessages, encodeBatch, encodeMessages } from "../../src/runtime/committer.js";
import type { Staged } from "../../src/types.js";
import { sourceMessage } from "../helpers/fixtures.js";

describe("the batch wire format to the commit worker", () => {
  it("carries every field of every record, binary payloads byte for byte, and drops the ack handle", () => {
    const batch: Staged[] = [
      {
        msg: sourceMessage({ originSeq: 7, data: Uint8Array.of(0, 255, 10, 13, 0x80), publishedAt: 1_700_000_000_123, msgId: "tx-1", contentType: "application/msgpack", ack: () => undefined }),
        entity: "transactions",
        outcome: {
          status: "valid",
          record: { entity: "transactions", id: "tx-1", customer_id: "c\u00e9\ud83d\ude00", eventAt: 1_700_000_000_000, amount: 0.1 + 0.2, currency: "EUR", amount_base: 1.0832999999999999, customer_segment: "retail" },
        },
      },
      { msg: sourceMessage({ originSeq: 8, data: new Uint8Array(0) }), entity: "nope", outcome: { status: "quarantined", reason: "unknown_entity", field: null, detail: 'subject "x" \\ names no entity' } },
      {
        msg: sourceMessage({ originSeq: 9, subject: "tributary.customers", data: Buffer.from("{}") }),
        entity: "customers",
        outcome: { status: "valid", record: { entity: "customers", id: "c1", customer_id: "c1", eventAt: null, name: null, email: "a@b", registration_at: null, customer_segment: "smb" } },
      },
    ];
    const wire = encodeBatch(batch);
    // What the worker receives is a structured clone; the round trip must not depend on sharing memory.
    const decoded = decodeBatch(structuredClone(wire));
    expect(decoded).toHaveLength(3);
    for (let i = 0; i < batch.length; i++) {
      const { ack: _ack, ...msg } = batch[i]!.msg;
      expect({ ...decoded[i]!.msg, data: [...decoded[i]!.msg.data] }).toEqual({ ...msg, data: [...msg.data] });
      expect(decoded[i]!.entity).toBe(batch[i]!.entity);
      expect(decoded[i]!.outcome).toEqual(batch[i]!.outcome);
      expect("ack" in decoded[i]!.msg).toBe(false);
    }
  });

  it("carries source messages, not yet staged, for a worker that runs the stages itself", () => {
    const batch = [
      sourceMessage({ originSeq: 1, data: Uint8Array.of(0x81, 0xa1, 0x61, 0x01), publishedAt: 1_700_000_000_123, msgId: "m\u00e9-1", contentType: "application/msgpack", ack: () => undefined }),
      sourceMessage({ originSeq: 2, subject: "tributary.events.more", data: new Uint8Array(0), publishedAt: null }),
      sourceMessage({ originSeq: 3, data: Buffer.from('{"a":"\\u0000"}') }),
    ];
    const wire = encodeMessages(batch);
    expect(wire.staged).toBe(false);
    expect(encodeBatch([]).staged).toBe(true);
    const decoded = decodeMessages(structuredClone(wire));
    expect(decoded).toHaveLength(3);
    for (let i = 0; i < batch.length; i++) {
      const { ack: _ack, ...msg } = batch[i]!;
      expect({ ...decoded[i]!, data: [...decoded[i]!.data] }).toEqual({ ...msg, data: [...msg.data] });
      expect("ack" in decoded[i]!).toBe(false);
    }
  });
});
