/**
 * The source's own reader of JetStream reply subjects against nats.js's `JsMsg.info`, on messages
 * a real nats-server delivered (redeliveries included), and on the 12-token form a server with a
 * domain sends.
 */
import { describe, expect, it } from "vitest";
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { natsFixture } from "../helpers/nats.js";
import { parseAckSubject } from "../../src/sources/ack-subject.js";

describe("parseAckSubject", () => {
  const nats = natsFixture();

  it("reads what JsMsg.info reads from deliveries of a real server, first and redelivered", async () => {
    const jsm = await jetstreamManager(nats.nc);
    await jsm.streams.add({ name: "ACKS", subjects: ["acks.>"] });
    const js = jetstream(nats.nc);
    for (let i = 0; i < 300; i++) await js.publish(`acks.${i % 3}`, new Uint8Array([i & 0xff]));
    await jsm.consumers.add("ACKS", { durable_name: "c", ack_policy: AckPolicy.Explicit, ack_wait: 1_000_000_000 });
    const consumer = await js.consumers.get("ACKS", "c");
    let checked = 0;
    let redelivered = 0;
    for (let round = 0; round < 2; round++) {
      const batch = await consumer.fetch({ max_messages: 300, expires: 5_000 });
      for await (const m of batch) {
        const mine = parseAckSubject(m.reply);
        expect(mine, m.reply).not.toBeNull();
        const { deliverySequence, streamSequence, timestampNanos } = m.info;
        expect({ ...mine! }).toEqual({ deliverySequence, streamSequence, timestampNanos });
        checked++;
        if (m.info.redelivered) redelivered++;
        // Ack only the first half in round one, so the rest come back redelivered.
        if (round === 1 || streamSequence <= 150) m.ack();
      }
      if (round === 0) await new Promise((r) => setTimeout(r, 1_500));
    }
    expect(checked).toBe(450);
    expect(redelivered).toBe(150);
  });

  it("reads the 12-token form with a domain and account hash, and refuses anything else", () => {
    const nanos = "1764590000123456789";
    const info = parseAckSubject(`$JS.ACK.hub.ACCHASH.ORDERS.worker.2.98765.4321.${nanos}.17.xYz123`);
    expect({ ...info! }).toEqual({ deliverySequence: 4321, streamSequence: 98765, timestampNanos: parseInt(nanos, 10) });
    for (const s of [
      undefined,
      "",
      "_INBOX.abc.def",
      "$JS.ACK.S.C.1.2.3",
      "$JS.ACK.S.C.1.x.3.4.5",
      "$JS.ACK.S.C.1.2..4.5",
      "$JS.ACK.S.C.1.2.3.4n.5",
      "$JS.ACK.a.b.S.C.1.2.3.4.5.6.7",
    ]) {
      expect(parseAckSubject(s), String(s)).toBeNull();
    }
  });
});
