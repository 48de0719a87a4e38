/** Hand-built inputs for the operator unit tests: no sources, no I/O. */
import type { SourceMessage, Staged, ValidRecord } from "../../src/types.js";

/** 2026-03-01T00:00:00Z, the receive time used unless a test says otherwise. */
export const RECEIVED_AT = Date.UTC(2026, 2, 1);

/** A source message as a source would emit it; `data` defaults to an empty payload. */
export function sourceMessage(overrides: Partial<SourceMessage> = {}): SourceMessage {
  return {
    origin: "test:unit",
    originSeq: 1,
    subject: "tributary.transactions",
    data: new Uint8Array(0),
    receivedAt: RECEIVED_AT,
    publishedAt: null,
    contentType: null,
    msgId: null,
    ...overrides,
  };
}

/** A staged record as `decode` leaves it: entity plus decoded fields. */
export function decoded(entity: string, fields: Record<string, unknown>, msg: Partial<SourceMessage> = {}): Staged {
  return { msg: sourceMessage({ subject: `tributary.${entity}`, ...msg }), entity, outcome: { status: "decoded", fields } };
}

/** A staged record that passed validation. */
export function validStaged(record: ValidRecord, seq = 1): Staged {
  return { msg: sourceMessage({ subject: `tributary.${record.entity}`, originSeq: seq }), entity: record.entity, outcome: { status: "valid", record } };
}
