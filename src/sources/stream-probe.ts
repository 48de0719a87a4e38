/**
 * The stream and its durable consumer as the NATS server reports them, for `tributary status`:
 * one connection attempt with a short deadline, read-only (nothing is created), then closed.
 */
import { JetStreamApiCodes, JetStreamApiError, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { redactUrl, type NatsAuth } from "./nats-connection.js";
import { loadNatsCredentials } from "./nats-credentials.js";
import { hostPort } from "./tls-probe.js";
import { connect as tcpConnect } from "node:net";

/** What the server says about the stream, or why it could not be asked. */
export type StreamProbe =
  | {
      readonly reachable: true;
      readonly name: string;
      /** The stream's identity: its creation time and first sequence. */
      readonly created: string;
      readonly firstSeq: number;
      /** The stream sequence of the newest message the stream has stored. */
      readonly lastSeq: number;
      /** Messages the stream holds now. */
      readonly messages: number;
      /** The durable consumer, or null when the server has none of that name. */
      readonly consumer: {
        readonly name: string;
        /** Messages not yet delivered to the consumer (`num_pending`). */
        readonly pending: number;
        /** Messages delivered and not yet acknowledged (`num_ack_pending`). */
        readonly ackPending: number;
        /** The stream sequence up to which everything is acknowledged. */
        readonly ackFloor: number;
      } | null;
    }
  | { readonly reachable: false; readonly name: string; readonly reason: string };

export interface StreamProbeOptions {
  readonly url: string;
  readonly stream: string;
  readonly consumer: string;
  readonly auth?: NatsAuth;
  /** How long to wait for each answer from the server: the greeting, the connection, each info request (ms). */
  readonly timeoutMs: number;
}

/**
 * Asks the server for the stream's state and the consumer's. Never throws: a server that cannot be
 * reached in time, refuses the credentials or has no such stream gives `reachable: false` and why.
 *
 * @example
 * const s = await probeStream({ url: "nats://127.0.0.1:4222", stream: "TRIBUTARY", consumer: "tributary", timeoutMs: 2_000 });
 * if (s.reachable) console.log(s.lastSeq, s.consumer?.pending);
 */
export async function probeStream(options: StreamProbeOptions): Promise<StreamProbe> {
  const { stream, timeoutMs } = options;
  const unreachable = (reason: string): StreamProbe => ({ reachable: false, name: stream, reason: reason.replace(/\s+/g, " ") });
  let nc: NatsConnection;
  try {
    const creds = loadNatsCredentials(options.url, options.auth ?? {});
    const servers = options.url.split(",").map((s) => s.trim()).filter((s) => s !== "");
    const server = await firstAnswering(servers, timeoutMs);
    // One attempt, no reconnects: status reports what it finds instead of waiting for NATS.
    nc = await connect({ servers: [server], name: "tributary status", timeout: timeoutMs, reconnect: false, ...creds.connectOptions });
  } catch (err) {
    return unreachable(`cannot reach NATS at ${redactUrl(options.url)}: ${(err as Error).message}`);
  }
  try {
    const jsm = await jetstreamManager(nc, { timeout: timeoutMs });
    let info;
    try {
      info = await jsm.streams.info(stream);
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return unreachable(`NATS at ${redactUrl(options.url)} has no stream ${stream}`);
      throw err;
    }
    let consumer: Extract<StreamProbe, { reachable: true }>["consumer"] = null;
    try {
      const c = await jsm.consumers.info(stream, options.consumer);
      consumer = { name: options.consumer, pending: c.num_pending, ackPending: c.num_ack_pending, ackFloor: c.ack_floor.stream_seq };
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
    }
    return { reachable: true, name: stream, created: info.created, firstSeq: info.state.first_seq, lastSeq: info.state.last_seq, messages: info.state.messages, consumer };
  } catch (err) {
    return unreachable(`NATS at ${redactUrl(options.url)} did not answer for stream ${stream}: ${(err as Error).message}`);
  } finally {
    await nc.close().catch(() => undefined);
  }
}

/**
 * The first server that greets a TCP connection with its NATS `INFO` line within the deadline.
 * nats.js leaves a socket that has not connected (or not been greeted) by its timeout open until
 * the OS or the peer closes it, which would keep `status` running long after it has printed; a
 * socket of our own can be closed at once.
 */
async function firstAnswering(servers: readonly string[], timeoutMs: number): Promise<string> {
  let reason = "no server in the URL";
  for (const server of servers) {
    const hp = hostPort(server);
    if (!hp) {
      reason = `cannot read host and port from ${redactUrl(server)}`;
      continue;
    }
    const error = await new Promise<string | null>((resolve) => {
      const socket = tcpConnect({ host: hp.host, port: hp.port });
      const timer = setTimeout(() => (socket.destroy(), resolve(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
      let greeting = "";
      socket.on("data", (d: Buffer) => {
        greeting += d.toString("latin1");
        if (!greeting.includes("\n")) return;
        clearTimeout(timer);
        socket.destroy();
        resolve(greeting.startsWith("INFO ") ? null : "the server did not greet as NATS does");
      });
      socket.once("error", (err: NodeJS.ErrnoException) => (clearTimeout(timer), resolve(err.code === "ECONNREFUSED" ? "connection refused" : err.message)));
      socket.once("close", () => (clearTimeout(timer), resolve("the server closed the connection")));
    });
    if (error === null) return server;
    reason = error;
  }
  throw new Error(reason);
}
