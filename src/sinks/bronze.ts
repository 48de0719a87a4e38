/**
 * Bronze: every message exactly as received, invalid ones and duplicates included. Append-only.
 * A message's bronze sequence (`seq`) is the position silver and gold advance by; the pair
 * (origin, origin_seq) recognises redeliveries.
 */
import type { Statement } from "better-sqlite3";
import type { SourceMessage, Staged } from "../types.js";
import { openLayer, type Database, type StorageOptions } from "./database.js";

export const BRONZE_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE origins (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
  );
  CREATE TABLE messages (
    seq INTEGER PRIMARY KEY,
    origin_id INTEGER NOT NULL REFERENCES origins(id),
    origin_seq INTEGER NOT NULL,
    subject TEXT NOT NULL,
    content_type TEXT,
    msg_id TEXT,
    payload BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    published_at INTEGER
  );
  CREATE UNIQUE INDEX messages_by_origin ON messages(origin_id, origin_seq);
  CREATE TRIGGER messages_no_update BEFORE UPDATE ON messages BEGIN SELECT RAISE(ABORT, 'bronze is append-only'); END;
  CREATE TRIGGER messages_no_delete BEFORE DELETE ON messages BEGIN SELECT RAISE(ABORT, 'bronze is append-only'); END;
  `,
  // Which stream each JetStream origin was read from, so a deleted and recreated, restored or
  // foreign stream is recognised instead of being read from bronze's position.
  `
  CREATE TABLE streams (
    origin_id INTEGER PRIMARY KEY REFERENCES origins(id),
    stream TEXT NOT NULL,
    created TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL
  );
  `,
  // 3: retention. Bronze stays append-only, but messages silver and gold have both applied may be
  // deleted once they are old enough: the floor (the highest sequence both have applied, as the
  // pruner last read it) only moves forward, and the trigger refuses any delete above it.
  `
  DROP TRIGGER messages_no_delete;
  CREATE TABLE retention (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    floor INTEGER NOT NULL,
    pruned INTEGER NOT NULL
  );
  INSERT INTO retention (id, floor, pruned) VALUES (1, 0, 0);
  CREATE TRIGGER messages_no_delete BEFORE DELETE ON messages WHEN OLD.seq > (SELECT floor FROM retention)
    BEGIN SELECT RAISE(ABORT, 'bronze deletes only messages silver and gold have applied'); END;
  CREATE TRIGGER retention_floor_forward BEFORE UPDATE OF floor ON retention WHEN NEW.floor < OLD.floor
    BEGIN SELECT RAISE(ABORT, 'the retention floor only moves forward'); END;
  `,
];

/** What one pruning step may delete. */
export interface PruneBounds {
  /** The highest bronze sequence silver and gold have both applied. */
  readonly applied: number;
  /** Only messages received before this instant (epoch ms). */
  readonly receivedBefore: number;
  /** At most this many messages. */
  readonly limit: number;
}

/**
 * Deletes, in one short transaction, the oldest messages that both layers have applied and that
 * arrived before the bound, keeping the last message of every origin (it holds the origin's
 * position and anchors the stream check). Returns how many it deleted; 0 when nothing is due.
 * Messages arrive in sequence order, so the scan stops at the first one that is too new.
 */
export function pruneBronze(db: Database, bounds: PruneBounds): number {
  const step = db.transaction((): number => {
    // The last message of each origin, and the newest of all (so a sequence is never reused).
    const keep = new Set(
      db
        .prepare(
          `SELECT (SELECT seq FROM messages m WHERE m.origin_id = o.id ORDER BY origin_seq DESC LIMIT 1) FROM origins o
           UNION SELECT max(seq) FROM messages`,
        )
        .pluck()
        .all() as (number | null)[],
    );
    const oldest = db.prepare("SELECT seq, received_at FROM messages ORDER BY seq LIMIT ?").raw().all(bounds.limit + keep.size) as [number, number][];
    let hi = 0;
    let n = 0;
    for (const [seq, receivedAt] of oldest) {
      if (keep.has(seq)) continue;
      if (seq > bounds.applied || receivedAt >= bounds.receivedBefore || n === bounds.limit) break;
      hi = seq;
      n++;
    }
    if (n === 0) return 0;
    db.prepare("UPDATE retention SET floor = max(floor, ?)").run(bounds.applied);
    const kept = [...keep].filter((s): s is number => s !== null && s <= hi);
    const deleted = db.prepare(`DELETE FROM messages WHERE seq <= ?${kept.length ? ` AND seq NOT IN (${kept.join(",")})` : ""}`).run(hi).changes;
    db.prepare("UPDATE retention SET pruned = pruned + ?").run(deleted);
    return deleted;
  });
  return step.immediate();
}

/** Messages retention has deleted from bronze so far (0 for a bronze from before retention). */
export function prunedCount(db: Database): number {
  const has = (db.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'retention'").pluck().get() as number) > 0;
  return has ? (db.prepare("SELECT pruned FROM retention").pluck().get() as number) : 0;
}

/** The stream a JetStream origin was read from: its creation time and its first sequence then. */
export interface RecordedStream {
  readonly origin: string;
  readonly created: string;
  readonly firstSeq: number;
}

interface BronzeRow {
  seq: number;
  origin: string;
  origin_seq: number;
  subject: string;
  content_type: string | null;
  msg_id: string | null;
  payload: Buffer;
  received_at: number;
  published_at: number | null;
}

/** The bronze layer's file and statements. */
export class BronzeStore {
  readonly db: Database;
  private readonly originIds = new Map<string, number>();
  private readonly insert: Statement;
  private readonly insertOrigin: Statement;
  private readonly selectOrigin: Statement;
  private readonly appendTx: (batch: readonly { readonly msg: SourceMessage }[]) => (number | null)[];

  constructor(dataDir: string, storage: StorageOptions) {
    this.db = openLayer(dataDir, "bronze", BRONZE_MIGRATIONS, storage);
    this.insert = this.db.prepare(
      `INSERT INTO messages (origin_id, origin_seq, subject, content_type, msg_id, payload, received_at, published_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (origin_id, origin_seq) DO NOTHING`,
    );
    this.insertOrigin = this.db.prepare("INSERT INTO origins (name) VALUES (?) ON CONFLICT (name) DO NOTHING");
    this.selectOrigin = this.db.prepare("SELECT id FROM origins WHERE name = ?").pluck();
    const tx = this.db.transaction((batch: readonly { readonly msg: SourceMessage }[]) => {
      const seqs: (number | null)[] = new Array(batch.length);
      for (let i = 0; i < batch.length; i++) {
        const m = batch[i]!.msg;
        const r = this.insert.run(
          this.originId(m.origin),
          m.originSeq,
          m.subject,
          m.contentType,
          m.msgId,
          m.data,
          m.receivedAt,
          m.publishedAt,
        );
        seqs[i] = r.changes === 1 ? Number(r.lastInsertRowid) : null;
      }
      return seqs;
    });
    this.appendTx = (batch) => tx.immediate(batch);
  }

  private originId(name: string): number {
    let id = this.originIds.get(name);
    if (id === undefined) {
      this.insertOrigin.run(name);
      id = this.selectOrigin.get(name) as number;
      this.originIds.set(name, id);
    }
    return id;
  }

  /**
   * Appends a batch in one transaction. Returns each message's new bronze sequence, or null for a
   * message bronze already holds (a redelivery).
   */
  append(batch: readonly Pick<Staged, "msg">[]): (number | null)[] {
    return this.appendTx(batch);
  }

  /** The highest sequence retention may have deleted up to (0 when it never ran). */
  retentionFloor(): number {
    return (this.db.prepare("SELECT floor FROM retention").pluck().get() as number | undefined) ?? 0;
  }

  /** Highest bronze sequence committed (0 when empty). */
  position(): number {
    return (this.db.prepare("SELECT coalesce(max(seq), 0) FROM messages").pluck().get() as number) ?? 0;
  }

  /** Highest origin sequence committed for an origin (0 when none): where that source resumes. */
  lastOriginSeq(origin: string): number {
    const row = this.db
      .prepare("SELECT max(m.origin_seq) FROM messages m JOIN origins o ON o.id = m.origin_id WHERE o.name = ?")
      .pluck()
      .get(origin) as number | null;
    return row ?? 0;
  }

  /**
   * The origin bronze records a JetStream stream's messages under: the latest one recorded for
   * that stream, with its identity, or `jetstream:<stream>` with no identity (a data dir from
   * before identities were recorded, or a new one).
   */
  streamOrigin(stream: string): { origin: string; recorded: RecordedStream | null } {
    const row = this.db
      .prepare(
        `SELECT o.name AS origin, s.created, s.first_seq AS firstSeq FROM streams s JOIN origins o ON o.id = s.origin_id
         WHERE s.stream = ? ORDER BY s.origin_id DESC LIMIT 1`,
      )
      .get(stream) as RecordedStream | undefined;
    return row ? { origin: row.origin, recorded: row } : { origin: `jetstream:${stream}`, recorded: null };
  }

  /** Records (or replaces) the identity of the stream an origin reads. */
  recordStream(stream: string, identity: RecordedStream): void {
    this.db
      .transaction(() => {
        const id = this.originId(identity.origin);
        this.db
          .prepare(
            `INSERT INTO streams (origin_id, stream, created, first_seq, recorded_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (origin_id) DO UPDATE SET created = excluded.created, first_seq = excluded.first_seq, recorded_at = excluded.recorded_at`,
          )
          .run(id, stream, identity.created, identity.firstSeq, Date.now());
      })
      .immediate();
  }

  /** Bronze's copy of the message an origin numbered `originSeq`, or null. */
  messageAt(origin: string, originSeq: number): { data: Uint8Array; publishedAt: number | null } | null {
    const row = this.db
      .prepare(
        `SELECT m.payload, m.published_at FROM messages m JOIN origins o ON o.id = m.origin_id WHERE o.name = ? AND m.origin_seq = ?`,
      )
      .get(origin, originSeq) as { payload: Buffer; published_at: number | null } | undefined;
    return row ? { data: row.payload, publishedAt: row.published_at } : null;
  }

  /** Number of messages held. */
  count(): number {
    return this.db.prepare("SELECT count(*) FROM messages").pluck().get() as number;
  }

  /** Messages with bronze sequence in (after, upTo], oldest first, at most `limit`, for replay. */
  readRange(after: number, upTo: number, limit: number): SourceMessage[] {
    const rows = this.db
      .prepare(
        `SELECT m.seq, o.name AS origin, m.origin_seq, m.subject, m.content_type, m.msg_id, m.payload, m.received_at, m.published_at
         FROM messages m JOIN origins o ON o.id = m.origin_id
         WHERE m.seq > ? AND m.seq <= ? ORDER BY m.seq LIMIT ?`,
      )
      .all(after, upTo, limit) as BronzeRow[];
    return rows.map((r) => ({
      origin: r.origin,
      originSeq: r.origin_seq,
      subject: r.subject,
      data: r.payload,
      receivedAt: r.received_at,
      publishedAt: r.published_at,
      contentType: r.content_type,
      msgId: r.msg_id,
      bronzeSeq: r.seq,
    }));
  }

  close(): void {
    this.db.close();
  }
}
