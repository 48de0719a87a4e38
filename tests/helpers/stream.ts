/** Publishing test workloads into a real JetStream stream, and reading consumer state. */
import { connect } from "@nats-io/transport-node";
import { jetstreamManager, type ConsumerInfo } from "@nats-io/jetstream";
import { publishAll, type OutgoingMessage } from "../../src/producers/publisher.js";
import { generateWorkload } from "../../src/sources/generator.js";
import { runCli } from "./cli.js";
import { dumpLayers } from "./tables.js";

export async function publishToStream(url: string, messages: Iterable<OutgoingMessage>, stream = "TRIBUTARY"): Promise<number> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    try {
      await jsm.streams.info(stream);
    } catch {
      await jsm.streams.add({ name: stream, subjects: ["tributary.>"] });
    }
    const r = await publishAll(nc, messages);
    return r.stored;
  } finally {
    await nc.close();
  }
}

export async function consumerInfo(url: string, consumer: string, stream = "TRIBUTARY"): Promise<ConsumerInfo> {
  const nc = await connect({ servers: url });
  try {
    return await (await jetstreamManager(nc)).consumers.info(stream, consumer);
  } finally {
    await nc.close();
  }
}

/**
 * Publishes a generated workload into a new TRIBUTARY stream and drains it into a fresh data dir
 * with consumer `reference`: what a run with nothing else going on gives, to compare against.
 */
export async function publishAndDrainReference(url: string, workload: { seed: number; messages: number }, dataDir: string): Promise<Record<string, unknown[]>> {
  const nc = await connect({ servers: url });
  try {
    await (await jetstreamManager(nc)).streams.add({ name: "TRIBUTARY", subjects: ["tributary.>"] });
    await publishAll(nc, generateWorkload(workload));
  } finally {
    await nc.close();
  }
  const r = await runCli(["run", "--drain", "--nats", url, "--data-dir", dataDir], { TRIBUTARY_NATS_CONSUMER: "reference" });
  if (r.code !== 0) throw new Error(`reference drain failed: ${r.stderr}`);
  return dumpLayers(dataDir);
}
