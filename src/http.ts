/**
 * The HTTP endpoints of a running topology: `/metrics` (Prometheus text), `/healthz` (liveness),
 * `/readyz` (readiness) and `GET /features/<customer_id>[?as_of=YYYY-MM-DD]`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { FeatureRow } from "./features.js";
import { parseDay } from "./timestamps.js";
import type { Logger } from "./log.js";
import { ConfigError } from "./errors.js";

export interface HttpListen {
  readonly host: string;
  readonly port: number;
}

/** What the endpoints read from the topology. */
export interface HttpBackend {
  metrics(): Promise<{ contentType: string; body: string }>;
  /** Liveness: false once the pipeline has failed. */
  health(): { ok: boolean; reason?: string };
  /** Readiness: connected to the broker, storage writable, pipeline running. */
  ready(): { ok: boolean; reason?: string };
  /** Features of one customer as of `asOf` (epoch ms; undefined = now), or null when not listed. */
  features(customerId: string, asOf: number | undefined): FeatureRow | null;
}

/** Parses `HOST:PORT` (or `:PORT`, or `off`). Returns null for `off`. */
export function parseListen(value: string): HttpListen | null {
  if (value === "off" || value === "false") return null;
  const m = /^(?:\[?([^\]]*)\]?)?:(\d{1,5})$/.exec(value.trim());
  if (!m || Number(m[2]) > 65_535) throw new ConfigError(`http listen address must be HOST:PORT or off, got "${value}"`);
  return { host: m[1] || "127.0.0.1", port: Number(m[2]) };
}

function send(res: ServerResponse, status: number, body: unknown, contentType = "application/json"): void {
  const text = typeof body === "string" ? body : JSON.stringify(body) + "\n";
  res.writeHead(status, { "content-type": contentType, "cache-control": "no-store" });
  res.end(text);
}

/** Starts the HTTP server. Resolves with the address it listens on (port 0 picks a free one). */
export async function startHttpServer(listen: HttpListen, backend: HttpBackend, log: Logger): Promise<{ server: Server; address: HttpListen }> {
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, { error: "method not allowed" });
    if (url.pathname === "/metrics") {
      const m = await backend.metrics();
      return send(res, 200, m.body, m.contentType);
    }
    if (url.pathname === "/healthz") {
      const h = backend.health();
      return send(res, h.ok ? 200 : 503, h.ok ? { status: "ok" } : { status: "failed", reason: h.reason });
    }
    if (url.pathname === "/readyz") {
      const r = backend.ready();
      return send(res, r.ok ? 200 : 503, r.ok ? { status: "ready" } : { status: "not ready", reason: r.reason });
    }
    const feature = /^\/features\/([^/]+)$/.exec(url.pathname);
    if (feature) {
      const customerId = decodeURIComponent(feature[1]!);
      const asOfParam = url.searchParams.get("as_of");
      let asOf: number | undefined;
      if (asOfParam !== null) {
        const day = parseDay(asOfParam);
        if (day === null) return send(res, 400, { error: "as_of must be a date as YYYY-MM-DD", as_of: asOfParam });
        asOf = day;
      }
      const row = backend.features(customerId, asOf);
      return row ? send(res, 200, row) : send(res, 404, { error: "customer not found", customer_id: customerId });
    }
    return send(res, 404, { error: "not found", endpoints: ["/metrics", "/healthz", "/readyz", "/features/<customer_id>?as_of=YYYY-MM-DD"] });
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((err: Error) => {
      log.warn({ event: "http_error", path: req.url?.split("?")[0], reason: err.message }, "HTTP request failed");
      if (!res.headersSent) send(res, 500, { error: err.message });
      else res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(new ConfigError(`cannot listen on ${listen.host}:${listen.port}: ${err.code ?? err.message}`)),
    );
    server.listen(listen.port, listen.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const address = { host: addr.address, port: addr.port };
  log.info({ event: "http_listening", ...address }, `serving /metrics, /healthz, /readyz and /features on ${address.host}:${address.port}`);
  return { server, address };
}
