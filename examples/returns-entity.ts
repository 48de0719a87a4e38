/**
 * An entity of your own: product returns, declared once as data and passed to createTopology.
 * Its records arrive on `tributary.returns`, are validated against these fields (quarantined
 * with the same reason codes as the built-in entities), deduplicated by `return_id`, kept in
 * silver's `returns` table, and custom features can aggregate them like any built-in entity.
 *
 * @example
 * const topology = createTopology({
 *   dataDir: "./data",
 *   entities: [RETURNS],
 *   config: { features: { custom: RETURN_FEATURES } },
 * });
 */
import type { EntityDefinition } from "tributary-stream";

export const RETURNS: EntityDefinition = {
  name: "returns",
  description: "a product sent back",
  id: "return_id",
  eventTime: "returned_at",
  keep: "first",
  fields: [
    { name: "return_id", kind: "id" },
    { name: "customer_id", kind: "id" },
    { name: "amount", kind: "amount", currency: "currency" },
    { name: "currency", kind: "currency" },
    { name: "returned_at", kind: "timestamp" },
    { name: "reason", kind: "text", optional: { default: "unspecified" } },
  ],
  // The refund in the base currency, filled by enrich as for transactions.
  derived: [{ column: "amount_base", derive: { baseAmountOf: "amount" } }],
};

/** Features over it, in the config's shape (`features.custom`). */
export const RETURN_FEATURES = [
  { name: "refunded_last_30_days", from: "returns", aggregate: "sum", field: "amount_base", window: "30d" },
  { name: "damaged_returns", from: "returns", aggregate: "count", where: { reason: "damaged" } },
] as const;
