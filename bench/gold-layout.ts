/**
 * Gold alone: what a commit's gold transaction and gold's compaction cost per event, as the
 * customer base and the run grow. It feeds `GoldStore.apply` batches like the pipeline's (2,000
 * events, 40% transactions, 2% of them 1–20 days late, event times over `days` days), checkpoints
 * the WAL on a second connection as the daemon's checkpoint thread does, and folds on a third
 * (when the build has compaction), and reports the CPU time per event over the run, its first and
 * last tenth, and the apply and fold shares; then it times 20,000 lookups of random customers as of
 * the end of the run (`FeatureReader.lookup`, over an empty silver). `--build DIR` runs another
 * built checkout's GoldStore and reader (its `dist/src`) on the same batches, for a same-run A/B.
 *
 *   node dist/bench/gold-layout.js --customers 1000000 --events 4000000 [--build /tmp/prev]
 */
import Database from "better-sqlite3";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Command } from "commander";
import type { GoldDelta, DayDelta } from "../src/operators/aggregate.js";
import { prng } from "../src/sources/generator.js";

const DAY = 86_400_000;
const BATCH = 2_000;

interface GoldLike {
  readonly db: Database.Database;
  apply(delta: GoldDelta): void;
  close(): void;
}

export interface GoldLayoutResult {
  readonly build: string;
  readonly customers: number;
  readonly events: number;
  readonly usPerEvent: number;
  readonly firstTenthUs: number;
  readonly lastTenthUs: number;
  readonly applyUsPerEvent: number;
  readonly foldUsPerEvent: number;
  readonly buckets: number;
  readonly goldMb: number;
  /** One customer's features as of the end of the run: p50 and p99 µs, and CPU µs per lookup. */
  readonly lookup: { p50Us: number; p99Us: number; cpuUs: number };
}

/** One run over `events` generated events for `customers` customers, with the build at `root` (its `dist/`). */
export async function goldLayoutRun(root: string, customers: number, events: number, days: number, seed: number): Promise<GoldLayoutResult> {
  const load = async (path: string) => import(pathToFileURL(join(root, "dist", "src", "sinks", path)).href);
  const { SilverStore } = (await load("silver.js")) as { SilverStore: new (dir: string, s: object) => { close(): void } };
  const { FeatureReader } = (await import(pathToFileURL(join(root, "dist", "src", "features.js")).href)) as {
    FeatureReader: new (dir: string) => { lookup(t: number, id: string): unknown; close(): void };
  };
  const { GoldStore } = (await load("gold.js")) as { GoldStore: new (dir: string, s: object) => GoldLike };
  const layout = (await load("gold-layout.js").catch(() => null)) as { GoldFolder: new (db: Database.Database) => { begin(o: object): boolean; move(): { more: boolean } } } | null;
  const dir = mkdtempSync(join(tmpdir(), "tributary-bench-gold-"));
  const gold = new GoldStore(dir, { synchronous: "normal", busyTimeout: 5_000 });
  const file = join(dir, "gold.sqlite");
  const checkpointer = new Database(file);
  checkpointer.pragma("wal_autocheckpoint = 0");
  const foldDb = layout ? new Database(file, { timeout: 5_000 }) : null;
  const folder = layout && foldDb ? new layout.GoldFolder(foldDb) : null;
  const rand = prng(seed);
  const t0 = Date.UTC(2026, 0, 1);
  const cpu = () => {
    const u = process.cpuUsage();
    return u.user + u.system;
  };
  const start = cpu();
  const tenths: number[] = [];
  let applyUs = 0;
  let foldUs = 0;
  let folding = false;
  try {
    for (let i = 0; i < events; i += BATCH) {
      const buckets = new Map<string, DayDelta & { max_at: number }>();
      for (let j = 0; j < BATCH; j++) {
        let t = t0 + Math.floor((days * DAY * (i + j)) / events) + Math.floor((rand() * 2 - 1) * 6 * 3_600_000);
        if (rand() < 0.02) t -= Math.floor((1 + rand() * 19) * DAY);
        const day = Math.floor(t / DAY);
        const c = String(1_000_000 + Math.floor(rand() * customers));
        let d = buckets.get(`${c}|${day}`);
        if (!d) {
          d = { customer_id: c, day, tx_count: 0, tx_spend_micros: 0, tx_first_at: null, tx_last_at: null, session_count: 0, session_ms: 0, interaction_count: 0, event_count: 0, max_at: t };
          buckets.set(`${c}|${day}`, d);
        }
        const r = rand();
        if (r < 0.4) {
          d.tx_count++;
          d.tx_spend_micros += 12_345_678;
          d.tx_first_at = d.tx_first_at === null ? t : Math.min(d.tx_first_at, t);
          d.tx_last_at = Math.max(d.tx_last_at ?? t, t);
        } else if (r < 0.6) {
          d.session_count++;
          d.session_ms += 60_000;
        } else if (r < 0.8) d.interaction_count++;
        else d.event_count++;
        d.max_at = Math.max(d.max_at, t);
      }
      let c0 = cpu();
      gold.apply({ position: i + BATCH, days: [...buckets.values()], profiles: [], features: [] });
      applyUs += cpu() - c0;
      if (folder) {
        // As the daemon's checkpoint thread does: a step between commits, checking now and then whether a fold is due.
        c0 = cpu();
        if (folding) folding = folder.move().more;
        else if ((i / BATCH) % 25 === 0) folding = folder.begin({ now: t0 + Math.floor((days * DAY * i) / events) });
        foldUs += cpu() - c0;
      }
      if ((i / BATCH) % 8 === 0) checkpointer.pragma("wal_checkpoint(PASSIVE)");
      if (i + BATCH >= ((tenths.length + 1) * events) / 10) tenths.push(cpu() - start);
    }
    const total = cpu() - start;
    const tenth = (k: number) => (tenths[k]! - (k ? tenths[k - 1]! : 0)) / (events / 10);
    const buckets = gold.db.prepare("SELECT count(*) FROM customer_daily").pluck().get() as number;
    new SilverStore(dir, { synchronous: "normal", busyTimeout: 5_000 }).close();
    const reader = new FeatureReader(dir);
    const ms: number[] = [];
    const l0 = cpu();
    try {
      for (let i = 0; i < 20_000; i++) {
        const id = String(1_000_000 + Math.floor(rand() * customers));
        const s = performance.now();
        reader.lookup(t0 + days * DAY, id);
        ms.push(performance.now() - s);
      }
    } finally {
      reader.close();
    }
    const lookupCpu = (cpu() - l0) / 20_000;
    ms.sort((a, b) => a - b);
    return {
      build: root,
      customers,
      events,
      usPerEvent: total / events,
      firstTenthUs: tenth(0),
      lastTenthUs: tenth(tenths.length - 1),
      applyUsPerEvent: applyUs / events,
      foldUsPerEvent: foldUs / events,
      buckets,
      goldMb: statSync(file).size / 1e6,
      lookup: { p50Us: ms[ms.length >> 1]! * 1000, p99Us: ms[Math.floor(ms.length * 0.99)]! * 1000, cpuUs: lookupCpu },
    };
  } finally {
    gold.close();
    checkpointer.close();
    foldDb?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const f2 = (n: number) => n.toFixed(2);

async function main(): Promise<void> {
  const o = new Command()
    .option("--customers <list>", "customer counts", "10000,1000000")
    .option("--events <n>", "events per run", "4000000")
    .option("--days <n>", "days of event time the run spans", "90")
    .option("--build <dir>", "another built checkout to run on the same batches")
    .option("--seed <n>", "generator seed", "7")
    .parse(process.argv)
    .opts<{ customers: string; events: string; days: string; build?: string; seed: string }>();
  const builds = [resolve(new URL("../..", import.meta.url).pathname), ...(o.build ? [resolve(o.build)] : [])];
  const rows: GoldLayoutResult[] = [];
  for (const customers of o.customers.split(",").map(Number)) {
    for (const build of builds) {
      const r = await goldLayoutRun(build, customers, Number(o.events), Number(o.days), Number(o.seed));
      rows.push(r);
      process.stderr.write(`${JSON.stringify(r)}\n`);
    }
  }
  process.stdout.write("build\tcustomers\tCPU µs/event\tfirst tenth\tlast tenth\tapply\tfold\tbuckets\tgold MB\tlookup p50 µs\tp99\tCPU µs\n");
  for (const r of rows) {
    const l = r.lookup;
    process.stdout.write(
      [r.build, r.customers, f2(r.usPerEvent), f2(r.firstTenthUs), f2(r.lastTenthUs), f2(r.applyUsPerEvent), f2(r.foldUsPerEvent), r.buckets, r.goldMb.toFixed(0), l.p50Us.toFixed(0), l.p99Us.toFixed(0), l.cpuUs.toFixed(0)].join("\t") + "\n",
    );
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`gold-layout bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
