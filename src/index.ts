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
export { FeatureReader, FEATURE_COLUMNS, featureColumns, formatFeatures } from "./features.js";
export type { FeatureRow } from "./features.js";
export { readStatus } from "./status.js";
export type { Status } from "./status.js";
export { generateWorkload, generatorSource } from "./sources/generator.js";
export type { GeneratorOptions, GeneratedMessage, Expectation } from "./sources/generator.js";
export { filesSource, fileMessages } from "./sources/files.js";
export { JetStreamSource, connectWithRetry, ensureStream } from "./sources/jetstream.js";
export { publishAll, recordMessage, msgIdFor } from "./producers/publisher.js";
export { decode, decodeMessage, decodeStage } from "./operators/decode.js";
export { validate, validateRecord, validateStage, CONTRACT } from "./operators/validate.js";
export { dedupe, dedupeRecord, dedupeStage, DedupeWindow } from "./operators/dedupe.js";
export { enrich, enrichRecord, enrichStage } from "./operators/enrich.js";
export { composeStages, toOperator, STAGE_IDS } from "./operators/stage.js";
export type { Stage, StageId, InsertedStage } from "./operators/stage.js";
export { BUILTIN_FEATURES, AGGREGATES, FEATURE_SOURCES, customFeaturesOf, describeCustom } from "./model/features.js";
export type { FeatureDescription, CustomFeature, CustomFeatureInput, Aggregate } from "./model/features.js";
export { entitySchema, contractSchemas, SCHEMA_LIMITATIONS } from "./model/schema.js";
export { BUILTIN_ENTITIES, resolveEntities, checkEntities, silverTableSql, silverColumns } from "./model/entities.js";
export type { EntityDefinition, EntityField, FieldKind, DerivedColumn, ComputedField } from "./model/entities.js";
export { trainingSet, readLabels, computeTrainingSet, writeTrainingSet, STATUS_COLUMN, KNOWN_AT } from "./serving/training-set.js";
export type { KnownAt, LabelSet, LabelStatus, TrainingSetOptions, TrainingSet, RejectedLabel, WrittenTrainingSet } from "./serving/training-set.js";
export { aggregate, aggregateBatch, rollUpCustomers } from "./operators/aggregate.js";
export { batchForCommit } from "./operators/batch.js";
export { ConfigError, StorageError, NoDataError, CheckpointError, SourceError, HttpListenError, StreamMismatchError, DataDirLockedError, NatsUnreachableError } from "./errors.js";
export { RECOMMENDED_NODE_FLAGS } from "./runtime/node-flags.js";
export * from "./types.js";
