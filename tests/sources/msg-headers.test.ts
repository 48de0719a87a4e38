/**
 * The source's own reader of the two headers it keeps, against nats.js's `headers.get` and `data`:
 * on messages a real nats-server delivered (with and without headers, odd values, other headers
 * around them), and on crafted header blocks decoded by nats.js's own `MsgHdrsImpl.decode`.
 */
import { describe, expect, it } from "vitest";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { MsgHdrsImpl } from "@nats-io/nats-core/internal";
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { natsFixture } from "../helpers/nats.js";
import { rawMessage, readMsgHeaders } from "../../src/sources/msg-headers.js";

const enc = new TextEncoder();

/** What nats.js makes of a header block, as the source used to read it; null where nats.js throws (a key with a space, a bare LF). */
function natsRead(block: string): { contentType: string | null; msgId: string | null } | null {
  try {
    const h = MsgHdrsImpl.decode(enc.encode(block));
    return { contentType: h.get("Content-Type") || null, msgId: h.get("Nats-Msg-Id") || null };
  } catch {
    return null;
  }
}

/** The reader agrees with nats.js wherever nats.js reads the block, and never throws. */
function agrees(block: string): void {
  const theirs = natsRead(block);
  const ours = mine(block);
  if (theirs) expect(ours, JSON.stringify(block)).toEqual(theirs);
}

/** The reader, as the source uses it: an empty value counts as none, as it did with nats.js's `get`. */
function mine(block: string): { contentType: string | null; msgId: string | null } {
  const bytes = enc.encode(block);
  const h = readMsgHeaders(bytes, bytes.length);
  return { contentType: h.contentType || null, msgId: h.msgId || null };
}

describe("readMsgHeaders", () => {
  const nats = natsFixture();

  it("reads what headers.get and data read from deliveries of a real server", async () => {
    const jsm = await jetstreamManager(nats.nc);
    await jsm.streams.add({ name: "HDRS", subjects: ["hdrs.>"] });
    const js = jetstream(nats.nc);
    const ids = ["tx-1", "  padded\t", "caf\u00e9-\ud83d\ude00", "x".repeat(300), "a:b:c"];
    const sent: { msgId: string | null; contentType: string | null; data: number[] }[] = [];
    for (let i = 0; i < 60; i++) {
      const data = enc.encode(`payload ${i}`);
      if (i % 6 === 5) {
        await js.publish("hdrs.plain", data);
        sent.push({ msgId: null, contentType: null, data: [...data] });
        continue;
      }
      const h = natsHeaders();
      if (i % 3 === 0) h.set("Content-Type", i % 2 ? "application/json" : "application/msgpack");
      h.set("X-Other", `other ${i}`);
      const msgId = `${ids[i % ids.length]}-${i}`;
      await js.publish(`hdrs.${i % 2}`, data, { headers: h, msgID: msgId });
      sent.push({ msgId, contentType: i % 3 === 0 ? (i % 2 ? "application/json" : "application/msgpack") : null, data: [...data] });
    }
    await jsm.consumers.add("HDRS", { durable_name: "c", ack_policy: AckPolicy.None });
    const consumer = await js.consumers.get("HDRS", "c");
    const batch = await consumer.fetch({ max_messages: 60, expires: 5_000 });
    let i = 0;
    for await (const m of batch) {
      const raw = rawMessage(m);
      // The client keeps the raw bytes where the source looks for them; else it falls back, and this version would be slower.
      expect(raw, "nats.js's internals moved").not.toBeNull();
      const read = readMsgHeaders(raw!.bytes, raw!.headerEnd);
      const h = { contentType: read.contentType || null, msgId: read.msgId || null };
      const theirs = { contentType: m.headers?.get("Content-Type") || null, msgId: m.headers?.get("Nats-Msg-Id") || null };
      expect(h).toEqual(theirs);
      const data = raw!.headerEnd > -1 ? raw!.bytes.subarray(raw!.headerEnd) : raw!.bytes;
      expect([...data]).toEqual([...m.data]);
      // And both say what was published (nats.js trims values, so does the reader).
      expect({ ...h, data: [...data] }).toEqual({ ...sent[i]!, msgId: sent[i]!.msgId?.trim() ?? null });
      i++;
    }
    expect(i).toBe(60);
  });

  it("agrees with nats.js's decode on crafted blocks: exact keys, first value, trimmed, odd lines", () => {
    const blocks = [
      "NATS/1.0\r\n\r\n",
      "NATS/1.0\r\nNats-Msg-Id: a\r\n\r\n",
      "NATS/1.0\r\nNats-Msg-Id:a\r\nContent-Type:application/json\r\n\r\n",
      "NATS/1.0\r\nNats-Msg-Id: first\r\nNats-Msg-Id: second\r\n\r\n",
      "NATS/1.0\r\nnats-msg-id: lower\r\nCONTENT-TYPE: upper\r\n\r\n",
      "NATS/1.0\r\nNats-Msg-Id : spaced key\r\n\r\n",
      "NATS/1.0\r\nNats-Msg-Id:   \t both sides \t \r\n\r\n",
      "NATS/1.0\r\nNats-Msg-Id: a:b: c\r\n\r\n",
      "NATS/1.0\r\nno colon here\r\n\r\nNats-Msg-Id: after an empty line\r\n\r\n",
      "NATS/1.0\r\nNats-Msg-Id: caf\u00e9 \ud83d\ude00\r\nContent-Type: text/\u00fc\r\n\r\n",
      "NATS/1.0\r\nNats-Msg-Id: with\nbare LF\r\n\r\n",
      "NATS/1.0\r\nNats-Msg-Id: no final CRLF",
      "NATS/1.0 503 No Responders\r\n\r\n",
      "NATS/1.0",
      "NATS/1.0\r\nNats-Msg-Id:\r\nContent-Type: \r\n\r\n",
      "NATS/1.0\r\nX: 1\r\nContent-Type: later\r\nNats-Msg-Id: last\r\n\r\n",
    ];
    for (const b of blocks) agrees(b);
    // Where nats.js throws, the reader still answers, with the same exact-key rule.
    expect(mine("NATS/1.0\r\nNats-Msg-Id : spaced key\r\nContent-Type: a\r\n\r\n")).toEqual({ contentType: "a", msgId: null });
    expect(mine("NATS/1.0\r\nNats-Msg-Id: with\nbare LF\r\n\r\n")).toEqual({ contentType: null, msgId: "with\nbare LF" });
  });

  it("agrees with nats.js's decode on random blocks", () => {
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const keys = ["Nats-Msg-Id", "Content-Type", "nats-msg-id", "X-A", "Nats-Msg-Id ", "Content-Type", "Nats-Expected-Stream"];
    const chars = ["a", "Z", "0", " ", "\t", ":", "-", "\u00e9", "\ud83d\ude00", "\n", "\u00a0", "\u2028"];
    let read = 0;
    for (let n = 0; n < 2_000; n++) {
      let b = "NATS/1.0";
      const lines = rnd(6);
      for (let l = 0; l < lines; l++) {
        let v = "";
        for (let c = rnd(12); c > 0; c--) v += chars[rnd(chars.length)];
        b += rnd(10) === 0 ? "\r\n" : `\r\n${keys[rnd(keys.length)]}:${v}`;
      }
      b += rnd(4) === 0 ? "" : "\r\n\r\n";
      agrees(b);
      if (natsRead(b)) read++;
    }
    // Most blocks are ones nats.js reads too, so the comparison means something.
    expect(read).toBeGreaterThan(1_000);
  });
});
