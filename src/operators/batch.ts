import { Observable, asyncScheduler, type OperatorFunction, type SchedulerLike, type Subscription } from "rxjs";

export interface BatchOptions {
  /** A batch is emitted as soon as it holds this many items. */
  readonly maxRecords: number;
  /** A partly filled batch is emitted this many ms after its first item arrived. */
  readonly maxWaitMs: number;
  /** Scheduler for the wait timer; tests pass a TestScheduler. */
  readonly scheduler?: SchedulerLike;
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
      const flush = () => {
        timer?.unsubscribe();
        timer = null;
        if (batch.length === 0) return;
        const out = batch;
        batch = [];
        subscriber.next(out);
      };
      const subscription = source.subscribe({
        next(item) {
          batch.push(item);
          if (batch.length >= options.maxRecords) flush();
          else if (timer === null) timer = scheduler.schedule(flush, options.maxWaitMs);
        },
        error(err) {
          timer?.unsubscribe();
          subscriber.error(err);
        },
        complete() {
          flush();
          subscriber.complete();
        },
      });
      return () => {
        timer?.unsubscribe();
        subscription.unsubscribe();
      };
    });
}
