/**
 * A TLS check before connecting. nats.js reports a server that refuses the client certificate
 * only as a connect timeout: under TLS 1.3 the refusal arrives after the handshake, and the
 * client drops it. This probe does what nats.js does up to the handshake (read the plaintext
 * INFO, upgrade with the same options) and ends there, so certificate problems are known at
 * once, with their reason. It sends no credentials and nothing of the NATS protocol.
 */
import { connect as tcpConnect, isIP, type Socket } from "node:net";
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from "node:tls";
import type { TlsMaterial } from "./nats-credentials.js";

/** Why the TLS side of a connection cannot work, as a user would fix it. */
export type TlsProblem =
  | "server-has-no-tls"
  | "untrusted-server-cert"
  | "server-cert-expired"
  | "hostname-mismatch"
  | "client-cert-required"
  | "client-cert-rejected"
  | "handshake-failed";

export type TlsVerdict =
  /** The certificates were accepted both ways, or the server needs no TLS and none was asked for. */
  | { readonly kind: "ok" }
  /** The server or this client turned the TLS connection down: retrying cannot help. */
  | { readonly kind: "rejected"; readonly problem: TlsProblem; readonly reason: string }
  /** Nothing certain: unreachable, too slow, or an error that is not about certificates. */
  | { readonly kind: "inconclusive"; readonly reason: string };

interface ServerInfo {
  tls_required?: boolean;
  tls_available?: boolean;
  tls_verify?: boolean;
}

const UNTRUSTED = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_SIGNATURE_FAILURE",
  "UNABLE_TO_DECRYPT_CERT_SIGNATURE",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "INVALID_CA",
  "INVALID_PURPOSE",
  "PATH_LENGTH_EXCEEDED",
]);
const EXPIRED = new Set(["CERT_HAS_EXPIRED", "CERT_NOT_YET_VALID"]);
/** Alerts a server sends when it does not accept the client's certificate (or its absence). */
const CLIENT_CERT_ALERT = /ALERT_(BAD_CERTIFICATE|CERTIFICATE_REQUIRED|UNKNOWN_CA|CERTIFICATE_UNKNOWN|UNSUPPORTED_CERTIFICATE|CERTIFICATE_EXPIRED|CERTIFICATE_REVOKED|ACCESS_DENIED)$/;
const VERSION_ALERT = /ALERT_PROTOCOL_VERSION$|UNSUPPORTED_PROTOCOL$|WRONG_VERSION_NUMBER$/;

/**
 * Classifies an error from a TLS connection (the probe's, or one nats.js passed on) as a
 * certificate problem, or null when it is not one (a refused or reset connection).
 */
export function tlsProblemOf(err: unknown, hasClientCert: boolean): { problem: TlsProblem; reason: string } | null {
  for (let e = err as (NodeJS.ErrnoException & { cause?: unknown }) | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    const code = typeof e.code === "string" ? e.code : "";
    if (!code) continue;
    const reason = code.startsWith("ERR_SSL_") ? code.slice(8).toLowerCase().replace(/_/g, " ") : e.message.replace(/\s+/g, " ");
    if (UNTRUSTED.has(code)) return { problem: "untrusted-server-cert", reason };
    if (EXPIRED.has(code)) return { problem: "server-cert-expired", reason };
    if (code === "ERR_TLS_CERT_ALTNAME_INVALID") return { problem: "hostname-mismatch", reason };
    if (code.startsWith("ERR_SSL_") && CLIENT_CERT_ALERT.test(code)) return { problem: hasClientCert ? "client-cert-rejected" : "client-cert-required", reason };
    if (code.startsWith("ERR_SSL_") && !VERSION_ALERT.test(code)) return { problem: "handshake-failed", reason };
  }
  return null;
}

/**
 * Checks the TLS side of each server in turn (`host:port`, any scheme and `user:pass@` ignored)
 * and returns the first certain answer. `wantTls` is true when the config asks for TLS; a server
 * that requires TLS gets it either way, as nats.js does.
 */
export async function probeTls(servers: readonly string[], material: TlsMaterial | undefined, options: { wantTls: boolean; timeoutMs?: number; graceMs?: number }): Promise<TlsVerdict> {
  let last: TlsVerdict = { kind: "inconclusive", reason: "no server to probe" };
  for (const server of servers) {
    const hp = hostPort(server);
    if (!hp) continue;
    last = await probeOne(hp.host, hp.port, material ?? {}, options);
    if (last.kind !== "inconclusive") return last;
  }
  return last;
}

/** `tls://user:pw@host:4222` → `{ host, port }`; the default port is 4222. */
export function hostPort(server: string): { host: string; port: number } | null {
  let s = server.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, "");
  s = s.slice(s.lastIndexOf("@") + 1).replace(/\/.*$/, "");
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(s) ?? /^([^:]+)(?::(\d+))?$/.exec(s);
  if (!m) return isIP(s) === 6 ? { host: s, port: 4222 } : null;
  return { host: m[1]!, port: m[2] ? Number(m[2]) : 4222 };
}

async function probeOne(host: string, port: number, material: TlsMaterial, options: { wantTls: boolean; timeoutMs?: number; graceMs?: number }): Promise<TlsVerdict> {
  const timeoutMs = options.timeoutMs ?? 3_000;
  const sockets: Socket[] = [];
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<TlsVerdict>((r) => {
    timer = setTimeout(() => r({ kind: "inconclusive", reason: `no TLS answer within ${timeoutMs} ms` }), timeoutMs);
  });
  const hasClientCert = material.cert !== undefined;
  const run = async (): Promise<TlsVerdict> => {
    const plain = await openSocket(host, port, sockets);
    if ("error" in plain) return { kind: "inconclusive", reason: plain.error };
    const info = await readInfo(plain.socket);
    if ("error" in info) return { kind: "inconclusive", reason: info.error };
    const offered = info.info.tls_required === true || info.info.tls_available === true;
    if (!offered) {
      return options.wantTls ? { kind: "rejected", problem: "server-has-no-tls", reason: "no tls_required or tls_available in its INFO" } : { kind: "ok" };
    }
    if (!options.wantTls && info.info.tls_required !== true) return { kind: "ok" };
    // TLS 1.2 first: there the server judges the client certificate inside the handshake, so its
    // outcome is certain. A server that only speaks TLS 1.3 is asked again below.
    const tls12 = await handshake(plain.socket, host, material, "TLSv1.2", 0);
    if (tls12.kind !== "version") return verdictOf(tls12, hasClientCert, info.info);
    const again = await openSocket(host, port, sockets);
    if ("error" in again) return { kind: "inconclusive", reason: again.error };
    const info13 = await readInfo(again.socket);
    if ("error" in info13) return { kind: "inconclusive", reason: info13.error };
    return verdictOf(await handshake(again.socket, host, material, "TLSv1.3", options.graceMs ?? 500), hasClientCert, info.info);
  };
  try {
    return await Promise.race([run(), timedOut]);
  } finally {
    clearTimeout(timer);
    for (const s of sockets) s.destroy();
  }
}

type Handshake = { kind: "done" } | { kind: "version" } | { kind: "error"; error: unknown };

function verdictOf(h: Handshake, hasClientCert: boolean, info: ServerInfo): TlsVerdict {
  if (h.kind === "error") {
    const p = tlsProblemOf(h.error, hasClientCert);
    if (!p) return { kind: "inconclusive", reason: (h.error as Error).message ?? String(h.error) };
    // Some servers answer a missing client certificate with a bare handshake_failure alert.
    if (p.problem === "handshake-failed" && info.tls_verify === true && !hasClientCert) return { kind: "rejected", problem: "client-cert-required", reason: p.reason };
    return { kind: "rejected", ...p };
  }
  if (h.kind === "version") return { kind: "inconclusive", reason: "no common TLS version" };
  // Under TLS 1.3 a refusal may be later than the grace period; the server's INFO still says
  // whether it verifies clients.
  if (info.tls_verify === true && !hasClientCert) return { kind: "rejected", problem: "client-cert-required", reason: "tls_verify in its INFO" };
  return { kind: "ok" };
}

function openSocket(host: string, port: number, sockets: Socket[]): Promise<{ socket: Socket } | { error: string }> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host, port });
    sockets.push(socket);
    socket.once("connect", () => resolve({ socket }));
    // Kept for the socket's life: a later error (a reset mid-handshake) must not go unhandled.
    socket.on("error", (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
  });
}

function readInfo(socket: Socket): Promise<{ info: ServerInfo } | { error: string }> {
  return new Promise((resolve) => {
    let buf = "";
    const onData = (d: Buffer) => {
      buf += d.toString("latin1");
      const end = buf.indexOf("\r\n");
      if (end < 0) {
        if (buf.length > 64 * 1024) done({ error: "no INFO line" });
        return;
      }
      const m = /^INFO\s+(\{.*\})\s*$/.exec(buf.slice(0, end));
      if (!m) return done({ error: "not a NATS server (no INFO)" });
      try {
        done({ info: JSON.parse(m[1]!) as ServerInfo });
      } catch {
        done({ error: "not a NATS server (bad INFO)" });
      }
    };
    const onEnd = () => done({ error: "closed before INFO" });
    const onError = (err: NodeJS.ErrnoException) => done({ error: err.code ?? err.message });
    const done = (r: { info: ServerInfo } | { error: string }) => {
      socket.off("data", onData).off("end", onEnd).off("error", onError);
      resolve(r);
    };
    socket.on("data", onData).once("end", onEnd).once("error", onError);
  });
}

function handshake(socket: Socket, host: string, material: TlsMaterial, maxVersion: "TLSv1.2" | "TLSv1.3", graceMs: number): Promise<Handshake> {
  return new Promise((resolve) => {
    // As nats.js: the server name is the host unless it is an IP address, and then Node checks
    // the certificate against the name localhost (the socket carries no host to check).
    const opts: ConnectionOptions = {
      socket,
      servername: isIP(host) ? undefined : host,
      rejectUnauthorized: true,
      maxVersion,
      ...(material.ca ? { ca: material.ca } : {}),
      ...(material.cert ? { cert: material.cert, key: material.key } : {}),
    };
    let settled = false;
    const settle = (h: Handshake) => {
      if (settled) return;
      settled = true;
      resolve(h);
    };
    let tls: TLSSocket;
    try {
      tls = tlsConnect(opts);
    } catch (error) {
      settle({ kind: "error", error });
      return;
    }
    tls.once("secureConnect", () => {
      if (graceMs <= 0) {
        tls.end();
        settle({ kind: "done" });
        return;
      }
      // TLS 1.3: the server reads the client's certificate after the client thinks it is done;
      // a refusal comes as an alert within a round trip or so, seen only by reading.
      tls.resume();
      const t = setTimeout(() => {
        tls.end();
        settle({ kind: "done" });
      }, graceMs);
      tls.once("close", () => clearTimeout(t));
    });
    tls.on("error", (error: NodeJS.ErrnoException) => {
      if (!settled && typeof error.code === "string" && VERSION_ALERT.test(error.code)) settle({ kind: "version" });
      else settle({ kind: "error", error });
    });
    tls.once("close", () => settle({ kind: "error", error: new Error("connection closed during the TLS handshake") }));
  });
}
