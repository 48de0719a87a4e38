import { describe, expect, it } from "vitest";
import { TestScheduler } from "rxjs/testing";
import { batchForCommit } from "../../src/operators/batch.js";

function scheduler(): TestScheduler {
  return new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
}

describe("batchForCommit (marble tests)", () => {
  it("emits as soon as a batch holds maxRecords items", () => {
    const ts = scheduler();
    ts.run(({ cold, expectObservable }) => {
      const source = cold("-a-b-c-d-e-f-|");
      const expected = "   -----x-----y-|";
      expectObservable(source.pipe(batchForCommit({ maxRecords: 3, maxWaitMs: 1000, scheduler: ts }))).toBe(expected, {
        x: ["a", "b", "c"],
        y: ["d", "e", "f"],
      });
    });
  });

  it("emits each item alone when maxRecords is 1", () => {
    const ts = scheduler();
    ts.run(({ cold, expectObservable }) => {
      expectObservable(cold("-a-b-|").pipe(batchForCommit({ maxRecords: 1, maxWaitMs: 10, scheduler: ts }))).toBe("-x-y-|", {
        x: ["a"],
        y: ["b"],
      });
    });
  });

  it("emits a partial batch maxWaitMs after its FIRST item, not its last", () => {
    const ts = scheduler();
    ts.run(({ cold, expectObservable }) => {
      // a at 0, b at 5: the batch closes at 10 (from a), not at 15 (from b).
      const source = cold("a 4ms b 20ms |");
      const expected = "   10ms x 15ms |";
      expectObservable(source.pipe(batchForCommit({ maxRecords: 100, maxWaitMs: 10, scheduler: ts }))).toBe(expected, { x: ["a", "b"] });
    });
  });

  it("starts the next batch's timer with that batch's first item", () => {
    const ts = scheduler();
    ts.run(({ cold, expectObservable }) => {
      // a at 0 → flushed at 10; b at 15, c at 19 → flushed at 25; complete at 40.
      const source = cold("a 14ms b 3ms c 20ms |");
      const expected = "   10ms x 14ms y 14ms |";
      expectObservable(source.pipe(batchForCommit({ maxRecords: 100, maxWaitMs: 10, scheduler: ts }))).toBe(expected, {
        x: ["a"],
        y: ["b", "c"],
      });
    });
  });

  it("cancels the wait timer when a batch fills up, so the next batch gets a full wait", () => {
    const ts = scheduler();
    ts.run(({ cold, expectObservable }) => {
      // a,b,c fill the batch at 2; d at 3 waits until 13 (not 10, when a's timer would have fired).
      const source = cold("abcd 30ms |");
      const expected = "   --x 10ms y 20ms |";
      expectObservable(source.pipe(batchForCommit({ maxRecords: 3, maxWaitMs: 10, scheduler: ts }))).toBe(expected, {
        x: ["a", "b", "c"],
        y: ["d"],
      });
    });
  });

  it("never emits empty batches on an idle stream", () => {
    const ts = scheduler();
    ts.run(({ cold, expectObservable }) => {
      expectObservable(cold("-- 100ms |").pipe(batchForCommit({ maxRecords: 3, maxWaitMs: 10, scheduler: ts }))).toBe("-- 100ms |");
    });
  });

  it("stays silent after a timed flush until the next item", () => {
    const ts = scheduler();
    ts.run(({ cold, expectObservable }) => {
      expectObservable(cold("a 50ms |").pipe(batchForCommit({ maxRecords: 3, maxWaitMs: 10, scheduler: ts }))).toBe("10ms x 40ms |", {
        x: ["a"],
      });
    });
  });

  it("does not emit an empty batch on completion after a full one", () => {
    const ts = scheduler();
    ts.run(({ cold, expectObservable }) => {
      expectObservable(cold("-a-b-(c|)").pipe(batchForCommit({ maxRecords: 3, maxWaitMs: 100, scheduler: ts }))).toBe("-----(x|)", {
        x: ["a", "b", "c"],
      });
    });
  });

  it("flushes the partial batch when the source completes", () => {
    const ts = scheduler();
    ts.run(({ cold, expectObservable }) => {
      expectObservable(cold("-a-b|").pipe(batchForCommit({ maxRecords: 10, maxWaitMs: 100, scheduler: ts }))).toBe("----(x|)", {
        x: ["a", "b"],
      });
    });
  });

  it("propagates errors without emitting the partial batch", () => {
    const ts = scheduler();
    ts.run(({ cold, expectObservable }) => {
      const boom = new Error("boom");
      expectObservable(cold("-a-b-#", undefined, boom).pipe(batchForCommit({ maxRecords: 10, maxWaitMs: 100, scheduler: ts }))).toBe(
        "-----#",
        undefined,
        boom,
      );
    });
  });

  it("propagates an error after earlier batches, dropping the pending partial batch", () => {
    const ts = scheduler();
    ts.run(({ cold, expectObservable }) => {
      // a, b flushed at 10; c at 22 is pending when the error arrives at 23.
      const source = cold("ab 20ms c#", undefined, "bad");
      expectObservable(source.pipe(batchForCommit({ maxRecords: 10, maxWaitMs: 10, scheduler: ts }))).toBe("10ms x 12ms #", { x: ["a", "b"] }, "bad");
    });
  });

  it("unsubscribes from the source and drops the timer when the subscriber leaves", () => {
    const ts = scheduler();
    ts.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold("a-------");
      expectObservable(source.pipe(batchForCommit({ maxRecords: 10, maxWaitMs: 5, scheduler: ts })), "^--!").toBe("");
      expectSubscriptions(source.subscriptions).toBe("^--!");
    });
  });

  it("passes items through by reference and in order", () => {
    const ts = scheduler();
    const a = { id: 1 };
    const b = { id: 2 };
    ts.run(({ cold, expectObservable }) => {
      expectObservable(cold("ab|", { a, b }).pipe(batchForCommit({ maxRecords: 5, maxWaitMs: 5, scheduler: ts }))).toBe("--(x|)", { x: [a, b] });
    });
  });

  it("uses the async scheduler by default (virtual time under run())", () => {
    const ts = scheduler();
    ts.run(({ cold, expectObservable }) => {
      expectObservable(cold("a 30ms |").pipe(batchForCommit({ maxRecords: 5, maxWaitMs: 7 }))).toBe("7ms x 23ms |", { x: ["a"] });
    });
  });
});

describe("batchForCommit with a gate (smart batching)", () => {
  /** A gate the test opens and closes at virtual times. */
  function manualGate(open: boolean) {
    const listeners = new Set<() => void>();
    return {
      open,
      onOpen(l: () => void) {
        listeners.add(l);
        return () => listeners.delete(l);
      },
      set(value: boolean) {
        this.open = value;
        if (value) for (const l of [...listeners]) l();
      },
    };
  }

  it("holds a partial batch past maxWaitMs while the gate is closed, letting it grow, and emits it when the gate opens", () => {
    const ts = scheduler();
    ts.run(({ cold, expectObservable }) => {
      const gate = manualGate(false);
      ts.schedule(() => gate.set(true), 20);
      // a at 0, b at 5, c at 15, d at 30, complete at 50. Due at 10 but the gate is closed, so c
      // joins; the gate opens at 20. d then waits its own 10 ms with the gate open.
      const source = cold("a 4ms b 9ms c 14ms d 19ms |");
      expectObservable(source.pipe(batchForCommit({ maxRecords: 100, maxWaitMs: 10, scheduler: ts, gate }))).toBe("20ms x 19ms y 9ms |", {
        x: ["a", "b", "c"],
        y: ["d"],
      });
    });
  });

  it("emits at maxWaitMs as without a gate when the gate is open", () => {
    const ts = scheduler();
    ts.run(({ cold, expectObservable }) => {
      const gate = manualGate(true);
      const source = cold("a 4ms b 20ms |");
      expectObservable(source.pipe(batchForCommit({ maxRecords: 100, maxWaitMs: 10, scheduler: ts, gate }))).toBe("10ms x 15ms |", { x: ["a", "b"] });
    });
  });

  it("never holds a full batch, even with the gate closed", () => {
    const ts = scheduler();
    ts.run(({ cold, expectObservable }) => {
      const gate = manualGate(false);
      expectObservable(cold("-a-b-c-d-|").pipe(batchForCommit({ maxRecords: 2, maxWaitMs: 1000, scheduler: ts, gate }))).toBe("---x---y-|", {
        x: ["a", "b"],
        y: ["c", "d"],
      });
    });
  });

  it("emits what it holds on completion even with the gate closed", () => {
    const ts = scheduler();
    ts.run(({ cold, expectObservable }) => {
      const gate = manualGate(false);
      expectObservable(cold("a 20ms |").pipe(batchForCommit({ maxRecords: 100, maxWaitMs: 5, scheduler: ts, gate }))).toBe("21ms (x|)", { x: ["a"] });
    });
  });
});
