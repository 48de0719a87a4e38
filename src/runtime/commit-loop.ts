/**
 * The batch and commit loop: admits each message past what bronze already holds for its origin,
 * runs the per-record stages, batches behind the {@link CommitGate}, and hands the batches to the
 * committer. It follows each batch's commits: after bronze it acknowledges the messages and gives
 * the commit credit back; after silver and gold it reports to the run's stats and tells serving
 * which customers changed. Positions are kept per origin, so a restart neither skips nor re-counts.
 */
import { filter, map, mergeMap, type Observable, type OperatorFunction } from "rxjs";
import type { SourceMessage, Staged } from "../types.js";
import { batchForCommit } from "../operators/batch.js";
import type { BronzeStore } from "../sinks/bronze.js";
import { CheckpointError } from "../errors.js";
import type { Committer } from "./committer.js";
import { CommitCredit } from "./commit-credit.js";
import { CommitGate } from "./commit-gate.js";
import type { RunStats } from "./stats.js";

/**
 * Batches handed to the committer and not yet through gold, at most. Enough to keep the commit
 * thread busy while the next batch forms. The broker's max_ack_pending bounds what a JetStream
 * source delivers past that; a pulled source (files, generator) waits for {@link CommitCredit}
 * of one more batch than this.
 */
export const MAX_BATCHES_IN_FLIGHT = 4;

export interface CommitLoopOptions {
  /** Bronze, read for the last position of each origin. */
  readonly bronze: BronzeStore;
  readonly run: RunStats;
  readonly batch: { readonly maxRecords: number; readonly maxWait: number };
  /** One ack for the batch's last message covers the batch (JetStream's cumulative ack), instead of one per message. */
  readonly cumulativeAck: boolean;
  /** Told of each gold commit with the customers of its batch (null for records without one). */
  readonly goldCommitted: (customers: readonly (string | null)[]) => void;
}

/** Admission, batching, commits and acks for one run. */
export class CommitLoop {
  /** Highest origin sequence committed to bronze, per origin. */
  private readonly committed = new Map<string, number>();
  /** Backpressure for pulled sources (files, generator): records not yet in bronze, bounded. */
  private credit: CommitCredit | null = null;

  constructor(private readonly options: CommitLoopOptions) {}

  /** The last position bronze holds for an origin, counting commits this run has made (0 when none). */
  position(origin: string): number {
    return Math.max(this.committed.get(origin) ?? 0, this.options.bronze.lastOriginSeq(origin));
  }

  /**
   * Credit for a pulled source: one batch more than the committer holds, so a batch is always
   * forming while the others commit, and never more.
   */
  pull(): { credit: CommitCredit; chunkSize: number } {
    const maxRecords = this.options.batch.maxRecords;
    this.credit = new CommitCredit((MAX_BATCHES_IN_FLIGHT + 1) * maxRecords);
    return { credit: this.credit, chunkSize: Math.min(maxRecords, 1_000) };
  }

  /**
   * The loop itself: source messages in, through admission, the composed stages and batching, to
   * the committer; completes when the source does and every batch has been through gold. A
   * committer that runs the stages itself ({@link Committer.runsStages}) gets the messages as
   * they are, and `stages` only counts them in.
   */
  consume(source$: Observable<SourceMessage>, stages: (m: SourceMessage) => Staged | SourceMessage, committer: Committer): Observable<void> {
    const gate = new CommitGate();
    const { maxRecords, maxWait } = this.options.batch;
    const msgOf = committer.runsStages ? (item: Staged | SourceMessage) => item as SourceMessage : (item: Staged | SourceMessage) => (item as Staged).msg;
    return source$.pipe(
      this.admit(),
      map(stages),
      batchForCommit<Staged | SourceMessage>({ maxRecords, maxWaitMs: maxWait, gate }),
      mergeMap((batch) => this.commit(committer, batch, msgOf, gate), MAX_BATCHES_IN_FLIGHT),
    );
  }

  /**
   * Admits only messages past what this run has already admitted for their origin (delivery is in
   * stream order, so anything at or below is a redelivery). A redelivery of a message bronze has
   * committed is acknowledged; one still in the batch in flight is dropped, and the batch's own
   * ack covers it once it commits.
   */
  private admit(): OperatorFunction<SourceMessage, SourceMessage> {
    const admitted = new Map<string, number>();
    const { bronze, run } = this.options;
    return filter((m) => {
      let last = admitted.get(m.origin);
      if (last === undefined) {
        last = bronze.lastOriginSeq(m.origin);
        this.committed.set(m.origin, last);
      }
      if (m.originSeq <= last) {
        if (m.originSeq <= (this.committed.get(m.origin) ?? 0)) m.ack?.();
        this.credit?.release(1);
        run.redelivered();
        admitted.set(m.origin, last);
        return false;
      }
      admitted.set(m.origin, m.originSeq);
      return true;
    });
  }

  /**
   * Hands a batch to the committer and follows its commits: after bronze, the batch is
   * acknowledged (one cumulative ack for JetStream); after silver and gold, stats, metrics and the
   * features cache are brought up to date.
   */
  private commit(committer: Committer, batch: (Staged | SourceMessage)[], msgOf: (item: Staged | SourceMessage) => SourceMessage, gate: CommitGate): Promise<void> {
    const { run, cumulativeAck } = this.options;
    // Take what the reports need now, so the batch itself can be collected while it commits:
    // records that outlive a young-generation GC get promoted, and old-generation GC is costly.
    const n = batch.length;
    const published = new Array<number | null>(n);
    const lastByOrigin = new Map<string, number>();
    const acks: (() => void)[] = [];
    for (let i = 0; i < n; i++) {
      const m = msgOf(batch[i]!);
      published[i] = m.publishedAt;
      // Positions only grow within an origin, so the last message of each origin is enough.
      lastByOrigin.set(m.origin, m.originSeq);
      if (!cumulativeAck && m.ack) acks.push(m.ack);
    }
    const lastAck = msgOf(batch[n - 1]!).ack;
    if (cumulativeAck && lastAck) acks.push(lastAck);
    let publishedAt: number[] = [];
    let perEntity: ReadonlyMap<string, number> = new Map();
    gate.submitted();
    return committer.submit(batch, {
      bronze: (seqs, ms, entities) => {
        for (const [origin, seq] of lastByOrigin) if ((this.committed.get(origin) ?? 0) < seq) this.committed.set(origin, seq);
        for (const ack of acks) ack();
        this.credit?.release(n);
        let committed = 0;
        let last = 0;
        for (let i = 0; i < n; i++) {
          const seq = seqs[i];
          if (seq === null || seq === undefined) {
            run.redelivered(true);
            continue;
          }
          committed++;
          last = seq;
          const p = published[i];
          if (p !== null && p !== undefined) publishedAt.push(p);
        }
        perEntity = new Map(entities);
        run.bronzeCommitted(perEntity, committed, n, last, ms);
        gate.bronzeCommitted();
      },
      silver: (summary, ms) => {
        perEntity = run.silverCommitted(summary, ms);
      },
      gold: (position, ms, customers) => {
        this.options.goldCommitted(customers);
        run.goldCommitted(position, perEntity, publishedAt, ms);
        publishedAt = [];
      },
    });
  }
}

/**
 * What the loop's error means to a user: a failed SQLite commit becomes a {@link CheckpointError}
 * that says nothing after the last commit was acknowledged; anything else passes as it is.
 */
export function commitFailure(err: unknown): Error {
  return err instanceof Error && err.name === "SqliteError"
    ? new CheckpointError(`SQLite commit failed (${err.message}); nothing after the last commit was acknowledged`, { cause: err })
    : (err as Error);
}
