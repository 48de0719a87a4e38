/**
 * The commit gate between batching and the committer: open while no batch is waiting for its
 * bronze commit. Partial batches wait behind it, so under load they grow to what the commit
 * thread keeps up with (fewer, larger commits), while under light load they leave after
 * `batch.maxWait`.
 */
import type { BatchGate } from "../operators/batch.js";

export class CommitGate implements BatchGate {
  private waiting = 0;
  private readonly listeners = new Set<() => void>();
  get open(): boolean {
    return this.waiting === 0;
  }
  submitted(): void {
    this.waiting++;
  }
  bronzeCommitted(): void {
    this.waiting--;
    // Not synchronously: an inline committer is still inside this batch's commit (silver and
    // gold follow), and the next batch must not start before it ends.
    queueMicrotask(() => {
      for (const l of [...this.listeners]) l();
    });
  }
  onOpen(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
