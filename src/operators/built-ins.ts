/**
 * The built-in record stages, built from plain settings: decode → validate → dedupe → enrich,
 * with an embedder's stages at their points. Settings are data (no functions), so the commit
 * thread can build the same stages from them as the pipeline's thread and bronze replay do.
 */
import type { SourceMessage, Staged } from "../types.js";
import type { EntityDefinition } from "../model/entities.js";
import { decodeStage } from "./decode.js";
import { validateStage } from "./validate.js";
import { dedupeStage, type DedupeOptions, type DedupeWindow } from "./dedupe.js";
import { enrichStage, type SegmentDirectory } from "./enrich.js";
import { composeStages, type InsertedStage } from "./stage.js";

/** What the built-in stages are configured with (`limits.*`, `currency.rates`, `dedupe.*`). */
export interface StageSettings {
  readonly maxPayloadBytes: number;
  readonly maxDepth: number;
  readonly maxFields: number;
  readonly maxIdLength: number;
  readonly maxTextLength: number;
  readonly minEventTime: number;
  readonly rates: Readonly<Record<string, number>>;
  readonly dedupe: DedupeOptions;
  /** The built-in entities, then an embedder's. */
  readonly entities: readonly EntityDefinition[];
}

/** The stages composed into one function from a source message to a staged record. */
export function builtInStages(settings: StageSettings, window: DedupeWindow, segments: SegmentDirectory, inserted: readonly InsertedStage[] = []): (m: SourceMessage) => Staged {
  const { maxPayloadBytes, maxDepth, maxFields, maxIdLength, maxTextLength, minEventTime, rates, entities } = settings;
  return composeStages(
    decodeStage({ maxPayloadBytes, maxDepth, maxFields, entities }),
    [validateStage({ rates, minEventTime, maxIdLength, maxTextLength, entities }), dedupeStage(window), enrichStage({ rates, segments, entities })],
    inserted,
  );
}
