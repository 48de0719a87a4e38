/** Temporary: src/cli.ts still imports faultsFromEnv from here; it lives in src/runtime/faults.ts. */
export { faultsFromEnv } from "../runtime/faults.js";
