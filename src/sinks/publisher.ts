/** Temporary: src/cli.ts still imports the publisher from here; it lives in src/producers/publisher.ts. */
export { publishAll, recordMessage, type OutgoingMessage } from "../producers/publisher.js";
