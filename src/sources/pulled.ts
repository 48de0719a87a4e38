/**
 * Pulled sources: a file or the generator produces chunks of messages only as fast as the
 * commits take them. Each chunk waits for {@link CommitCredit} before it is emitted, so the
 * messages between the source and bronze stay under the credit's limit for any input size.
 */
import { Observable } from "rxjs";
import type { SourceMessage } from "../types.js";
import type { CommitCredit } from "../runtime/commit-credit.js";

export interface PullOptions {
  /** Credit to take before emitting each chunk; without it the source emits as fast as it reads. */
  readonly credit?: CommitCredit;
  /** Messages per chunk (default 1,000). */
  readonly chunkSize?: number;
}

const DEFAULT_CHUNK = 1_000;

/** Groups a message iterator into arrays of `size` (the last one may be shorter). */
export async function* chunked<T>(items: AsyncIterable<T> | Iterable<T>, size = DEFAULT_CHUNK): AsyncGenerator<T[]> {
  let chunk: T[] = [];
  // A synchronous iterator (the generator) is read without a microtask per item.
  if (Symbol.iterator in items) {
    for (const item of items) {
      chunk.push(item);
      if (chunk.length >= size) {
        yield chunk;
        chunk = [];
      }
    }
  } else {
    for await (const item of items) {
      chunk.push(item);
      if (chunk.length >= size) {
        yield chunk;
        chunk = [];
      }
    }
  }
  if (chunk.length > 0) yield chunk;
}

/**
 * An Observable that reads `messages` chunk by chunk, waiting for credit before emitting each
 * chunk. Unsubscribing stops the reading (the iterator is closed) at the next chunk.
 *
 * @example
 * const credit = new CommitCredit(10_000);
 * pulled(fileMessages(["transactions.csv"]), { credit }).subscribe(...) // release credit as bronze commits
 */
export function pulled(messages: AsyncIterable<SourceMessage> | Iterable<SourceMessage>, options: PullOptions = {}): Observable<SourceMessage> {
  const { credit, chunkSize = DEFAULT_CHUNK } = options;
  return new Observable<SourceMessage>((subscriber) => {
    (async () => {
      for await (const chunk of chunked(messages, chunkSize)) {
        if (credit) await credit.take(chunk.length);
        if (subscriber.closed) return;
        for (const m of chunk) subscriber.next(m);
      }
      subscriber.complete();
    })().catch((err) => subscriber.error(err));
  });
}
