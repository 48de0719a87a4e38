/** Publishing test workloads into a real JetStream stream, and reading consumer state. */
import { connect } from "@nats-io/transport-node";
import { jetstreamManager, type ConsumerInfo } from "@nats-io/jetstream";
import { publishAll, type OutgoingMessage } from "../../src/producers/publisher.js";

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
