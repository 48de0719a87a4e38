/**
 * tributary as a library: embed the topology in your own process.
 *
 * @example
 * import { createTopology } from "tributary-stream";
 */
export { createTopology, Topology, CRASH_POINTS } from "./topology.js";
export type { TopologyOptions, SourceSpec, PipelineStats, CrashPoint } from "./topology.js";
export { loadConfig, parseConfig, configSchema, DEFAULT_RATES } from "./config.js";
export type { Config, ConfigInput } from "./config.js";
export { FeatureReader, FEATURE_COLUMNS, formatFeatures } from "./features.js";
export type { FeatureRow } from "./features.js";
export { readStatus } from "./status.js";
export type { Status } from "./status.js";
export { generateWorkload, generatorSource } from "./sources/generator.js";
export type { GeneratorOptions, GeneratedMessage, Expectation } from "./sources/generator.js";
export { filesSource, fileMessages } from "./sources/files.js";
export { JetStreamSource, connectWithRetry, ensureStream } from "./sources/jetstream.js";
export { publishAll, recordMessage, msgIdFor } from "./sinks/publisher.js";
export { decode, decodeMessage } from "./operators/decode.js";
export { validate, validateRecord, CONTRACT } from "./operators/validate.js";
export { dedupe, dedupeRecord, DedupeWindow } from "./operators/dedupe.js";
export { enrich, enrichRecord } from "./operators/enrich.js";
export { aggregate, aggregateBatch, rollUpCustomers } from "./operators/aggregate.js";
export { batchForCommit } from "./operators/batch.js";
export { ConfigError, StorageError, NoDataError, CheckpointError, SourceError, HttpListenError, StreamMismatchError, DataDirLockedError, NatsUnreachableError } from "./errors.js";
export { RECOMMENDED_NODE_FLAGS } from "./runtime.js";
export * from "./types.js";
