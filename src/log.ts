/**
 * Logging: pino, JSON lines on stderr (stdout is for command output). One line per lifecycle event.
 */
import { pino, type Logger } from "pino";

export type { Logger };

/** Creates the process logger. `level` is a pino level name; `silent` turns logging off. */
export function createLogger(level: string = process.env.TRIBUTARY_LOG_LEVEL ?? "info"): Logger {
  return pino({ level, base: { app: "tributary" }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: 2, sync: true }));
}

/** A logger that drops everything, for library use without logs. */
export const silentLogger: Logger = pino({ level: "silent" });
