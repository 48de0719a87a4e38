/**
 * The manifest beside every dataset file (`<file>.manifest.json`): what an MLflow run logs as a
 * dataset input (name, digest, schema as `mlflow_colspec`, profile, source), plus what it takes to
 * reproduce the file: the as-of instant or the labels' digest, the known-at policy, each layer's
 * bronze position, the feature definitions' hash, the tributary version and the command line.
 *
 * The manifest holds no wall-clock time, so the same data and command give the same manifest, and
 * the digest covers the data file's bytes only. Keys are snake_case, as MLflow's dataset fields are.
 */
import { existsSync, readFileSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { layerPath, openLayer, readPosition, type Layer } from "../sinks/database.js";
import { BRONZE_MIGRATIONS } from "../sinks/bronze.js";
import { SILVER_MIGRATIONS } from "../sinks/silver.js";
import { GOLD_MIGRATIONS } from "../sinks/gold.js";
import { formatTimestamp } from "../timestamps.js";
import { writeFileAtomic, type ColumnSpec, type WrittenFile } from "./output-file.js";

/** Bumped when a field changes meaning or goes away; new fields may appear without it. */
export const MANIFEST_VERSION = 1;

/** Characters of the sha256 that make the MLflow `digest` (MLflow recommends at most 10). */
const MLFLOW_DIGEST_CHARS = 10;

/** The bronze position each layer had applied: bronze's last sequence, silver's and gold's checkpoints. */
export interface LayerPositions {
  readonly bronze: number;
  readonly silver: number;
  readonly gold: number;
}

/** One column as MLflow's `mlflow_colspec` lists it. */
export interface MlflowColSpec {
  readonly type: ColumnSpec["type"];
  readonly name: string;
  readonly required: boolean;
}

/** What {@link writeManifest} needs to describe a file. */
export interface ManifestInput {
  /** The dataset's name, e.g. `silver.transactions`, `gold.features`, `training_set`. */
  readonly name: string;
  readonly format: "parquet" | "csv";
  /** The written file, as the Parquet and CSV writers' `close()` returns it. */
  readonly file: WrittenFile;
  readonly schema: readonly ColumnSpec[];
  /** The instant the data is as of (epoch ms), or null when it holds everything. */
  readonly asOf: number | null;
  /** For a training set: the sha256 of the labels file it was built from; null otherwise. */
  readonly labelsDigest?: string | null;
  /** For a training set: which records count as known at a label's time; null for exports. */
  readonly knownAt?: string | null;
  readonly positions: LayerPositions;
  /** {@link featureSetHash} of the feature set the data was computed with. */
  readonly featuresHash: string;
  /** The command that wrote the file, as argv (e.g. `["tributary", "export", "--layer", "gold"]`). */
  readonly commandLine: readonly string[];
}

/** The manifest's JSON. */
export interface DatasetManifest {
  readonly manifest_version: number;
  readonly name: string;
  /** The data file's name, in the manifest's directory. */
  readonly file: string;
  readonly format: "parquet" | "csv";
  /** The first {@link MLFLOW_DIGEST_CHARS} hex digits of `sha256`: MLflow's dataset digest. */
  readonly digest: string;
  /** Hex sha256 of the data file's bytes. */
  readonly sha256: string;
  readonly bytes: number;
  readonly rows: number;
  readonly schema: { readonly mlflow_colspec: readonly MlflowColSpec[] };
  /** ISO-8601 UTC, or null. */
  readonly as_of: string | null;
  readonly labels_digest: string | null;
  readonly known_at: string | null;
  readonly positions: LayerPositions;
  readonly features_hash: string;
  readonly tributary_version: string;
  readonly command_line: readonly string[];
  /** The fields of MLflow's Dataset entity, as strings the way MLflow stores them (`mlflow.entities.Dataset(**m["mlflow"])`). */
  readonly mlflow: {
    readonly name: string;
    readonly digest: string;
    readonly source_type: "local";
    readonly source: string;
    readonly schema: string;
    readonly profile: string;
  };
}

/** Where the manifest of a data file goes: `<file>.manifest.json`. */
export function manifestPath(file: string): string {
  return `${file}.manifest.json`;
}

/** The columns as MLflow's ColSpec JSON: `[{"type": "long", "name": "n", "required": true}, …]`. */
export function mlflowColspec(columns: readonly ColumnSpec[]): MlflowColSpec[] {
  return columns.map((c) => ({ type: c.type, name: c.name, required: !c.nullable }));
}

let version: string | undefined;

/** tributary's version, from the package.json above this module (in `src/` and in `dist/src/` alike). */
export function tributaryVersion(): string {
  if (version !== undefined) return version;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = resolve(dir, "package.json");
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, "utf8")) as { name?: string; version?: string };
      if (pkg.name === "tributary-stream" && pkg.version) return (version = pkg.version);
    }
    const up = dirname(dir);
    if (up === dir) return (version = "unknown");
    dir = up;
  }
}

/** The manifest of a written file (not yet on disk). */
export function buildManifest(input: ManifestInput): DatasetManifest {
  const digest = input.file.sha256.slice(0, MLFLOW_DIGEST_CHARS);
  const schema = { mlflow_colspec: mlflowColspec(input.schema) };
  return {
    manifest_version: MANIFEST_VERSION,
    name: input.name,
    file: basename(input.file.path),
    format: input.format,
    digest,
    sha256: input.file.sha256,
    bytes: input.file.bytes,
    rows: input.file.rows,
    schema,
    as_of: input.asOf === null ? null : formatTimestamp(input.asOf),
    labels_digest: input.labelsDigest ?? null,
    known_at: input.knownAt ?? null,
    positions: { bronze: input.positions.bronze, silver: input.positions.silver, gold: input.positions.gold },
    features_hash: input.featuresHash,
    tributary_version: tributaryVersion(),
    command_line: [...input.commandLine],
    mlflow: {
      name: input.name,
      digest,
      source_type: "local",
      source: JSON.stringify({ uri: resolve(input.file.path) }),
      schema: JSON.stringify(schema),
      profile: JSON.stringify({ num_rows: input.file.rows }),
    },
  };
}

/**
 * Writes `<outFile>.manifest.json` (atomically) describing `outFile`, and returns it.
 *
 * @example
 * const file = openParquetWriter(out, columns); ...; const written = file.close();
 * writeManifest(out, { name: "gold.features", format: "parquet", file: written, schema: columns, asOf,
 *   positions: readLayerPositions(dataDir), featuresHash: featureSetHash(custom), commandLine: ["tributary", ...argv] });
 */
export function writeManifest(outFile: string, input: ManifestInput): DatasetManifest {
  if (resolve(outFile) !== resolve(input.file.path)) throw new Error(`manifest for ${outFile} describes ${input.file.path}`);
  const manifest = buildManifest(input);
  writeFileAtomic(manifestPath(outFile), JSON.stringify(manifest, null, 2) + "\n");
  return manifest;
}

/**
 * Each layer's bronze position in a data directory, read-only (0 for a layer without a file):
 * bronze's highest sequence, and the checkpoint silver and gold commit with their data.
 */
export function readLayerPositions(dataDir: string): LayerPositions {
  const storage = { synchronous: "normal" as const, busyTimeout: 5_000, readonly: true };
  const migrations: Record<Layer, readonly string[]> = { bronze: BRONZE_MIGRATIONS, silver: SILVER_MIGRATIONS, gold: GOLD_MIGRATIONS };
  const read = (layer: Layer): number => {
    if (!existsSync(layerPath(dataDir, layer))) return 0;
    const db = openLayer(dataDir, layer, migrations[layer], storage);
    try {
      if (layer === "bronze") return db.prepare("SELECT coalesce(max(seq), 0) FROM messages").pluck().get() as number;
      return readPosition(db, layer);
    } finally {
      db.close();
    }
  };
  return { bronze: read("bronze"), silver: read("silver"), gold: read("gold") };
}
