/**
 * What the bench's parent process and a worker process say to each other over IPC, besides the
 * task itself: the parent's `finish`, the child's `ready`, result or error. Kept apart from
 * `child.ts` (the parent's side) and `worker.ts` (the child's), so that neither imports the other.
 */
export type ParentMessage = { type: "finish"; expected: number };
export type ChildMessage = { type: "ready" } | { type: "result"; result: unknown } | { type: "error"; error: string };

/** What a long-lived task can say to, and hear from, the parent. */
export interface WorkerControl {
  ready(): void;
  /** Resolves with the parent's `finish` message. */
  readonly finish: Promise<ParentMessage>;
}
