/** Credentials reach the server but never the logs, errors or `config check` output. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startNatsServer, type NatsServer } from "../src/testing/nats-server.js";
import { runCli } from "./helpers/cli.js";

const SECRET = "pw-7f3a9c-do-not-log";

describe("NATS credentials", () => {
  let server: NatsServer;
  const dir = mkdtempSync(join(tmpdir(), "tributary-secrets-"));
  beforeAll(async () => {
    server = await startNatsServer({ args: ["--user", "tributary", "--pass", SECRET] });
  });
  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("connects with user/pass from ${VAR} in the config and never logs them", async () => {
    const config = join(dir, "auth.yaml");
    writeFileSync(config, "nats:\n  user: tributary\n  pass: ${NATS_PASSWORD}\n");
    const r = await runCli(["run", "--drain", "--config", config, "--nats", server.url, "--data-dir", join(dir, "a")], {
      NATS_PASSWORD: SECRET,
      TRIBUTARY_LOG_LEVEL: "trace",
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/"event":"connected"/);
    expect(r.stderr + r.stdout).not.toContain(SECRET);
  });

  it("redacts credentials embedded in a URL when it cannot connect", async () => {
    const port = await freePort();
    const r = await runCli(["run", "--drain", "--nats", `nats://tributary:${SECRET}@127.0.0.1:${port}`, "--data-dir", join(dir, "b"), "--connect-timeout", "1"], {
      TRIBUTARY_LOG_LEVEL: "trace",
    });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("nats://***@127.0.0.1");
    expect(r.stderr).not.toContain(SECRET);
  });

  it("fails at once with wrong credentials (exit 2), without retrying until the connect timeout", async () => {
    const r = await runCli(["run", "--drain", "--nats", server.url, "--data-dir", join(dir, "c"), "--connect-timeout", "60"], {
      TRIBUTARY_NATS_USER: "tributary",
      TRIBUTARY_NATS_PASS: "wrong",
    });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/rejected the user\/password credentials \(.*authorization/i);
    expect(r.stderr).not.toMatch(/wrong/);
    // One attempt: no retry was logged (warnings go to stderr).
    expect(r.stderr + r.stdout).not.toMatch(/connect_retry/);
  });
});
