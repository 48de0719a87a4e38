import { Observable, asyncScheduler, type OperatorFunction, type SchedulerLike, type Subscription } from "rxjs";

export interface BatchOptions {
  /** A batch is emitted as soon as it holds this many items. */
  readonly maxRecords: number;
  /** A partly filled batch is emitted this many ms after its first item arrived. */
  readonly maxWaitMs: number;
  /** Scheduler for the wait timer; tests pass a TestScheduler. */
  readonly scheduler?: SchedulerLike;
  /**
   * Whether whoever takes the batches can take another one now. A partly filled batch whose wait
   * is over is held while the gate is closed, and keeps growing, until it opens or fills up. So
   * under load batches grow to what the committer can keep up with (smart batching), and under
   * light load they still leave after `maxWaitMs`. Full batches are never held.
   */
  readonly gate?: BatchGate;
}

/** See {@link BatchOptions.gate}. */
export interface BatchGate {
  readonly open: boolean;
  /** Registers a callback for each time the gate may have opened; returns a function that removes it. */
  onOpen(listener: () => void): () => void;
}

/**
 * Groups items into commit batches: a batch closes when it is full or when its first item has
 * waited `maxWaitMs`, whichever comes first, and the last partial batch is emitted on completion.
 * Unlike `bufferTime`, it never emits empty batches and its timer starts with the batch's first
 * item, so an idle stream costs nothing.
 *
 * @example
 * source$.pipe(batchForCommit({ maxRecords: 1000, maxWaitMs: 50 })) // Observable<T[]>
 */
export function batchForCommit<T>(options: BatchOptions): OperatorFunction<T, T[]> {
  const scheduler = options.scheduler ?? asyncScheduler;
  return (source) =>
    new Observable<T[]>((subscriber) => {
      let batch: T[] = [];
      let timer: Subscription | null = null;
      /** The current batch has waited maxWaitMs and leaves as soon as the gate opens. */
      let due = false;
      const gate = options.gate;
      const flush = () => {
        timer?.unsubscribe();
        timer = null;
        due = false;
        if (batch.length === 0) return;
        const out = batch;
        batch = [];
        subscriber.next(out);
      };
      const onTimer = () => {
        timer = null;
        if (!gate || gate.open) flush();
        else due = true;
      };
      const removeGateListener = gate?.onOpen(() => {
        if (due && gate.open) flush();
      });
      const subscription = source.subscribe({
        next(item) {
          batch.push(item);
          if (batch.length >= options.maxRecords) flush();
          else if (timer === null && !due) timer = scheduler.schedule(onTimer, options.maxWaitMs);
        },
        error(err) {
          timer?.unsubscribe();
          removeGateListener?.();
          subscriber.error(err);
        },
        complete() {
          flush();
          removeGateListener?.();
          subscriber.complete();
        },
      });
      return () => {
        timer?.unsubscribe();
        removeGateListener?.();
        subscription.unsubscribe();
      };
    });
}
