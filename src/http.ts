/**
 * The HTTP endpoints of a running topology: `/metrics` (Prometheus text), `/healthz` (liveness),
 * `/readyz` (readiness) and `GET /features/<customer_id>[?as_of=YYYY-MM-DD or an ISO-8601 instant]`.
 *
 * Every request is untrusted: it is size- and time-limited, an optional bearer token
 * (`http.token`) guards every endpoint but `/healthz`, and an error answers with a generic message
 * and a request id, never with a stack trace or an internal message (those go to the log).
 */
import { createHash, randomUUID, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { isIP, type AddressInfo } from "node:net";
import { Worker } from "node:worker_threads";
import type { FeatureRow } from "./features.js";
import { parseAsOf } from "./timestamps.js";
import type { Logger } from "./log.js";
import { ConfigError, HttpListenError, SilverHorizonError } from "./errors.js";
import type { FeatureSource } from "./serving/features.js";
import { threadModule } from "./runtime/committer.js";

export interface HttpListen {
  readonly host: string;
  readonly port: number;
}

/** What the endpoints read from the topology. */
export interface HttpBackend {
  metrics(): Promise<{ contentType: string; body: string }>;
  /** Liveness: false once the pipeline has failed. */
  health(): Health | Promise<Health>;
  /** Readiness: connected to the broker, storage writable, pipeline running. */
  ready(): Health | Promise<Health>;
  /** Features of one customer as of `asOf` (epoch ms; undefined = now), or null when not listed. */
  features(customerId: string, asOf: number | undefined): FeatureRow | null;
}

interface Health {
  ok: boolean;
  reason?: string;
}

/** What the server logs with: a pino logger, or one that forwards to it from another thread. */
export type HttpLog = Pick<Logger, "info" | "warn" | "error">;

/**
 * Limits on every request and connection. The API is GET-only and its requests are a line and a
 * few headers, so the limits are small; they are constants, not configuration.
 */
export interface HttpLimits {
  /** Bytes of the request line and headers together (Node answers 431 above it). */
  readonly maxHeaderBytes: number;
  /** Bytes of the request target, path and query (414 above it). */
  readonly maxUrlBytes: number;
  /** Time a client has to send its complete headers (a slow-loris client is cut off after it). */
  readonly headersTimeoutMs: number;
  /** Time a client has to send its complete request. */
  readonly requestTimeoutMs: number;
  /** How long an idle keep-alive connection stays open. */
  readonly keepAliveTimeoutMs: number;
  /** Open connections at once; further ones are closed at once. */
  readonly maxConnections: number;
}

/** The limits `tributary run` serves with. */
export const HTTP_LIMITS: HttpLimits = {
  maxHeaderBytes: 8 * 1024,
  maxUrlBytes: 2 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 15_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 128,
};

export interface HttpServerOptions {
  /** Bearer token required on every endpoint but `/healthz`; undefined serves without one. */
  readonly token?: string;
  /** Overrides of {@link HTTP_LIMITS} (tests use short timeouts). */
  readonly limits?: Partial<HttpLimits>;
}

/** Parses `HOST:PORT` (or `:PORT`, or `off`). Returns null for `off`. */
export function parseListen(value: string): HttpListen | null {
  if (value === "off" || value === "false") return null;
  const m = /^(?:\[?([^\]]*)\]?)?:(\d{1,5})$/.exec(value.trim());
  if (!m || Number(m[2]) > 65_535) throw new ConfigError(`http listen address must be HOST:PORT or off, got "${value}"`);
  return { host: m[1] || "127.0.0.1", port: Number(m[2]) };
}

/** `HOST:PORT`, with an IPv6 host in brackets. */
export function formatListen(listen: HttpListen): string {
  return isIP(listen.host) === 6 ? `[${listen.host}]:${listen.port}` : `${listen.host}:${listen.port}`;
}

/**
 * Whether a host is reachable only from this machine: `localhost`, 127.0.0.0/8 or ::1 (also as an
 * IPv4-mapped address). `0.0.0.0`, `::` and every other address are not.
 *
 * @example
 * isLoopback("127.0.0.1"); // true
 * isLoopback("0.0.0.0");   // false
 */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  if (h === "localhost" || h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  const v4 = h.startsWith("::ffff:") ? h.slice("::ffff:".length) : h;
  return isIP(v4) === 4 && v4.startsWith("127.");
}

const sha256 = (s: string) => createHash("sha256").update(s, "utf8").digest();

/**
 * A constant-time check of `Authorization: Bearer <token>`. Both sides are hashed first, so the
 * comparison takes the same time whatever the length or content of what the client sent.
 */
function bearerCheck(token: string): (header: string | undefined) => "ok" | "missing" | "invalid" {
  const expected = sha256(token);
  return (header) => {
    const m = header === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    if (!m) return header === undefined ? "missing" : "invalid";
    return timingSafeEqual(sha256(m[1]!), expected) ? "ok" : "invalid";
  };
}

const ENDPOINTS = ["/metrics", "/healthz", "/readyz", "/features/<customer_id>?as_of=YYYY-MM-DD"];

function send(res: ServerResponse, status: number, body: unknown, contentType = "application/json", headers: Record<string, string> = {}): void {
  const text = typeof body === "string" ? body : JSON.stringify(body) + "\n";
  // A length instead of chunked encoding: one write, and clients know where the answer ends.
  res.writeHead(status, { "content-type": contentType, "content-length": Buffer.byteLength(text), "cache-control": "no-store", "x-content-type-options": "nosniff", ...headers });
  res.end(text);
}

/** Whether a request carries a body: the API is GET-only, and no endpoint reads one. */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

/**
 * Starts the HTTP server. Resolves with the address it listens on (port 0 picks a free one).
 *
 * @throws HttpListenError when it cannot listen there (the port is in use, say).
 */
export async function startHttpServer(
  listen: HttpListen,
  backend: HttpBackend,
  log: HttpLog,
  options: HttpServerOptions = {},
): Promise<{ server: Server; address: HttpListen }> {
  const limits = { ...HTTP_LIMITS, ...options.limits };
  const authorize = options.token !== undefined ? bearerCheck(options.token) : null;

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const target = req.url ?? "/";
    if (Buffer.byteLength(target) > limits.maxUrlBytes) {
      return send(res, 414, { error: `the request target is longer than ${limits.maxUrlBytes} bytes` });
    }
    if (hasBody(req)) {
      // Answer without reading the body, then close: what was sent after the headers is not a request.
      return send(res, 413, { error: "request bodies are not accepted" }, undefined, { connection: "close" });
    }
    if (!target.startsWith("/")) return send(res, 400, { error: "the request target must be a path" });
    const q = target.indexOf("?");
    const pathname = q < 0 ? target : target.slice(0, q);
    const query = q < 0 ? null : new URLSearchParams(target.slice(q + 1));

    const auth = authorize ? authorize(req.headers.authorization) : "ok";
    if (pathname !== "/healthz" && auth !== "ok") {
      const challenge = auth === "missing" ? 'Bearer realm="tributary"' : 'Bearer realm="tributary", error="invalid_token"';
      return send(res, 401, { error: "unauthorized" }, undefined, { "www-authenticate": challenge });
    }
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, { error: "method not allowed" }, undefined, { allow: "GET, HEAD" });

    if (pathname === "/metrics") {
      const m = await backend.metrics();
      return send(res, 200, m.body, m.contentType);
    }
    if (pathname === "/healthz") {
      const h = await backend.health();
      // /healthz answers without the token, so the reason (an internal message) only with it.
      const failed = auth === "ok" ? { status: "failed", reason: h.reason } : { status: "failed" };
      return send(res, h.ok ? 200 : 503, h.ok ? { status: "ok" } : failed);
    }
    if (pathname === "/readyz") {
      const r = await backend.ready();
      return send(res, r.ok ? 200 : 503, r.ok ? { status: "ready" } : { status: "not ready", reason: r.reason });
    }
    const feature = /^\/features\/([^/]+)$/.exec(pathname);
    if (feature) {
      let customerId: string;
      try {
        customerId = decodeURIComponent(feature[1]!);
      } catch {
        return send(res, 400, { error: "the customer id is not valid percent-encoded UTF-8" });
      }
      const asOfParam = query?.get("as_of") ?? null;
      let asOf: number | undefined;
      if (asOfParam !== null) {
        const t = parseAsOf(asOfParam);
        if (t === null) return send(res, 400, { error: "as_of must be a date as YYYY-MM-DD or an ISO-8601 time", as_of: asOfParam });
        asOf = t;
      }
      let row: ReturnType<typeof backend.features>;
      try {
        row = backend.features(customerId, asOf);
      } catch (err) {
        // An as_of that silver retention no longer allows: the message names the horizon.
        if (err instanceof SilverHorizonError) return send(res, 422, { error: err.message, as_of: asOfParam });
        throw err;
      }
      return row ? send(res, 200, row) : send(res, 404, { error: "customer not found", customer_id: customerId });
    }
    return send(res, 404, { error: "not found", endpoints: ENDPOINTS });
  };

  const server = createServer(
    {
      maxHeaderSize: limits.maxHeaderBytes,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // How often Node checks the two timeouts above (default 30 s, longer than either).
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4))),
    },
    (req, res) => {
      const requestId = randomUUID();
      res.setHeader("x-request-id", requestId);
      handle(req, res).catch((err: unknown) => {
        // The detail (a path, SQL, a stack) is for the operator's log, not for the client.
        log.error(
          { event: "http_error", requestId, path: req.url?.split("?")[0]?.slice(0, 200), reason: (err as Error)?.message, stack: (err as Error)?.stack },
          "HTTP request failed",
        );
        if (!res.headersSent) send(res, 500, { error: "internal error", request_id: requestId });
        else res.destroy();
      });
    },
  );
  // headersTimeout also closes a connection that sends nothing at all (Node answers 408).
  server.maxConnections = limits.maxConnections;

  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => reject(listenError(listen, err)));
    server.listen(listen.port, listen.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const address = { host: addr.address, port: addr.port };
  log.info({ event: "http_listening", ...address, auth: authorize ? "bearer" : "none" }, `serving /metrics, /healthz, /readyz and /features on ${formatListen(address)}`);
  if (!authorize && !isLoopback(address.host)) {
    log.warn(
      { event: "http_unauthenticated", ...address },
      `HTTP on ${formatListen(address)} is reachable from other hosts without a token: anyone who can connect reads /metrics and customer features; set http.token, or listen on 127.0.0.1`,
    );
  }
  return { server, address };
}

/** A running HTTP server, wherever it runs. */
export interface HttpHandle {
  readonly address: HttpListen;
  /** Closes every connection and stops listening. */
  close(): Promise<void>;
}

/** Messages between the HTTP thread (`serving/http-thread.ts`) and the thread that started it. */
export type HttpThreadMessage =
  | { readonly type: "listening"; readonly address: HttpListen }
  | { readonly type: "failed"; readonly name: string; readonly message: string }
  | { readonly type: "ask"; readonly id: number; readonly what: "metrics" | "health" | "ready" }
  | { readonly type: "log"; readonly level: "info" | "warn" | "error"; readonly fields: object; readonly message: string }
  | { readonly type: "closed" };

/** What the HTTP thread starts with. */
export interface HttpThreadData {
  readonly listen: HttpListen;
  readonly options: HttpServerOptions;
  readonly lookups: FeatureSource;
}

/**
 * Starts the HTTP server on a thread of its own, which answers `/features/<id>` from its own
 * feature reader over `lookups`: a lookup never waits behind the batch the calling thread (NATS
 * client, and the stages when it runs them) is processing. `/metrics`, `/healthz` and `/readyz` are still answered by
 * `backend` on this thread, asked over the thread's port.
 *
 * @throws HttpListenError when it cannot listen there (the port is in use, say).
 */
export async function startHttpThread(listen: HttpListen, backend: HttpBackend, log: HttpLog, options: HttpServerOptions & { lookups: FeatureSource }): Promise<HttpHandle> {
  const { lookups, ...serverOptions } = options;
  const worker = new Worker(threadModule("serving/http-thread"), {
    workerData: { listen, options: serverOptions, lookups } satisfies HttpThreadData,
    // Its heap holds requests in flight and the reader's cache of as-of lookups.
    resourceLimits: { maxOldGenerationSizeMb: 64 },
  });
  const closed = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
  const answer = async (id: number, what: "metrics" | "health" | "ready") => {
    let value: unknown;
    try {
      value = what === "metrics" ? await backend.metrics() : what === "health" ? await backend.health() : await backend.ready();
    } catch (err) {
      value = { error: (err as Error).message };
    }
    worker.postMessage({ type: "answer", id, value });
  };
  const address = await new Promise<HttpListen>((resolve, reject) => {
    worker.on("message", (m: HttpThreadMessage) => {
      if (m.type === "listening") resolve(m.address);
      else if (m.type === "failed") reject(m.name === "HttpListenError" ? new HttpListenError(m.message) : new Error(m.message));
      else if (m.type === "ask") void answer(m.id, m.what);
      else if (m.type === "log") log[m.level](m.fields, m.message);
    });
    worker.once("error", reject);
    worker.once("exit", (code: number) => reject(new Error(`the HTTP thread exited (code ${code}) before listening`)));
  });
  worker.on("error", (err: Error) => log.error({ event: "http_thread_failed", reason: err.message }, "the HTTP thread failed"));
  return {
    address,
    async close() {
      worker.postMessage({ type: "close" });
      const stuck = setTimeout(() => void worker.terminate(), 5_000);
      await closed;
      clearTimeout(stuck);
    },
  };
}

function listenError(listen: HttpListen, err: NodeJS.ErrnoException): HttpListenError {
  const where = formatListen(listen);
  const message =
    err.code === "EADDRINUSE"
      ? `${where} is already in use`
      : err.code === "EACCES"
        ? `no permission to listen on ${where} (ports below 1024 need privileges)`
        : err.code === "EADDRNOTAVAIL"
          ? `${listen.host} is not an address of this host`
          : err.code === "ENOTFOUND" || err.code === "EAI_AGAIN"
            ? `cannot resolve the host ${listen.host}`
            : `cannot listen on ${where}: ${err.code ?? err.message}`;
  return new HttpListenError(message, { cause: err });
}
