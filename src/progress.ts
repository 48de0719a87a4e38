/**
 * Progress of long work (`ingest`, `run --drain`): a bar with done/total, rate and ETA on a
 * terminal (cli-progress), and a periodic log line otherwise.
 */
import cliProgress from "cli-progress";
import type { Logger } from "./log.js";

export interface Progress {
  /** Records done so far, and the total when it is known. */
  update(done: number, total?: number): void;
  stop(): void;
}

/**
 * Creates the progress display for `label`. On a TTY it draws on stderr; otherwise it logs one
 * `progress` line every `intervalMs` (default 5 s).
 */
export function createProgress(label: string, log: Logger, options: { tty?: boolean; total?: number; intervalMs?: number } = {}): Progress {
  const tty = options.tty ?? Boolean(process.stderr.isTTY);
  let total = options.total ?? 0;
  const started = Date.now();
  if (tty) {
    const bar = new cliProgress.SingleBar(
      {
        stream: process.stderr,
        format: `${label} [{bar}] {percentage}% | {value}/{total} | {rate}/s | ETA {eta_formatted}`,
        hideCursor: true,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { rate: 0 });
    return {
      update(done, t) {
        if (t !== undefined && t !== total) {
          total = t;
          bar.setTotal(Math.max(t, done));
        }
        bar.update(done, { rate: Math.round(done / Math.max((Date.now() - started) / 1000, 0.001)) });
      },
      stop() {
        bar.stop();
      },
    };
  }
  let done = 0;
  const emit = () => {
    const secs = Math.max((Date.now() - started) / 1000, 0.001);
    const rate = done / secs;
    const eta = total > done && rate > 0 ? Math.round((total - done) / rate) : null;
    log.info({ event: "progress", task: label, done, total: total || null, rate: Math.round(rate), etaSeconds: eta }, `${label}: ${done}${total ? `/${total}` : ""}`);
  };
  const timer = setInterval(emit, options.intervalMs ?? 5_000);
  timer.unref();
  return {
    update(d, t) {
      done = d;
      if (t !== undefined) total = t;
    },
    stop() {
      clearInterval(timer);
    },
  };
}
