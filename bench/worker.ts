/**
 * The child-process side of {@link startWorker}: receives one task, runs it, reports its result
 * and exits. Not meant to be started by hand.
 */
import { runCeiling, type ConsumerPhaseOptions } from "./ceiling.js";
import { runNaive } from "./naive.js";
import { runTributary, type TributaryPhaseOptions } from "./tributary.js";
import { runLivePublisher, runLiveTopology, type LivePublisherOptions, type LiveTopologyOptions } from "./live-tasks.js";
import { runMicro, type MicroOptions } from "./micro.js";
import type { ChildMessage, ParentMessage, WorkerControl } from "./ipc.js";

export type WorkerTask =
  | ({ kind: "ceiling" } & ConsumerPhaseOptions & { ackEvery: number })
  | ({ kind: "naive" } & ConsumerPhaseOptions & { dataDir: string; sqliteDefaults?: boolean; synchronous?: "normal" | "full"; batchEvery?: number })
  | ({ kind: "tributary" } & TributaryPhaseOptions)
  | ({ kind: "live-topology" } & LiveTopologyOptions)
  | ({ kind: "live-publisher" } & LivePublisherOptions)
  | ({ kind: "micro" } & MicroOptions);

function send(m: ChildMessage): Promise<void> {
  return new Promise((resolve) => process.send!(m, undefined, {}, () => resolve()));
}

async function dispatch(task: WorkerTask, control: WorkerControl): Promise<unknown> {
  switch (task.kind) {
    case "ceiling":
      return runCeiling(task);
    case "naive":
      return runNaive(task);
    case "tributary":
      return runTributary(task);
    case "live-topology":
      return runLiveTopology(task, control);
    case "live-publisher":
      return runLivePublisher(task, control);
    case "micro":
      return runMicro(task);
  }
}

if (process.send) {
  let onFinish!: (m: ParentMessage) => void;
  const control: WorkerControl = {
    ready: () => void send({ type: "ready" }),
    finish: new Promise<ParentMessage>((r) => (onFinish = r)),
  };
  process.on("message", (m: WorkerTask | ParentMessage) => {
    if (!("kind" in m)) {
      if (m.type === "finish") onFinish(m);
      return;
    }
    dispatch(m, control).then(
      async (result) => {
        await send({ type: "result", result });
        process.exit(0);
      },
      async (err: unknown) => {
        await send({ type: "error", error: err instanceof Error ? err.message : String(err) });
        process.exit(1);
      },
    );
  });
}
