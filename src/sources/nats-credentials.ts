/**
 * NATS credentials and TLS material, read from the files the config names when a connection
 * starts. Every failure names its config key and path, never the contents, and every message
 * built here is one line without a secret in it.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { createSecureContext } from "node:tls";
import { credsAuthenticator, nkeyAuthenticator, nkeys, type Authenticator, type TlsOptions } from "@nats-io/transport-node";
import { ConfigError } from "../errors.js";
import type { NatsAuth } from "./nats-connection.js";

/** How this connection proves who it is, for messages: `nkey`, and the key to check. */
export interface AuthMode {
  /** `none`, `user/password`, `token`, `nkey` or `JWT` (a `.creds` file). */
  readonly label: string;
  /** The config keys (and file) to check when the server turns the credentials down. */
  readonly keys: string;
}

/** The TLS side of a connection: the PEM contents to use, and the files they came from. */
export interface TlsMaterial {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly caFile?: string;
  readonly certFile?: string;
  readonly keyFile?: string;
}

/** What `connect()` needs to authenticate, with what messages need to describe it. */
export interface NatsCredentials {
  readonly mode: AuthMode;
  /** Options for nats.js `connect()`: `user`/`pass`, `token`, `authenticator`, `tls`. */
  readonly connectOptions: { user?: string; pass?: string; token?: string; authenticator?: Authenticator; tls?: TlsOptions };
  /** TLS material when TLS is on (a `tls://` URL or `nats.tls`), else undefined. */
  readonly tls?: TlsMaterial;
  /** The user JWT's public claims (from `nats.credsFile`), to explain a rejection. */
  readonly jwt?: { readonly exp?: number; readonly nbf?: number; readonly iss?: string; readonly account?: string };
}

/** A user NKey seed: `SU` and 56 base32 characters. */
const USER_SEED = /\bSU[A-Z2-7]{56}\b/;
/** The two armored blocks of a `.creds` file, as nats.js reads them. */
const CREDS_BLOCK = /\s*(?:(?:[-]{3,}[^\n]*[-]{3,}\n)(.+)(?:\n\s*[-]{3,}[^\n]*[-]{3,}\n))/gi;

/**
 * Reads the credential and TLS files named in `auth` (paths relative to the working directory)
 * and returns the nats.js options for them. Throws {@link ConfigError} naming the key and path
 * when a file is missing, unreadable or not what the key expects.
 *
 * @example
 * const creds = loadNatsCredentials("tls://nats:4222", { credsFile: "app.creds", tls: { caFile: "ca.pem" } });
 * const nc = await connect({ servers: ["tls://nats:4222"], ...creds.connectOptions });
 */
export function loadNatsCredentials(url: string, auth: NatsAuth): NatsCredentials {
  const tls = tlsWanted(url, auth) ? loadTls(auth.tls ?? {}) : undefined;
  const tlsOption = tls ? { tls: { ...(tls.ca ? { ca: tls.ca } : {}), ...(tls.cert ? { cert: tls.cert, key: tls.key } : {}) } } : {};
  if (auth.credsFile !== undefined) {
    const file = resolve(auth.credsFile);
    const { text, jwt } = readCreds(file);
    return {
      mode: { label: "JWT", keys: `nats.credsFile (${file})` },
      connectOptions: { authenticator: credsAuthenticator(new TextEncoder().encode(text)), ...tlsOption },
      tls,
      jwt,
    };
  }
  if (auth.nkeySeedFile !== undefined) {
    const file = resolve(auth.nkeySeedFile);
    const seed = readSeed(file);
    return { mode: { label: "nkey", keys: `nats.nkeySeedFile (${file})` }, connectOptions: { authenticator: nkeyAuthenticator(seed), ...tlsOption }, tls };
  }
  if (auth.token !== undefined) {
    return { mode: { label: "token", keys: "nats.token" }, connectOptions: { token: auth.token, ...tlsOption }, tls };
  }
  if (auth.user !== undefined) {
    return { mode: { label: "user/password", keys: "nats.user/nats.pass" }, connectOptions: { user: auth.user, pass: auth.pass, ...tlsOption }, tls };
  }
  return { mode: { label: "none", keys: "nats.user/nats.pass, nats.token, nats.nkeySeedFile or nats.credsFile" }, connectOptions: { ...tlsOption }, tls };
}

/** A `tls://` server URL, or any `nats.tls` setting, turns TLS on. */
export function tlsWanted(url: string, auth: NatsAuth): boolean {
  return auth.tls !== undefined || url.split(",").some((s) => /^\s*tls:\/\//i.test(s));
}

/**
 * The one line for credentials the server turned down: the mode, the server's reason (with what
 * the JWT's own dates say) and the keys to check.
 */
export function credentialsRejected(server: string, creds: NatsCredentials, reason: string): string {
  if (creds.mode.label === "none") {
    return `NATS at ${server} requires credentials (${oneLine(reason)}); set ${creds.mode.keys}`;
  }
  return `NATS at ${server} rejected the ${creds.mode.label} credentials (${oneLine(reason)}${jwtHint(creds.jwt)}); check ${creds.mode.keys}`;
}

function jwtHint(jwt: NatsCredentials["jwt"], now = Date.now()): string {
  if (!jwt) return "";
  if (jwt.exp !== undefined && jwt.exp * 1000 <= now) return `; the user JWT expired at ${new Date(jwt.exp * 1000).toISOString()}`;
  if (jwt.nbf !== undefined && jwt.nbf * 1000 > now) return `; the user JWT is not valid before ${new Date(jwt.nbf * 1000).toISOString()}`;
  const account = jwt.account ?? jwt.iss;
  return account ? `; the user JWT was issued by account ${account}, which this server may not trust` : "";
}

function readFile(key: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code === "EISDIR" ? "is a directory" : (code ?? "unreadable");
    throw new ConfigError(`${key}: cannot read ${file} (${why})`);
  }
}

function readSeed(file: string): Uint8Array {
  const m = USER_SEED.exec(readFile("nats.nkeySeedFile", file).toString("utf8"));
  const bad = () => new ConfigError(`nats.nkeySeedFile: ${file} does not hold a user NKey seed (a line of 58 characters starting with "SU")`);
  if (!m) throw bad();
  const seed = new TextEncoder().encode(m[0]);
  try {
    nkeys.fromSeed(seed);
  } catch {
    throw bad();
  }
  return seed;
}

function readCreds(file: string): { text: string; jwt: NonNullable<NatsCredentials["jwt"]> } {
  const text = readFile("nats.credsFile", file).toString("utf8");
  const bad = (what: string) => new ConfigError(`nats.credsFile: ${file} is not a NATS .creds file (${what})`);
  const blocks = [...text.matchAll(CREDS_BLOCK)].map((m) => m[1]!.trim());
  if (blocks.length < 2) throw bad("expected a user JWT block and a user NKey seed block");
  const claims = decodeJwtClaims(blocks[0]!);
  if (!claims) throw bad("its first block is not a JWT");
  if (!USER_SEED.test(blocks[1]!)) throw bad("its second block is not a user NKey seed");
  try {
    nkeys.fromSeed(new TextEncoder().encode(blocks[1]!));
  } catch {
    throw bad("its second block is not a user NKey seed");
  }
  const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
  const str = (v: unknown) => (typeof v === "string" && /^[A-Z2-7]{56}$/.test(v) ? v : undefined);
  const nats = (claims.nats ?? {}) as Record<string, unknown>;
  return { text, jwt: { exp: num(claims.exp), nbf: num(claims.nbf), iss: str(claims.iss), account: str(nats.issuer_account) } };
}

/** The claims of a JWT (its middle part), without checking its signature: the server does that. */
function decodeJwtClaims(jwt: string): Record<string, unknown> | null {
  const parts = jwt.split(".");
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]+$/.test(p))) return null;
  try {
    const claims: unknown = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8"));
    return typeof claims === "object" && claims !== null && !Array.isArray(claims) ? (claims as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function loadTls(tls: NonNullable<NatsAuth["tls"]>): TlsMaterial {
  const out: { -readonly [K in keyof TlsMaterial]: TlsMaterial[K] } = {};
  if (tls.caFile !== undefined) {
    out.caFile = resolve(tls.caFile);
    out.ca = readPem("nats.tls.caFile", out.caFile, "a PEM CA certificate", (pem) => new X509Certificate(pem));
  }
  if (tls.certFile !== undefined || tls.keyFile !== undefined) {
    if (tls.certFile === undefined || tls.keyFile === undefined) {
      throw new ConfigError(`nats.tls.${tls.certFile === undefined ? "certFile" : "keyFile"}: required with nats.tls.${tls.certFile === undefined ? "keyFile" : "certFile"}`);
    }
    out.certFile = resolve(tls.certFile);
    out.keyFile = resolve(tls.keyFile);
    out.cert = readPem("nats.tls.certFile", out.certFile, "a PEM certificate", (pem) => new X509Certificate(pem));
    out.key = readPem("nats.tls.keyFile", out.keyFile, "an unencrypted PEM private key", (pem) => createPrivateKey(pem));
    try {
      createSecureContext({ cert: out.cert, key: out.key });
    } catch {
      throw new ConfigError(`nats.tls.keyFile: ${out.keyFile} is not the private key of the certificate in nats.tls.certFile (${out.certFile})`);
    }
  }
  return out;
}

function readPem(key: string, file: string, what: string, parse: (pem: string) => unknown): string {
  const pem = readFile(key, file).toString("utf8");
  try {
    if (!pem.includes("-----BEGIN ")) throw new Error("not PEM");
    parse(pem);
  } catch {
    throw new ConfigError(`${key}: ${file} does not hold ${what}`);
  }
  return pem;
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, " ").trim();
}
