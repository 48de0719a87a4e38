/**
 * An edge service that embeds tributary as a library. It takes customer activity over HTTP,
 * runs it through the full topology (validation, dedupe, bronze/silver/gold in ./edge-data), and
 * serves point-in-time features, with no broker at all.
 *
 *   npm run build && node dist/examples/edge-service.js
 *   curl -X POST localhost:8080/events/transactions -d '{"transaction_id":"t1","customer_id":"c1","amount":12.5,"currency":"EUR","transaction_date":"2026-03-01T10:00:00Z"}'
 *   curl localhost:8080/customers/c1/features
 *   curl 'localhost:8080/customers/c1/features?as_of=2026-03-02'
 */
import { createServer, type IncomingMessage } from "node:http";
import { Subject } from "rxjs";
import { createTopology, ENTITIES, type SourceMessage } from "tributary-stream";

const ORIGIN = "edge:http";
const port = Number(process.env.PORT ?? 8080);
const events = new Subject<SourceMessage>();

const topology = createTopology({
  dataDir: process.env.DATA_DIR ?? "./edge-data",
  source: { kind: "observable", messages: events },
  config: { batch: { maxRecords: 500, maxWait: 20 } },
});
await topology.start();
// Positions continue where bronze left off, so a restart never re-counts or skips a message.
let seq = topology.position(ORIGIN);

async function body(req: IncomingMessage): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? "/", "http://localhost");
  const reply = (status: number, value: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(value) + "\n");
  };
  const post = /^\/events\/([a-z]+)$/.exec(url.pathname);
  if (req.method === "POST" && post) {
    const entity = post[1]!;
    if (!(ENTITIES as readonly string[]).includes(entity)) return reply(404, { error: `unknown entity ${entity}` });
    // The reply waits for the message's ack, which the topology calls only once the message is
    // committed to bronze: a 202 here means durable (silver and gold follow within milliseconds).
    const data = await body(req);
    const originSeq = ++seq;
    const committed = new Promise<void>((resolve) =>
      events.next({
        origin: ORIGIN,
        originSeq,
        subject: `tributary.${entity}`,
        data,
        receivedAt: Date.now(),
        publishedAt: Date.now(),
        contentType: "application/json",
        msgId: null,
        ack: resolve,
      }),
    );
    try {
      await Promise.race([committed, topology.done.then(() => Promise.reject(new Error("the topology stopped before the commit")))]);
    } catch (err) {
      return reply(503, { error: (err as Error).message });
    }
    return reply(202, { committed: originSeq });
  }
  const features = /^\/customers\/([^/]+)\/features$/.exec(url.pathname);
  if (req.method === "GET" && features) {
    const asOf = url.searchParams.get("as_of");
    const at = asOf ? new Date(/^\d{4}-\d{2}-\d{2}$/.test(asOf) ? `${asOf}T00:00:00Z` : asOf) : undefined;
    // features.get throws a RangeError for an invalid time: answer that as the client's mistake.
    if (at !== undefined && Number.isNaN(at.getTime())) return reply(400, { error: "as_of must be YYYY-MM-DD or an ISO-8601 time" });
    const row = topology.features.get(decodeURIComponent(features[1]!), at);
    return row ? reply(200, row) : reply(404, { error: "customer not found" });
  }
  if (req.method === "GET" && url.pathname === "/stats") return reply(200, topology.stats);
  reply(404, { error: "not found" });
});

server.listen(port, "127.0.0.1", () => {
  const address = server.address();
  console.log(`edge service listening on 127.0.0.1:${typeof address === "object" && address ? address.port : port}`);
});

async function shutdown(): Promise<void> {
  server.close();
  events.complete(); // the topology commits what is in flight, then `done` resolves
  const stats = await topology.done;
  console.log(`edge service stopped: ${stats.bronze} messages, ${stats.batches} batches`);
}
process.once("SIGTERM", () => void shutdown());
process.once("SIGINT", () => void shutdown());
