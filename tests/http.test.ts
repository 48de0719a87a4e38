/**
 * The HTTP server against real sockets: `startHttpServer` on a free loopback port with a plain
 * backend object (no NATS, no SQLite behind it). Bearer-token access, request size and time
 * limits, errors without internals, the warning for an unauthenticated non-loopback address, and
 * a port already in use.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { connect, createServer as createTcpServer, type Server as TcpServer } from "node:net";
import type { Server } from "node:http";
import { Writable } from "node:stream";
import { pino } from "pino";
import { HTTP_LIMITS, isLoopback, startHttpServer, type HttpBackend, type HttpServerOptions } from "../src/http.js";
import { HttpListenError } from "../src/errors.js";
import { configKeyPaths, envOverrides, maskSecrets, parseConfig } from "../src/config.js";
import type { FeatureRow } from "../src/features.js";

const TOKEN = "0f3c2a9e8b7d6c5e4f3a2b1c0d9e8f7a";
const ROW = { customer_id: "c-1", total_spend: 12.5 } as unknown as FeatureRow;

/** A logger whose JSON lines the test can read. */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split("\n")) if (l) lines.push(JSON.parse(l));
      done();
    },
  });
  return { log: pino({ level: "info" }, stream), lines };
}

interface Fake {
  backend: HttpBackend;
  calls: { features: string[]; asOf: (number | undefined)[] };
  failMetrics?: Error;
  failure?: string;
}

function fakeBackend(): Fake {
  const fake: Fake = {
    calls: { features: [], asOf: [] },
    backend: {
      metrics: async () => {
        if (fake.failMetrics) throw fake.failMetrics;
        return { contentType: "text/plain; version=0.0.4", body: "tributary_up 1\n" };
      },
      health: () => (fake.failure ? { ok: false, reason: fake.failure } : { ok: true }),
      ready: () => ({ ok: true }),
      features: (id, asOf) => {
        fake.calls.features.push(id);
        fake.calls.asOf.push(asOf);
        return id === "c-1" ? ROW : null;
      },
    },
  };
  return fake;
}

const servers: Server[] = [];
async function serve(options: HttpServerOptions = {}, host = "127.0.0.1") {
  const fake = fakeBackend();
  const { log, lines } = capturingLogger();
  const { server, address } = await startHttpServer({ host, port: 0 }, fake.backend, log, options);
  servers.push(server);
  return { fake, lines, server, base: `http://127.0.0.1:${address.port}`, port: address.port };
}
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

async function get(url: string, headers: Record<string, string> = {}, method = "GET") {
  const res = await fetch(url, { headers, method });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** Sends raw bytes and collects everything the server answers until it closes the connection. */
function raw(port: number, request: string | Buffer, timeoutMs = 10_000): Promise<{ text: string; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    let text = "";
    const socket = connect(port, "127.0.0.1", () => socket.write(request));
    socket.on("data", (d) => (text += d));
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ text, closedAfterMs: Date.now() - t0 });
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server kept the connection open for ${timeoutMs} ms; got: ${text.slice(0, 200)}`));
    }, timeoutMs);
  });
}
const statusOf = (response: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1]);

describe("bearer token (http.token)", () => {
  it("without a token, every endpoint answers", async () => {
    const { base } = await serve();
    expect((await get(`${base}/metrics`)).status).toBe(200);
    expect((await get(`${base}/healthz`)).status).toBe(200);
    expect((await get(`${base}/readyz`)).status).toBe(200);
    expect(JSON.parse((await get(`${base}/features/c-1`)).text)).toEqual(ROW);
    expect((await get(`${base}/nothing-here`)).status).toBe(404);
  });

  it("guards every endpoint but /healthz: 401 with WWW-Authenticate and no detail", async () => {
    const { base, fake } = await serve({ token: TOKEN });
    for (const path of ["/metrics", "/readyz", "/features/c-1", "/features/c-1?as_of=2026-01-01", "/nothing-here", "/"]) {
      for (const headers of [{}, { authorization: `Bearer wrong-${TOKEN}` }, { authorization: `Bearer ${TOKEN.slice(1)}` }, { authorization: `Basic ${TOKEN}` }, { authorization: TOKEN }]) {
        const r = await get(base + path, headers);
        expect(r.status, `${path} ${JSON.stringify(headers)}`).toBe(401);
        expect(r.headers.get("www-authenticate"), path).toMatch(/^Bearer realm="tributary"/);
        expect(JSON.parse(r.text)).toEqual({ error: "unauthorized" });
      }
    }
    // Nothing behind the guard ran.
    expect(fake.calls.features).toEqual([]);
    expect((await get(`${base}/metrics`, { authorization: "Bearer nope" })).headers.get("www-authenticate")).toContain('error="invalid_token"');
    expect((await get(`${base}/healthz`)).status).toBe(200);
  });

  it("lets the right token through, with the scheme in any case", async () => {
    const { base } = await serve({ token: TOKEN });
    const auth = { authorization: `Bearer ${TOKEN}` };
    const metrics = await get(`${base}/metrics`, auth);
    expect(metrics.status).toBe(200);
    expect(metrics.text).toBe("tributary_up 1\n");
    expect((await get(`${base}/readyz`, auth)).status).toBe(200);
    expect(JSON.parse((await get(`${base}/features/c-1`, auth)).text)).toEqual(ROW);
    expect((await get(`${base}/features/c-2`, auth)).status).toBe(404);
    expect((await get(`${base}/nothing-here`, auth)).status).toBe(404);
    expect((await get(`${base}/metrics`, { authorization: `bearer ${TOKEN}` })).status).toBe(200);
  });

  it("tells an unauthenticated /healthz only that the pipeline failed, not why", async () => {
    const { base, fake } = await serve({ token: TOKEN });
    fake.failure = "cannot commit /var/lib/tributary/gold.sqlite: SQLITE_FULL";
    const anonymous = await get(`${base}/healthz`);
    expect(anonymous.status).toBe(503);
    expect(JSON.parse(anonymous.text)).toEqual({ status: "failed" });
    const operator = await get(`${base}/healthz`, { authorization: `Bearer ${TOKEN}` });
    expect(JSON.parse(operator.text)).toEqual({ status: "failed", reason: fake.failure });
  });

  it("is a config key: validated, masked by config check, and settable as TRIBUTARY_HTTP_TOKEN", () => {
    expect(parseConfig({ http: { token: TOKEN } }).http.token).toBe(TOKEN);
    expect(parseConfig({}).http.token).toBeUndefined();
    expect(maskSecrets(parseConfig({ http: { token: TOKEN } })).http.token).toBe("***");
    expect(JSON.stringify(maskSecrets(parseConfig({ http: { token: TOKEN } })))).not.toContain(TOKEN);
    // An empty ${VAR} or a pasted trailing newline must not silently turn the guard off.
    expect(() => parseConfig({ http: { token: "" } })).toThrow(/^http\.token: expected a bearer token/);
    expect(() => parseConfig({ http: { token: `${TOKEN}\n` } })).toThrow(/^http\.token:/);
    expect(configKeyPaths()).toContainEqual(["http", "token"]);
    expect(envOverrides({ TRIBUTARY_HTTP_TOKEN: TOKEN })).toEqual({ http: { token: TOKEN } });
  });
});

describe("request limits", () => {
  it("serves with the documented limits", async () => {
    const { server } = await serve();
    expect(server.headersTimeout).toBe(HTTP_LIMITS.headersTimeoutMs);
    expect(server.requestTimeout).toBe(HTTP_LIMITS.requestTimeoutMs);
    expect(server.keepAliveTimeout).toBe(HTTP_LIMITS.keepAliveTimeoutMs);
    expect(server.maxConnections).toBe(HTTP_LIMITS.maxConnections);
    expect(server.maxHeadersCount).toBeNull();
    expect(HTTP_LIMITS.headersTimeoutMs).toBeLessThanOrEqual(HTTP_LIMITS.requestTimeoutMs);
  });

  it("rejects any request with a body (413) and closes the connection", async () => {
    const { port, fake } = await serve();
    const withLength = await raw(port, "GET /features/c-1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    expect(statusOf(withLength.text)).toBe(413);
    expect(withLength.text).toMatch(/\r\nconnection: close\r\n/i);
    const chunked = await raw(port, "POST /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    expect(statusOf(chunked.text)).toBe(413);
    const huge = await raw(port, "PUT /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 4294967296\r\n\r\n");
    expect(statusOf(huge.text)).toBe(413);
    expect(fake.calls.features).toEqual([]);
  });

  it("answers 405 to other methods without a body", async () => {
    const { base } = await serve();
    const r = await get(`${base}/metrics`, {}, "DELETE");
    expect(r.status).toBe(405);
    expect(r.headers.get("allow")).toBe("GET, HEAD");
    expect((await get(`${base}/healthz`, {}, "HEAD")).status).toBe(200);
  });

  it("rejects a request target longer than the cap (414) and headers beyond the header limit (431)", async () => {
    const { base, port } = await serve();
    const long = await get(`${base}/features/${"a".repeat(HTTP_LIMITS.maxUrlBytes)}`);
    expect(long.status).toBe(414);
    expect(long.text).not.toContain("aaaa");
    const headers = await raw(port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: ${"b".repeat(HTTP_LIMITS.maxHeaderBytes)}\r\n\r\n`);
    expect(statusOf(headers.text)).toBe(431);
    // Many small headers count together.
    const many = Array.from({ length: 400 }, (_, i) => `X-H${i}: ${"c".repeat(20)}\r\n`).join("");
    expect(statusOf((await raw(port, `GET /healthz HTTP/1.1\r\nHost: x\r\n${many}\r\n`)).text)).toBe(431);
  });

  it("cuts off a slow-loris client that never finishes its headers, and a silent one", async () => {
    const { port } = await serve({ limits: { headersTimeoutMs: 800, requestTimeoutMs: 1_600 } });
    const t0 = Date.now();
    const slow = new Promise<{ text: string; closedAfterMs: number }>((resolve) => {
      let text = "";
      const socket = connect(port, "127.0.0.1", () => socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
      // One more header line every 100 ms, forever: the connection is never idle.
      const drip = setInterval(() => socket.writable && socket.write(`X-Drip-${Date.now()}: 1\r\n`), 100);
      socket.on("data", (d) => (text += d));
      socket.on("error", () => undefined);
      socket.on("close", () => {
        clearInterval(drip);
        resolve({ text, closedAfterMs: Date.now() - t0 });
      });
    });
    const silent = raw(port, Buffer.alloc(0));
    const [s, q] = await Promise.all([slow, silent]);
    expect(statusOf(s.text)).toBe(408);
    expect(s.closedAfterMs).toBeLessThan(8_000);
    expect(statusOf(q.text)).toBe(408);
  });
});

describe("errors", () => {
  it("answers a failure with a generic message and a request id, and logs the detail", async () => {
    const { base, fake, lines } = await serve();
    fake.failMetrics = new Error("SQLITE_CORRUPT: database disk image is malformed (/var/lib/tributary/bronze.sqlite)");
    const r = await get(`${base}/metrics`);
    expect(r.status).toBe(500);
    const body = JSON.parse(r.text);
    expect(body).toEqual({ error: "internal error", request_id: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(r.headers.get("x-request-id")).toBe(body.request_id);
    expect(r.text).not.toMatch(/SQLITE|\/var\/lib|at .*\.js|Error:/);
    const logged = lines.find((l) => l.event === "http_error");
    expect(logged).toMatchObject({ requestId: body.request_id, path: "/metrics", reason: fake.failMetrics.message });
  });

  it("answers malformed percent-encoding in a customer id with 400, not 500", async () => {
    const { base, fake } = await serve();
    for (const path of ["/features/%E0%A4%A", "/features/%", "/features/%zz", "/features/%C0%AF"]) {
      const r = await get(base + path);
      expect(r.status, path).toBe(400);
      expect(JSON.parse(r.text)).toEqual({ error: "the customer id is not valid percent-encoded UTF-8" });
    }
    expect(fake.calls.features).toEqual([]);
    // A valid encoding still reaches the backend, decoded.
    expect((await get(`${base}/features/${encodeURIComponent("c/1 é")}`)).status).toBe(404);
    expect(fake.calls.features).toEqual(["c/1 é"]);
  });

  it("answers a request target that is not a path with 400", async () => {
    const { port } = await serve();
    expect(statusOf((await raw(port, "GET http://[broken HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).text)).toBe(400);
  });
});

describe("/features/<id>?as_of=", () => {
  it("takes a day (00:00Z) or an ISO-8601 instant, and answers 400 to anything else", async () => {
    const { base, fake } = await serve();
    expect((await fetch(`${base}/features/c-1?as_of=2026-11-20`)).status).toBe(200);
    expect((await fetch(`${base}/features/c-1?as_of=2026-11-20T13:37:00Z`)).status).toBe(200);
    expect((await fetch(`${base}/features/c-1?as_of=2026-11-20T15:37:00%2B02:00`)).status).toBe(200);
    expect(fake.calls.asOf).toEqual([Date.UTC(2026, 10, 20), Date.UTC(2026, 10, 20, 13, 37), Date.UTC(2026, 10, 20, 13, 37)]);
    for (const bad of ["yesterday", "2026-13-01", "2026-11-20T25:00:00Z", "1700000000000"]) {
      const res = await fetch(`${base}/features/c-1?as_of=${encodeURIComponent(bad)}`);
      expect(res.status, bad).toBe(400);
    }
  });
});

describe("listening", () => {
  it("warns at startup when it serves a non-loopback address without a token", async () => {
    const open = await serve({}, "0.0.0.0");
    const warning = open.lines.find((l) => l.event === "http_unauthenticated");
    expect(warning).toMatchObject({ level: 40, host: "0.0.0.0", port: open.port });
    expect(String(warning!.msg)).toMatch(/http\.token/);

    const guarded = await serve({ token: TOKEN }, "0.0.0.0");
    expect(guarded.lines.some((l) => l.event === "http_unauthenticated")).toBe(false);
    expect(JSON.stringify(guarded.lines)).not.toContain(TOKEN);
    const loopback = await serve({}, "127.0.0.1");
    expect(loopback.lines.some((l) => l.event === "http_unauthenticated")).toBe(false);
  });

  it("counts 127.0.0.0/8, ::1 and localhost as loopback, and nothing else", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST", "::ffff:127.0.0.1"]) expect(isLoopback(h), h).toBe(true);
    for (const h of ["0.0.0.0", "::", "10.0.0.1", "192.168.1.10", "::ffff:10.0.0.1", "127.example.com", "fe80::1", ""]) expect(isLoopback(h), h).toBe(false);
  });

  describe("a port already in use", () => {
    let occupier: TcpServer;
    let port: number;
    beforeAll(async () => {
      occupier = createTcpServer();
      await new Promise<void>((r) => occupier.listen(0, "127.0.0.1", () => r()));
      port = (occupier.address() as { port: number }).port;
    });
    afterAll(() => new Promise<void>((r) => occupier.close(() => r())));

    it("is an HttpListenError that says so, without CLI advice (the CLI adds the setting and the flag)", async () => {
      const { log } = capturingLogger();
      const err = await startHttpServer({ host: "127.0.0.1", port }, fakeBackend().backend, log).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HttpListenError);
      expect((err as Error).message).toBe(`127.0.0.1:${port} is already in use`);
    });
  });
});
