/** Backpressure: a pulled source never runs more than its credit ahead of the commits. */
import { describe, expect, it } from "vitest";
import { lastValueFrom, toArray } from "rxjs";
import { CommitCredit } from "../../src/runtime/commit-credit.js";
import { pulled } from "../../src/sources/pulled.js";
import { generatorSource } from "../../src/sources/generator.js";
import type { SourceMessage } from "../../src/types.js";
import { sourceMessage as message } from "../helpers/fixtures.js";

describe("CommitCredit", () => {
  it("grants credit while it fits under the limit and holds the rest until released, in order", async () => {
    const credit = new CommitCredit(10);
    const granted: string[] = [];
    await credit.take(6);
    void credit.take(4).then(() => granted.push("a"));
    void credit.take(3).then(() => granted.push("b"));
    void credit.take(1).then(() => granted.push("c")); // fits, but waits behind b
    await Promise.resolve();
    expect(granted).toEqual(["a"]);
    expect(credit.inFlight).toBe(10);
    credit.release(2);
    await Promise.resolve();
    expect(granted).toEqual(["a"]);
    credit.release(1);
    await Promise.resolve();
    expect(granted).toEqual(["a", "b"]);
    expect(credit.inFlight).toBe(10);
    credit.release(1);
    await Promise.resolve();
    expect(granted).toEqual(["a", "b", "c"]);
    expect(credit.inFlight).toBe(10);
  });

  it("lets a chunk larger than the limit through when nothing is outstanding", async () => {
    const credit = new CommitCredit(5);
    await credit.take(8);
    expect(credit.inFlight).toBe(8);
  });
});

describe("pulled", () => {
  it("emits chunk by chunk as credit is released, never more than the limit outstanding", async () => {
    const credit = new CommitCredit(300);
    let produced = 0;
    function* messages(): Generator<SourceMessage> {
      for (let i = 1; i <= 5_000; i++) {
        produced++;
        yield message({ originSeq: i });
      }
    }
    const seen: number[] = [];
    let highest = 0;
    await new Promise<void>((resolve, reject) => {
      pulled(messages(), { credit, chunkSize: 100 }).subscribe({
        next: (m) => {
          seen.push(m.originSeq);
          highest = Math.max(highest, credit.inFlight);
          // The source reads at most one chunk past what it was granted.
          expect(produced - seen.length).toBeLessThanOrEqual(credit.inFlight + 100);
          // A slow committer: the credit comes back a tick later, a chunk at a time.
          if (m.originSeq % 100 === 0) setTimeout(() => credit.release(100), 1);
        },
        error: reject,
        complete: resolve,
      });
    });
    expect(seen).toEqual(Array.from({ length: 5_000 }, (_, i) => i + 1));
    expect(highest).toBe(300);
  });

  it("stops reading when unsubscribed", async () => {
    const credit = new CommitCredit(100);
    let produced = 0;
    let closed = false;
    function* messages(): Generator<SourceMessage> {
      try {
        for (let i = 1; i <= 100_000; i++) {
          produced++;
          yield message({ originSeq: i });
        }
      } finally {
        closed = true;
      }
    }
    const sub = pulled(messages(), { credit, chunkSize: 50 }).subscribe();
    await new Promise((r) => setTimeout(r, 20));
    expect(credit.inFlight).toBe(100); // two chunks granted, the third waits
    sub.unsubscribe();
    credit.release(100);
    await new Promise((r) => setTimeout(r, 20));
    expect(closed).toBe(true);
    expect(produced).toBeLessThanOrEqual(150);
  });

  it("without credit, a generator source still emits everything in order", async () => {
    const out = await lastValueFrom(generatorSource({ messages: 2_500 }, 0, { chunkSize: 1_000 }).pipe(toArray()));
    expect(out.map((m) => m.originSeq)).toEqual(Array.from({ length: 2_500 }, (_, i) => i + 1));
  });
});
