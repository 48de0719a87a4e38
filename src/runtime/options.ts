/**
 * What an embedder passes to `createTopology`, and what the topology makes of it: the validated
 * config (with `dataDir` applied), the custom features, the dedupe window, the fault hooks (none
 * unless a test passes some), and the per-record stages composed into one function.
 */
import type { Config, ConfigInput } from "../config.js";
import { parseConfig } from "../config.js";
import type { SourceMessage, Staged } from "../types.js";
import type { SourceSpec } from "../sources/factory.js";
import type { HttpListen } from "../http.js";
import { silentLogger, type Logger } from "../log.js";
import { DedupeWindow } from "../operators/dedupe.js";
import type { SegmentDirectory } from "../operators/enrich.js";
import type { InsertedStage } from "../operators/stage.js";
import { builtInStages, type StageSettings } from "../operators/built-ins.js";
import { customFeaturesOf, type CustomFeature } from "../model/features.js";
import { resolveEntities, type EntityDefinition } from "../model/entities.js";
import { NO_FAULTS, type Faults } from "./faults.js";
import type { CommitterOptions } from "./committer.js";

export interface TopologyOptions {
  /** Configuration (validated, defaults applied). `dataDir` here wins over `config.dataDir`. */
  readonly config?: Config | ConfigInput;
  readonly dataDir?: string;
  readonly source: SourceSpec;
  readonly log?: Logger;
  /**
   * Prometheus metrics: true (default) for tributary's metrics plus prom-client's process
   * metrics, `"pipeline-only"` without the process metrics, false for none.
   */
  readonly metrics?: boolean | "pipeline-only";
  /**
   * Refuse to start when gold holds another set of custom features than the config, instead of
   * dropping and backfilling them (the CLI's `--no-backfill`).
   */
  readonly noBackfill?: boolean;
  /**
   * Stages of your own, each placed right after a built-in one (`decode`, `validate`, `dedupe`,
   * `enrich`): to redact a field, or route records to quarantine with a reason of your own. They
   * run on the hot path and in bronze replay, so they must be synchronous and deterministic.
   */
  readonly stages?: readonly InsertedStage[];
  /**
   * Entities of your own, after the built-in five (see `EntityDefinition`): records on
   * `tributary.<name>` are validated against their fields, deduplicated by id, kept in a silver
   * table of that name, and `features.custom` can aggregate them.
   */
  readonly entities?: readonly EntityDefinition[];
  /** What the data dir's writer lock names as its holder (default `tributary`; the CLI says `tributary run`, …). */
  readonly holder?: string;
  /** Serve `/metrics`, `/healthz`, `/readyz` and `/features/<id>` (port 0 picks a free port). Off by default. */
  readonly http?: HttpListen | false;
  /**
   * Test hook: crash points and slow commits for the crash tests. None by default; the library
   * never reads them from the environment (only the `tributary` CLI does, for its tests).
   * @internal
   */
  readonly faults?: Faults;
}

/** Topology options with their defaults applied. */
export interface ResolvedOptions {
  readonly config: Config;
  /** The built-in entities, then the embedder's. */
  readonly entities: readonly EntityDefinition[];
  readonly custom: readonly CustomFeature[];
  readonly log: Logger;
  readonly faults: Faults;
  /** The dedupe window bronze replay uses, and live consumption when the stages run on this thread. */
  readonly window: DedupeWindow;
  /** The built-in stages' settings, plain data a worker thread can build the same stages from. */
  readonly stageSettings: StageSettings;
  /**
   * Where live consumption runs the stages: on the commit thread (with `storage.commitThread:
   * worker` and no stages of the embedder's, whose closures cannot cross threads), or on the thread
   * that runs the source.
   */
  readonly stagesOnCommitThread: boolean;
  /**
   * The per-record stages, composed into one function: decode → validate → dedupe → enrich, with
   * any embedder's stages at their points. Bronze replay runs this one, and live consumption
   * unless {@link stagesOnCommitThread}.
   */
  stages(segments: SegmentDirectory): (m: SourceMessage) => Staged;
}

/** Validates the config and applies the defaults; throws a ConfigError for a bad config. */
export function resolveOptions(options: TopologyOptions): ResolvedOptions {
  const entities = resolveEntities(options.entities);
  const parsed = parseConfig(options.config ?? {}, { entities });
  const config = options.dataDir ? { ...parsed, dataDir: options.dataDir } : parsed;
  const custom = customFeaturesOf(config.features.custom, entities);
  const dedupe = { windowMs: config.dedupe.window, maxEntries: config.dedupe.maxEntries };
  const window = new DedupeWindow(dedupe);
  const stageSettings: StageSettings = { ...config.limits, rates: config.currency.rates, dedupe, entities };
  const inserted = options.stages ?? [];
  return {
    config,
    entities,
    custom,
    log: options.log ?? silentLogger,
    faults: options.faults ?? NO_FAULTS,
    window,
    stageSettings,
    stagesOnCommitThread: config.storage.commitThread === "worker" && inserted.length === 0,
    stages: (segments) => builtInStages(stageSettings, window, segments, inserted),
  };
}

/** What the committer needs from the resolved options: the data dir, storage, features, entities, retention and maintenance. */
export function committerOptions(r: ResolvedOptions): CommitterOptions {
  const { config, log } = r;
  return {
    dataDir: config.dataDir,
    storage: config.storage,
    faults: r.faults,
    thread: config.storage.commitThread,
    features: r.custom,
    entities: r.entities,
    retention: { bronzeMs: config.retention.bronze, silverMs: config.retention.silver, everyMs: config.retention.pruneEvery },
    optimizeEveryMs: config.storage.optimizeEvery,
    stages: r.stagesOnCommitThread ? { settings: r.stageSettings, watermark: r.window.watermark } : undefined,
    onPruneFailed: (error) => log.warn({ event: "prune_failed", error }, "retention failed; it retries next round"),
    onFoldFailed: (error) => log.warn({ event: "fold_failed", error }, "gold's compaction failed; it retries at the next check"),
  };
}
