/**
 * Starts a real nats-server (JetStream enabled) on a free 127.0.0.1 port with a temporary store,
 * for tests and benchmarks (ours, and those of services that embed tributary). It needs the
 * `nats-server` binary on PATH. Nothing here mocks NATS.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface NatsServer {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** Stops the server (SIGTERM, then SIGKILL). */
  stop(): Promise<void>;
  /** Stops the server but keeps its store, for an outage. */
  down(): Promise<void>;
  /** Starts it again on the same port and store. */
  up(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = tcpConnect({ port, host: "127.0.0.1" }, () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nats-server did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Starts nats-server; `args` are extra flags (e.g. `["--user", "u", "--pass", "p"]`).
 * `configFile` is a nats-server config (`-c`) for `authorization`, `tls` or operator blocks; the
 * flags above still set the port, address and store. `tls` makes `url` a `tls://` URL, for a
 * config that requires TLS.
 *
 * @example
 * const server = await startNatsServer({ configFile: "tls.conf", tls: true }); // server.url: tls://127.0.0.1:PORT
 */
export async function startNatsServer(
  options: { port?: number; storeDir?: string; args?: readonly string[]; configFile?: string; tls?: boolean } = {},
): Promise<NatsServer> {
  const port = options.port ?? (await freePort());
  const storeDir = options.storeDir ?? mkdtempSync(join(tmpdir(), "tributary-nats-"));
  let proc: ChildProcess | null = null;
  const args = [...(options.configFile ? ["-c", options.configFile] : []), "-js", "-sd", storeDir, "-p", String(port), "-a", "127.0.0.1", ...(options.args ?? [])];
  const launch = async () => {
    const p = spawn("nats-server", args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    p.stderr!.on("data", (d) => (stderr += d));
    const exited = new Promise<never>((_, reject) =>
      p.once("exit", (code) => reject(new Error(`nats-server exited with ${code}: ${stderr.slice(-500)}`))),
    );
    exited.catch(() => undefined);
    p.once("error", () => undefined);
    await Promise.race([waitForPort(port, 10_000), exited]);
    proc = p;
  };
  await launch();
  const stop = async () => {
    const p = proc;
    proc = null;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise<void>((r) => p.once("exit", () => r()));
    p.kill("SIGTERM");
    const t = setTimeout(() => p.kill("SIGKILL"), 5_000);
    await gone;
    clearTimeout(t);
  };
  return {
    url: `${options.tls ? "tls" : "nats"}://127.0.0.1:${port}`,
    port,
    storeDir,
    async stop() {
      await stop();
      if (!options.storeDir) rmSync(storeDir, { recursive: true, force: true });
    },
    async down() {
      await stop();
    },
    async up() {
      await launch();
    },
  };
}
