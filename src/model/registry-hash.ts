/**
 * One hash for a whole feature set: the built-in features' names in output order, then each
 * custom feature's name and definition hash in config order. Two datasets with the same hash were
 * computed by the same feature definitions, so a model trained on one can be served from the other.
 */
import { createHash } from "node:crypto";
import { BUILTIN_FEATURES, type CustomFeature } from "./features.js";

/**
 * The feature set's hash (16 hex digits of a sha256), stable across runs and machines. A custom
 * feature's description does not change it; its name, source, aggregate, field, filter or window do.
 *
 * @example
 * featureSetHash(customFeaturesOf(config.features.custom)) // "3f9a0c1d2b4e5f60"
 */
export function featureSetHash(custom: readonly Pick<CustomFeature, "name" | "hash">[] = []): string {
  const canonical = JSON.stringify({ builtin: BUILTIN_FEATURES.map((f) => f.name), custom: custom.map((c) => [c.name, c.hash]) });
  return createHash("sha256").update(canonical).digest("hex").slice(0, 16);
}
