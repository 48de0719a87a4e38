/**
 * HTTP access through the real daemon: `tributary run` against a real nats-server, with
 * `http.token` from a config file (`${ENV}`), a port already in use, and a non-loopback address
 * without a token.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { createServer, type Server as TcpServer } from "node:net";
import { join } from "node:path";
import type { ChildProcess } from "node:child_process";
import { generateWorkload } from "../src/sources/generator.js";
import { freePort, startNatsServer, type NatsServer } from "../src/testing/nats-server.js";
import { runCli, startCli, type CliResult } from "./helpers/cli.js";
import { publishToStream } from "./helpers/stream.js";
import { tempDirs } from "./helpers/tmp.js";

const tempDir = tempDirs("http-e2e");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TOKEN = "d1f0c3b2a5e4f7a6b9c8d1e0f3a2b5c4";

async function waitUntil(what: string, cond: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** The daemon's stderr so far, as it arrives. */
function stderrOf(proc: ChildProcess): () => string {
  let text = "";
  proc.stderr!.on("data", (d) => (text += d));
  return () => text;
}

describe("tributary run with http.token", () => {
  let server: NatsServer;
  let daemon: { proc: ChildProcess; result: Promise<CliResult> };
  let stderr: () => string;
  let base: string;
  let config: string;
  let published: number;

  const get = async (path: string, token?: string) => {
    const res = await fetch(base + path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    return { status: res.status, headers: res.headers, body: await res.text() };
  };

  beforeAll(async () => {
    server = await startNatsServer();
    published = await publishToStream(server.url, generateWorkload({ seed: 11, messages: 3_000 }));
    const dir = tempDir();
    config = join(dir, "tributary.yaml");
    writeFileSync(config, `nats:\n  url: ${server.url}\ndataDir: ${join(dir, "data")}\nhttp:\n  token: \${HTTP_TOKEN}\n`);
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    daemon = startCli(["run", "--config", config, "--http", `127.0.0.1:${port}`], { HTTP_TOKEN: TOKEN, TRIBUTARY_LOG_LEVEL: "info" });
    stderr = stderrOf(daemon.proc);
    await waitUntil("/healthz", async () => (await get("/healthz")).status === 200);
    await waitUntil("/readyz with the token", async () => (await get("/readyz", TOKEN)).status === 200);
  });
  afterAll(async () => {
    daemon?.proc.kill("SIGKILL");
    await server?.stop();
  });

  it("answers /healthz without the token, and everything else only with it", async () => {
    expect(JSON.parse((await get("/healthz")).body)).toEqual({ status: "ok" });
    for (const path of ["/readyz", "/metrics", "/features/1000001", "/no-such-endpoint"]) {
      for (const token of [undefined, "not-the-token"]) {
        const r = await get(path, token);
        expect(r.status, `${path} with ${token ?? "no token"}`).toBe(401);
        expect(r.headers.get("www-authenticate")).toMatch(/^Bearer /);
        expect(JSON.parse(r.body)).toEqual({ error: "unauthorized" });
      }
    }
    expect(JSON.parse((await get("/readyz", TOKEN)).body)).toEqual({ status: "ready" });
    const metrics = async () => (await get("/metrics", TOKEN)).body;
    const bronze = (text: string) => [...text.matchAll(/^tributary_messages_total\{layer="bronze",entity="[^"]+"\} (\d+)/gm)].reduce((a, m) => a + Number(m[1]), 0);
    await waitUntil("bronze to hold every message", async () => bronze(await metrics()) === published);
    await waitUntil("gold to list customer 1000001", async () => (await get("/features/1000001", TOKEN)).status === 200);
    expect(JSON.parse((await get("/features/1000001", TOKEN)).body)).toMatchObject({ customer_id: "1000001" });
    expect((await get("/features/%E0%A4%A", TOKEN)).status).toBe(400);
  });

  it("never logs the token, and config check masks it", async () => {
    expect(stderr()).toMatch(/"event":"http_listening"/);
    expect(stderr()).toMatch(/"auth":"bearer"/);
    expect(stderr()).not.toContain(TOKEN);
    expect(stderr()).not.toMatch(/"event":"http_unauthenticated"/);
    const check = await runCli(["config", "check", config], { HTTP_TOKEN: TOKEN });
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout).not.toContain(TOKEN);
    expect(JSON.parse(check.stdout).http).toMatchObject({ token: "***" });
  });

  it("stops on SIGTERM with exit 0", async () => {
    daemon.proc.kill("SIGTERM");
    const r = await daemon.result;
    expect(r.code, r.stderr.slice(-1000)).toBe(0);
  });
});

describe("tributary run and its HTTP address", () => {
  let server: NatsServer;
  let occupier: TcpServer;
  let busyPort: number;
  beforeAll(async () => {
    server = await startNatsServer();
    occupier = createServer();
    await new Promise<void>((r) => occupier.listen(0, "127.0.0.1", () => r()));
    busyPort = (occupier.address() as { port: number }).port;
  });
  afterAll(async () => {
    await new Promise<void>((r) => occupier.close(() => r()));
    await server?.stop();
  });

  it("reports a port already in use as that, naming the setting, with exit 2", async () => {
    const line = `tributary: http error: 127.0.0.1:${busyPort} is already in use; set http.listen (or --http) to another HOST:PORT, or off`;
    const flag = await runCli(["run", "--nats", server.url, "--data-dir", join(tempDir(), "data"), "--http", `127.0.0.1:${busyPort}`]);
    expect(flag.code, flag.stderr).toBe(2);
    expect(flag.stderr.trim().split("\n")).toContain(line);
    expect(flag.stderr).not.toMatch(/config error|EADDRINUSE|\n\s+at /);

    const dir = tempDir();
    writeFileSync(join(dir, "tributary.yaml"), `http:\n  listen: 127.0.0.1:${busyPort}\n`);
    const fromConfig = await runCli(["run", "--config", join(dir, "tributary.yaml"), "--nats", server.url, "--data-dir", join(dir, "data")], { TRIBUTARY_HTTP_LISTEN: "" });
    expect(fromConfig.code, fromConfig.stderr).toBe(2);
    expect(fromConfig.stderr.trim().split("\n")).toContain(line);
  });

  it("warns at startup when it serves beyond loopback without a token", async () => {
    const port = await freePort();
    const daemon = startCli(["run", "--nats", server.url, "--data-dir", join(tempDir(), "data"), "--http", `0.0.0.0:${port}`]);
    const stderr = stderrOf(daemon.proc);
    try {
      await waitUntil("the warning", async () => /"event":"http_unauthenticated"/.test(stderr()));
      const warning = JSON.parse(stderr().split("\n").find((l) => l.includes('"event":"http_unauthenticated"'))!);
      expect(warning).toMatchObject({ level: 40, host: "0.0.0.0", port });
      expect(warning.msg).toMatch(/http\.token/);
      // It serves, unauthenticated, as warned.
      await waitUntil("/readyz", async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200);
    } finally {
      daemon.proc.kill("SIGTERM");
    }
    const r = await daemon.result;
    expect(r.code, r.stderr.slice(-1000)).toBe(0);
  });
});
