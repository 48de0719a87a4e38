/**
 * Every measurement runs in its own Node process, so each gets a cold start, its own heap and its
 * own peak RSS (`ru_maxrss` is per process and never goes down). The parent forks
 * `dist/bench/worker.js`, sends it one task over IPC, and gets one result back. Long-lived tasks
 * (the live topology) also send `ready` and accept a `finish` message.
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { WorkerTask } from "./worker.js";
import type { ChildMessage, ParentMessage } from "./ipc.js";

const WORKER = fileURLToPath(new URL("./worker.js", import.meta.url));

export interface WorkerHandle<R> {
  readonly proc: ChildProcess;
  /** Resolves when the child sends `ready`. */
  readonly ready: Promise<void>;
  /** Resolves with the task's result; rejects when it fails or the process dies first. */
  readonly result: Promise<R>;
  send(message: ParentMessage): void;
}

/**
 * Forks a worker for one task. `execArgv` adds Node flags (for example `--cpu-prof`); `worker` is
 * another build's `dist/bench/worker.js` (a baseline checkout's, for a same-run A/B).
 */
export function startWorker<R>(task: WorkerTask, options: { execArgv?: string[]; worker?: string } = {}): WorkerHandle<R> {
  const proc = fork(options.worker ?? WORKER, [], {
    execArgv: options.execArgv ?? [],
    serialization: "advanced", // typed arrays cross the IPC channel as they are
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  let markReady!: () => void;
  const ready = new Promise<void>((r) => (markReady = r));
  const result = new Promise<R>((resolve, reject) => {
    let settled = false;
    proc.on("message", (m: ChildMessage) => {
      if (m.type === "ready") markReady();
      else if (m.type === "result") {
        settled = true;
        resolve(m.result as R);
      } else if (m.type === "error") {
        settled = true;
        reject(new Error(`${task.kind}: ${m.error}`));
      }
    });
    proc.once("exit", (code, signal) => {
      if (!settled) reject(new Error(`${task.kind}: worker exited (${signal ?? code}) before reporting a result`));
    });
  });
  result.catch(() => undefined);
  proc.send(task);
  return { proc, ready, result, send: (m) => proc.send(m) };
}

/** Runs a task in a fresh process and waits for its result and for the process to exit. */
export async function runWorker<R>(task: WorkerTask, options: { execArgv?: string[]; worker?: string } = {}): Promise<R> {
  const w = startWorker<R>(task, options);
  const exited = new Promise<void>((r) => (w.proc.exitCode !== null ? r() : w.proc.once("exit", () => r())));
  const result = await w.result;
  await exited;
  return result;
}
