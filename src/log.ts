/**
 * Logging: pino. JSON lines on stderr by default (stdout is for command output); readable lines
 * when stderr is a terminal. One line per lifecycle event (connected, caught_up, reconnecting,
 * checkpoint, shutdown), each with an `event` field.
 */
import { pino, type Logger } from "pino";
import pretty from "pino-pretty";

export type { Logger };

/**
 * Creates the process logger. `level` is a pino level name (`silent` turns logging off).
 * `TRIBUTARY_LOG_FORMAT=json` forces JSON on a terminal; `pretty` forces readable lines.
 */
export function createLogger(level: string = process.env.TRIBUTARY_LOG_LEVEL ?? "info"): Logger {
  const format = process.env.TRIBUTARY_LOG_FORMAT ?? (process.stderr.isTTY ? "pretty" : "json");
  const options = { level, base: { app: "tributary" }, timestamp: pino.stdTimeFunctions.isoTime };
  if (format === "pretty") {
    return pino(options, pretty({ destination: 2, sync: true, colorize: Boolean(process.stderr.isTTY), ignore: "pid,hostname,app" }));
  }
  return pino(options, pino.destination({ dest: 2, sync: true }));
}

/** A logger that drops everything, for library use without logs. */
export const silentLogger: Logger = pino({ level: "silent" });
