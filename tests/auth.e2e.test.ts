/**
 * Every NATS auth mode against a real nats-server started with a config for it: user/password,
 * token, NKey seed file, JWT `.creds` file (operator mode), TLS with a custom CA, mutual TLS, and
 * creds over mutual TLS. Credentials are made here: NKeys and JWTs with @nats-io/nkeys and
 * @nats-io/jwt, the CA and certificates with openssl.
 *
 * Each mode publishes (with `tributary publish`, or the library's connectWithRetry), drains with
 * `tributary run --drain` and finds the messages in bronze with `tributary status`. Each rejected
 * credential exits 2 at once with one line that names the mode and the reason, and no secret
 * (password, token, seed, JWT, private key) appears in any output at trace level.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createUser } from "@nats-io/nkeys";
import { createAccount, createOperator, encodeAccount, encodeOperator, encodeUser, fmtCreds } from "@nats-io/jwt";
import { jetstreamManager } from "@nats-io/jetstream";
import { loadConfig } from "../src/config.js";
import { ConfigError } from "../src/errors.js";
import { silentLogger } from "../src/log.js";
import { connectWithRetry } from "../src/sources/nats-connection.js";
import { publishAll, recordMessage } from "../src/producers/publisher.js";
import { startNatsServer, type NatsServer } from "../src/testing/nats-server.js";
import { runCli, type CliResult } from "./helpers/cli.js";
import { tempDirs } from "./helpers/tmp.js";

const tempDir = tempDirs("auth");
const dir = tempDir();
const PASSWORD = "pw-3e81c0-never-logged";
const TOKEN = "tok-5d27aa-never-logged";
/** Every secret string made below: none may appear in any output. */
const secrets: string[] = [PASSWORD, TOKEN];

const file = (name: string, contents: string | Uint8Array): string => {
  const p = join(dir, name);
  writeFileSync(p, contents);
  return p;
};
const seedOf = (kp: { getSeed(): Uint8Array }) => new TextDecoder().decode(kp.getSeed());

/** openssl in `dir`: a CA, and certificates it signs (EC P-256, valid for a day). */
function openssl(...args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
}
const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
function makeCa(name: string): string {
  openssl("req", "-x509", ...EC, "-keyout", `${name}.key`, "-out", `${name}.pem`, "-days", "1", "-subj", `/CN=${name}`);
  secrets.push(privateKeyBody(`${name}.key`));
  return join(dir, `${name}.pem`);
}
let serial = 1;
function makeCert(name: string, ca: string, ext: string): { cert: string; key: string } {
  openssl("req", ...EC, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`);
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl("x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.pem`, "-CAkey", `${ca}.key`, "-set_serial", String(serial++), "-days", "1", "-out", `${name}.pem`, "-extfile", `${name}.ext`);
  secrets.push(privateKeyBody(`${name}.key`));
  return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
}
/** The base64 body of a PEM private key, as one string to look for in output. */
function privateKeyBody(name: string): string {
  return readFileSync(join(dir, name), "utf8").split("\n").filter((l) => l && !l.startsWith("-----")).join("");
}

interface Servers {
  userPass: NatsServer;
  token: NatsServer;
  nkey: NatsServer;
  jwt: NatsServer;
  tls: NatsServer;
  tlsWrongName: NatsServer;
  mtls: NatsServer;
  jwtOverMtls: NatsServer;
}
let servers: Servers;
const files: Record<string, string> = {};

beforeAll(async () => {
  // TLS: a CA, a server certificate for 127.0.0.1 and localhost, one for another name, and client
  // certificates from this CA and from a CA the servers do not know.
  files.ca = makeCa("ca");
  files.otherCa = makeCa("other-ca");
  const server = makeCert("server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  const elsewhere = makeCert("elsewhere", "ca", "subjectAltName=DNS:elsewhere.example\nextendedKeyUsage=serverAuth\n");
  const client = makeCert("client", "ca", "extendedKeyUsage=clientAuth\n");
  const stranger = makeCert("stranger", "other-ca", "extendedKeyUsage=clientAuth\n");
  Object.assign(files, { clientCert: client.cert, clientKey: client.key, strangerCert: stranger.cert, strangerKey: stranger.key });
  const tlsBlock = (cert: { cert: string; key: string }, verify: boolean) =>
    `tls {\n  cert_file: "${cert.cert}"\n  key_file: "${cert.key}"\n${verify ? `  ca_file: "${files.ca}"\n  verify: true\n` : ""}}\n`;

  // NKey: the server lists one user's public key; a second user's seed is the wrong one.
  const nkeyUser = createUser();
  const wrongUser = createUser();
  files.seed = file("user.nk", seedOf(nkeyUser) + "\n");
  files.wrongSeed = file("wrong.nk", seedOf(wrongUser) + "\n");
  files.notASeed = file("not-a-seed.nk", "this is not a seed\n");
  secrets.push(seedOf(nkeyUser), seedOf(wrongUser));

  // JWT: operator mode with a system account (JetStream in 2.9 needs one) and an application
  // account whose limits enable JetStream. Users: valid, expired, and one signed by an account
  // the server has never seen.
  const operator = createOperator();
  const system = createAccount();
  const account = createAccount();
  const foreign = createAccount();
  const unlimited = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 };
  const operatorJwt = await encodeOperator("tributary-test", operator, { system_account: system.getPublicKey() });
  const systemJwt = await encodeAccount("SYS", system, { limits: unlimited }, { signer: operator });
  const accountJwt = await encodeAccount("APP", account, { limits: { ...unlimited, mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 } }, { signer: operator });
  const jwtUser = createUser();
  const userJwt = await encodeUser("tributary", jwtUser, account);
  const expiredJwt = await encodeUser("tributary-expired", jwtUser, account, {}, { exp: Math.floor(Date.now() / 1000) - 3600 });
  const foreignJwt = await encodeUser("tributary-foreign", jwtUser, foreign);
  files.creds = file("user.creds", fmtCreds(userJwt, jwtUser));
  files.expiredCreds = file("expired.creds", fmtCreds(expiredJwt, jwtUser));
  files.foreignCreds = file("foreign.creds", fmtCreds(foreignJwt, jwtUser));
  files.badCreds = file("bad.creds", "-----BEGIN NATS USER JWT-----\nnot a jwt\n------END NATS USER JWT------\n");
  secrets.push(seedOf(jwtUser), userJwt, expiredJwt, foreignJwt);
  const operatorConf =
    `operator: ${operatorJwt}\nsystem_account: ${system.getPublicKey()}\nresolver: MEMORY\n` +
    `resolver_preload: {\n  ${system.getPublicKey()}: ${systemJwt}\n  ${account.getPublicKey()}: ${accountJwt}\n}\n`;

  const conf = (name: string, text: string) => file(`${name}.conf`, text);
  const [userPass, token, nkey, jwt, tls, tlsWrongName, mtls, jwtOverMtls] = await Promise.all([
    startNatsServer({ args: ["--user", "tributary", "--pass", PASSWORD] }),
    startNatsServer({ args: ["--auth", TOKEN] }),
    startNatsServer({ configFile: conf("nkey", `authorization {\n  users: [ { nkey: ${nkeyUser.getPublicKey()} } ]\n}\n`) }),
    startNatsServer({ configFile: conf("jwt", operatorConf) }),
    startNatsServer({ configFile: conf("tls", tlsBlock(server, false)), tls: true }),
    startNatsServer({ configFile: conf("tls-wrong-name", tlsBlock(elsewhere, false)), tls: true }),
    startNatsServer({ configFile: conf("mtls", tlsBlock(server, true)), tls: true }),
    startNatsServer({ configFile: conf("jwt-mtls", operatorConf + tlsBlock(server, true)), tls: true }),
  ]);
  servers = { userPass, token, nkey, jwt, tls, tlsWrongName, mtls, jwtOverMtls };
});

afterAll(async () => {
  await Promise.all(Object.values(servers ?? {}).map((s) => s.stop()));
});

/** A config file for `server` with `nats` keys (YAML, so `${VAR}` works as in a user's file). */
function configFor(server: NatsServer, nats: Record<string, unknown>): string {
  return file(`config-${serial++}.yaml`, JSON.stringify({ nats: { url: server.url, ...nats } }, null, 2));
}

function expectNoSecret(r: CliResult): void {
  for (const s of secrets) {
    expect(r.stdout.includes(s) || r.stderr.includes(s), `a secret (${s.slice(0, 4)}…) appeared in the output`).toBe(false);
  }
}

const TRACE = { TRIBUTARY_LOG_LEVEL: "trace" };

/** Messages published to each server so far: a new data dir drains them all. */
const publishedTo = new Map<NatsServer, number>();

/**
 * Publishes three records, with `tributary publish` or, to spare a process, with the library's
 * `connectWithRetry` from the same config; drains the stream into a new data dir with
 * `tributary run --drain`, and checks that bronze holds every message published to `server`.
 */
async function expectDrainWorks(server: NatsServer, config: string, env: Record<string, string> = {}, publishWith: "cli" | "library" = "library"): Promise<void> {
  const n = serial++;
  const rows = [1, 2, 3].map((i) => ({ transaction_id: `tx-${n}-${i}`, customer_id: `customer-${i % 2}`, amount: 10 * i, currency: "USD", transaction_date: `2026-01-0${i}` }));
  if (publishWith === "cli") {
    const records = file(`transactions-${n}.ndjson`, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
    const published = await runCli(["publish", "--config", config, "--entity", "transactions", records], { ...TRACE, ...env });
    expect(published.code, published.stderr).toBe(0);
    expect(published.stdout).toMatch(/^published 3 messages/);
    expectNoSecret(published);
  } else {
    const c = loadConfig({ file: config, env: { ...process.env, ...env } });
    const nc = await connectWithRetry(c.nats.url, silentLogger, 10_000, c.nats);
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.info(c.nats.stream).catch(() => jsm.streams.add({ name: c.nats.stream, subjects: c.nats.subjects }));
      expect((await publishAll(nc, rows.map((r) => recordMessage("transactions", r)))).stored).toBe(3);
    } finally {
      await nc.close();
    }
  }
  publishedTo.set(server, (publishedTo.get(server) ?? 0) + 3);

  const dataDir = join(tempDir(), "data");
  const run = await runCli(["run", "--drain", "--config", config, "--data-dir", dataDir, "--http", "off"], { ...TRACE, ...env });
  expect(run.code, run.stderr.slice(-2000)).toBe(0);
  expect(run.stderr).toMatch(/"event":"connected"/);
  expectNoSecret(run);

  const status = await runCli(["status", "--format", "json", "--data-dir", dataDir]);
  expect(status.code, status.stderr).toBe(0);
  expect(JSON.parse(status.stdout).bronze.messages).toBe(publishedTo.get(server));
}

/**
 * Runs `tributary run --drain` with a 60 s connect timeout and expects exit 2 long before it:
 * stderr holds one line (besides the trace-level log lines) matching `line`, no warning was
 * logged (no retry), and no secret appears anywhere.
 */
async function expectRejected(config: string, line: RegExp, env: Record<string, string> = {}): Promise<void> {
  const started = Date.now();
  const r = await runCli(["run", "--drain", "--config", config, "--data-dir", join(tempDir(), "data"), "--http", "off", "--connect-timeout", "60"], { ...TRACE, ...env });
  const elapsed = Date.now() - started;
  expect(r.code, r.stderr.slice(-2000)).toBe(2);
  // Retrying would last the 60 s connect timeout; a refusal takes one attempt.
  expect(elapsed).toBeLessThan(20_000);
  const lines = r.stderr.trim().split("\n");
  const logs = lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { level: number; event?: string });
  expect(lines.filter((l) => !l.startsWith("{"))).toEqual([expect.stringMatching(line)]);
  expect(logs.filter((l) => l.level >= 40), "a warning was logged: a retry?").toEqual([]);
  expect(logs.some((l) => l.event === "connect_retry")).toBe(false);
  expect(r.stdout).toBe("");
  expectNoSecret(r);
}

describe("user/password", () => {
  it("drains with the password from ${VAR}", async () => {
    await expectDrainWorks(servers.userPass, configFor(servers.userPass, { user: "tributary", pass: "${NATS_PASSWORD}" }), { NATS_PASSWORD: PASSWORD }, "cli");
  });

  it("a wrong password exits 2 at once, naming user/password", async () => {
    await expectRejected(
      configFor(servers.userPass, { user: "tributary", pass: "${NATS_PASSWORD}" }),
      /^tributary: config error: NATS at nats:\/\/127\.0\.0\.1:\d+ rejected the user\/password credentials \(Authorization Violation\); check nats\.user\/nats\.pass$/,
      { NATS_PASSWORD: "not-" + PASSWORD.slice(4) },
    );
  });
});

describe("token", () => {
  it("drains with the token from TRIBUTARY_NATS_TOKEN", async () => {
    await expectDrainWorks(servers.token, configFor(servers.token, {}), { TRIBUTARY_NATS_TOKEN: TOKEN });
  });

  it("a wrong token exits 2 at once, naming the token", async () => {
    await expectRejected(configFor(servers.token, { token: "${NATS_TOKEN}" }), /^tributary: config error: NATS at .* rejected the token credentials \(Authorization Violation\); check nats\.token$/, {
      NATS_TOKEN: "not-" + TOKEN.slice(4),
    });
  });

  it("no credentials at all exits 2, saying which keys to set", async () => {
    await expectRejected(configFor(servers.token, {}), /^tributary: config error: NATS at .* requires credentials \(Authorization Violation\); set nats\.user\/nats\.pass, nats\.token, nats\.nkeySeedFile or nats\.credsFile$/);
  });
});

describe("NKey seed file", () => {
  it("drains with nats.nkeySeedFile", async () => {
    await expectDrainWorks(servers.nkey, configFor(servers.nkey, { nkeySeedFile: files.seed }), {}, "cli");
  });

  it("a missing seed file exits 2, naming the key and the path", async () => {
    await expectRejected(configFor(servers.nkey, { nkeySeedFile: join(dir, "missing.nk") }), /^tributary: config error: nats\.nkeySeedFile: cannot read .*missing\.nk \(no such file\)$/);
  });

  it("a seed the server does not know exits 2 at once, naming the nkey mode and the file", async () => {
    await expectRejected(
      configFor(servers.nkey, { nkeySeedFile: files.wrongSeed }),
      /^tributary: config error: NATS at nats:\/\/127\.0\.0\.1:\d+ rejected the nkey credentials \(Authorization Violation\); check nats\.nkeySeedFile \(.*wrong\.nk\)$/,
    );
  });


});

describe("JWT .creds file (operator mode)", () => {
  it("drains with nats.credsFile", async () => {
    await expectDrainWorks(servers.jwt, configFor(servers.jwt, { credsFile: files.creds }));
  });

  it("an expired user JWT exits 2 at once, saying when it expired", async () => {
    await expectRejected(
      configFor(servers.jwt, { credsFile: files.expiredCreds }),
      /^tributary: config error: NATS at .* rejected the JWT credentials \(Authorization Violation; the user JWT expired at \d{4}-\d\d-\d\dT[\d:.]+Z\); check nats\.credsFile \(.*expired\.creds\)$/,
    );
  });

  it("a user JWT of an account the server does not know exits 2 at once, naming that account", async () => {
    await expectRejected(
      configFor(servers.jwt, { credsFile: files.foreignCreds }),
      /^tributary: config error: NATS at .* rejected the JWT credentials \(Authorization Violation; the user JWT was issued by account A[A-Z2-7]{55}, which this server may not trust\); check nats\.credsFile \(.*foreign\.creds\)$/,
    );
  });
});

describe("TLS with a custom CA", () => {
  it("drains over tls:// with nats.tls.caFile", async () => {
    await expectDrainWorks(servers.tls, configFor(servers.tls, { tls: { caFile: files.ca } }));
  });

  it("nats.tls turns TLS on for a nats:// URL too", async () => {
    await expectDrainWorks(servers.tls, configFor(servers.tls, { url: `nats://127.0.0.1:${servers.tls.port}`, tls: { caFile: files.ca } }));
  });

  it("without the CA, exits 2 at once: the server's certificate is not trusted", async () => {
    await expectRejected(
      configFor(servers.tls, {}),
      /^tributary: config error: TLS to NATS at tls:\/\/127\.0\.0\.1:\d+ failed: the server's certificate is not signed by a CA this machine trusts \(unable to verify the first certificate\); set nats\.tls\.caFile to the CA that signed it$/,
    );
  });

  it("with another CA, exits 2 at once, naming nats.tls.caFile", async () => {
    await expectRejected(configFor(servers.tls, { tls: { caFile: files.otherCa } }), /^tributary: config error: TLS to NATS at .* failed: the server's certificate is not signed by the CA in nats\.tls\.caFile \(.*other-ca\.pem\)/);
  });

  it("a certificate for another name exits 2 at once: hostname mismatch", async () => {
    await expectRejected(configFor(servers.tlsWrongName, { tls: { caFile: files.ca } }), /^tributary: config error: TLS to NATS at .* failed: the server's certificate does not list the name it was checked against \(Hostname\/IP does not match certificate's altnames: .*DNS:elsewhere\.example\); use a nats\.url host name the certificate lists/);
  });

  it("asking for TLS from a server without it exits 2 at once", async () => {
    await expectRejected(configFor(servers.userPass, { user: "tributary", pass: PASSWORD, tls: { caFile: files.ca } }), /^tributary: config error: TLS to NATS at .* failed: the server does not offer TLS/);
  });
});

describe("mutual TLS", () => {
  it("drains with a client certificate and key", async () => {
    await expectDrainWorks(servers.mtls, configFor(servers.mtls, { tls: { caFile: files.ca, certFile: files.clientCert, keyFile: files.clientKey } }));
  });

  it("without a client certificate, exits 2 at once: the server requires one", async () => {
    await expectRejected(
      configFor(servers.mtls, { tls: { caFile: files.ca } }),
      /^tributary: config error: TLS to NATS at .* failed: the server requires a client certificate \(.*\); set nats\.tls\.certFile and nats\.tls\.keyFile$/,
    );
  });

  it("a client certificate from a CA the server does not trust exits 2 at once", async () => {
    await expectRejected(
      configFor(servers.mtls, { tls: { caFile: files.ca, certFile: files.strangerCert, keyFile: files.strangerKey } }),
      /^tributary: config error: mutual TLS to NATS at .* failed: the server refused the client certificate in nats\.tls\.certFile \(.*stranger\.pem\)/,
    );
  });
});

describe("JWT .creds over mutual TLS", () => {
  const mtls = () => ({ caFile: files.ca, certFile: files.clientCert, keyFile: files.clientKey });

  it("drains with both", async () => {
    await expectDrainWorks(servers.jwtOverMtls, configFor(servers.jwtOverMtls, { credsFile: files.creds, tls: mtls() }), {}, "cli");
  });

  it("an expired JWT over a good TLS connection exits 2 at once, naming the JWT", async () => {
    await expectRejected(configFor(servers.jwtOverMtls, { credsFile: files.expiredCreds, tls: mtls() }), /^tributary: config error: NATS at tls:\/\/.* rejected the JWT credentials \(Authorization Violation; the user JWT expired at /);
  });

  it("good creds without the client certificate exit 2 at once, naming TLS", async () => {
    await expectRejected(configFor(servers.jwtOverMtls, { credsFile: files.creds, tls: { caFile: files.ca } }), /^tributary: config error: TLS to NATS at .* failed: the server requires a client certificate/);
  });
});

describe("credential files, read when the connection starts", () => {
  // Checked through the library, as `run` and `publish` call it: each is a ConfigError (exit 2)
  // naming the key and the path, before anything reaches the server.
  it.each([
    ["an unreadable seed file", () => ({ nkeySeedFile: dir }), /^nats\.nkeySeedFile: cannot read .* \(is a directory\)$/],
    ["a file that holds no seed", () => ({ nkeySeedFile: files.notASeed }), /^nats\.nkeySeedFile: .*not-a-seed\.nk does not hold a user NKey seed/],
    ["a malformed .creds file", () => ({ credsFile: files.badCreds }), /^nats\.credsFile: .*bad\.creds is not a NATS \.creds file/],
    ["a seed file given as the .creds file", () => ({ credsFile: files.seed }), /^nats\.credsFile: .*user\.nk is not a NATS \.creds file/],
    ["a CA file that is not a certificate", () => ({ tls: { caFile: files.seed } }), /^nats\.tls\.caFile: .*user\.nk does not hold a PEM CA certificate$/],
    ["a missing client key", () => ({ tls: { certFile: files.clientCert, keyFile: join(dir, "nope.key") } }), /^nats\.tls\.keyFile: cannot read .*nope\.key \(no such file\)$/],
    ["a client key that is not a key", () => ({ tls: { certFile: files.clientCert, keyFile: files.clientCert } }), /^nats\.tls\.keyFile: .*client\.pem does not hold an unencrypted PEM private key$/],
    ["a key that is not the certificate's", () => ({ tls: { certFile: files.clientCert, keyFile: files.strangerKey } }), /^nats\.tls\.keyFile: .*stranger\.key is not the private key of the certificate in nats\.tls\.certFile \(.*client\.pem\)$/],
  ])("%s", async (_name, auth, message) => {
    const err = await connectWithRetry(servers.mtls.url, silentLogger, 60_000, auth()).then(
      () => null,
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.message).toMatch(message);
    for (const secret of secrets) expect(err!.message.includes(secret)).toBe(false);
  });
});

describe("config check", () => {
  it("shows the credential files' paths and masks the password and token", async () => {
    const config = file("check.yaml", `nats:\n  user: tributary\n  pass: \${NATS_PASSWORD}\n  tls:\n    caFile: ${files.ca}\n    certFile: ${files.clientCert}\n    keyFile: ${files.clientKey}\n`);
    const r = await runCli(["config", "check", config], { NATS_PASSWORD: PASSWORD });
    expect(r.code, r.stderr).toBe(0);
    const nats = JSON.parse(r.stdout).nats;
    expect(nats.pass).toBe("***");
    expect(nats.tls).toEqual({ caFile: files.ca, certFile: files.clientCert, keyFile: files.clientKey });
    expectNoSecret(r);
  });

  it("takes the new keys from TRIBUTARY_NATS_* variables, nats.tls.* included", async () => {
    const r = await runCli(["config", "check", file("empty.yaml", "{}\n")], {
      TRIBUTARY_NATS_NKEY_SEED_FILE: files.seed,
      TRIBUTARY_NATS_TLS_CA_FILE: files.ca,
      TRIBUTARY_NATS_TLS_CERT_FILE: files.clientCert,
      TRIBUTARY_NATS_TLS_KEY_FILE: files.clientKey,
    });
    expect(r.code, r.stderr).toBe(0);
    const nats = JSON.parse(r.stdout).nats;
    expect(nats.nkeySeedFile).toBe(files.seed);
    expect(nats.tls).toEqual({ caFile: files.ca, certFile: files.clientCert, keyFile: files.clientKey });
    const creds = await runCli(["config", "check", file("empty2.yaml", "{}\n")], { TRIBUTARY_NATS_CREDS_FILE: files.creds });
    expect(JSON.parse(creds.stdout).nats.credsFile).toBe(files.creds);
  });

  it("rejects two ways to authenticate at once, naming both keys", async () => {
    const config = configFor(servers.jwt, { credsFile: files.creds, nkeySeedFile: files.seed });
    const r = await runCli(["config", "check", config]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/config error: nats\.credsFile: cannot be combined with nats\.nkeySeedFile/);
  });
});
