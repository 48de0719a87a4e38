/**
 * Connecting to NATS: server URLs, credentials, TLS and retries. With the JetStream source, the
 * only code that imports the NATS client. Credentials never reach logs or errors.
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "../log.js";
import { ConfigError, SourceError, NatsUnreachableError } from "../errors.js";
import { credentialsRejected, loadNatsCredentials, tlsWanted, type NatsCredentials } from "./nats-credentials.js";
import { probeTls, tlsProblemOf, type TlsProblem, type TlsVerdict } from "./tls-probe.js";

/**
 * How to authenticate, as the `nats` section of the config says it: at most one of user/pass,
 * token, an NKey seed file or a JWT `.creds` file, and optionally TLS (a custom CA, and a client
 * certificate and key). File paths are relative to the working directory; the files are read
 * when the connection starts.
 */
export interface NatsAuth {
  readonly user?: string;
  readonly pass?: string;
  readonly token?: string;
  /** A file holding a user NKey seed (`SU…`). */
  readonly nkeySeedFile?: string;
  /** A JWT `.creds` file: the user JWT and its NKey seed. */
  readonly credsFile?: string;
  /** Any of these, even none (`tls: {}`), turns TLS on, as a `tls://` URL does. */
  readonly tls?: { readonly caFile?: string; readonly certFile?: string; readonly keyFile?: string };
}

/**
 * Connects to NATS, retrying with backoff and logging each attempt (never the credentials).
 * What retrying cannot fix fails at once with a {@link ConfigError} (the CLI's exit 2): a
 * credential file that is missing or malformed, credentials the server turns down, and a TLS
 * connection refused either way (server certificate not trusted or not for this host, client
 * certificate missing or refused). An unreachable server is retried until `timeoutMs`.
 *
 * @example
 * const nc = await connectWithRetry("tls://nats:4222", log, 30_000, { credsFile: "app.creds", tls: { caFile: "ca.pem" } });
 */
export async function connectWithRetry(
  url: string,
  log: Logger,
  timeoutMs?: number,
  auth: NatsAuth = {},
  signal?: AbortSignal,
): Promise<NatsConnection> {
  const creds = loadNatsCredentials(url, auth);
  const servers = url.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const wantTls = tlsWanted(url, auth);
  const started = Date.now();
  let delay = 250;
  for (let attempt = 1; ; attempt++) {
    if (signal?.aborted) throw new ConnectAbortedError("stopped while connecting to NATS");
    try {
      // nats.js reports a refused client certificate only as a timeout: check TLS first.
      if (wantTls) throwIfTlsRejected(url, creds, await probeTls(servers, creds.tls, { wantTls }));
      const nc = await connect({
        servers,
        name: "tributary",
        maxReconnectAttempts: -1,
        reconnectTimeWait: 1_000,
        timeout: 5_000,
        // nats.js otherwise builds an Error (a stack capture) at every request and publish with
        // an ack, in case it fails: a third of `tributary publish`'s CPU. tributary's errors are
        // one line; the stack of a timed-out request says nothing the message does not.
        noAsyncTraces: true,
        ...creds.connectOptions,
      });
      log.info({ event: "connected", server: nc.getServer(), attempt, auth: creds.mode.label, tls: nc.info?.tls_required === true || wantTls }, "connected to NATS");
      void (async () => {
        for await (const s of nc.status()) {
          if (s.type === "disconnect") log.warn({ event: "disconnected", server: s.server }, "lost the NATS connection");
          else if (s.type === "reconnecting") log.warn({ event: "reconnecting" }, "reconnecting to NATS");
          else if (s.type === "reconnect") log.info({ event: "reconnected", server: s.server }, "reconnected to NATS");
        }
      })().catch(() => undefined);
      return nc;
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      const elapsed = Date.now() - started;
      const reason = (err as Error).message;
      // The server answered and turned the credentials down: retrying cannot change that.
      if (err instanceof Error && (err.name === "AuthorizationError" || err.name === "UserAuthenticationExpiredError")) {
        throw new ConfigError(credentialsRejected(redactUrl(url), creds, reason), { cause: err });
      }
      if (/server does not support 'tls'/.test(reason)) throwIfTlsRejected(url, creds, { kind: "rejected", problem: "server-has-no-tls", reason });
      const tls = tlsProblemOf(err, creds.tls?.cert !== undefined);
      if (tls) throwIfTlsRejected(url, creds, { kind: "rejected", ...tls }, err);
      // A refused client certificate (or one a TLS-only server wanted and we did not configure)
      // reaches nats.js as a timeout: ask the server once more, waiting longer for its answer.
      if (err instanceof Error && err.name === "TimeoutError") {
        throwIfTlsRejected(url, creds, await probeTls(servers, creds.tls, { wantTls, timeoutMs: 2_000, graceMs: 1_000 }));
      }
      if (timeoutMs !== undefined && elapsed + delay > timeoutMs) {
        throw new NatsUnreachableError(`cannot reach NATS at ${redactUrl(url)} after ${attempt} attempts in ${Math.round(elapsed / 1000)} s: ${reason}`, { cause: err });
      }
      log.warn({ event: "connect_retry", url: redactUrl(url), attempt, retryInMs: delay, reason }, "NATS unreachable, retrying");
      await new Promise<void>((resolve) => {
        const onAbort = () => (clearTimeout(timer), resolve());
        const timer = setTimeout(() => (signal?.removeEventListener("abort", onAbort), resolve()), delay);
        signal?.addEventListener("abort", onAbort, { once: true });
      });
      delay = Math.min(delay * 2, 5_000);
    }
  }
}

/** {@link connectWithRetry} was stopped through its abort signal before it connected. */
export class ConnectAbortedError extends Error {
  override name = "ConnectAbortedError";
}

function throwIfTlsRejected(url: string, creds: NatsCredentials, verdict: TlsVerdict, cause?: unknown): void {
  if (verdict.kind !== "rejected") return;
  const tls = creds.tls ?? {};
  const mode = tls.cert !== undefined ? "mutual TLS" : "TLS";
  const [what, fix] = TLS_ADVICE[verdict.problem](tls);
  const reason = verdict.reason.replace(/\s+/g, " ");
  throw new ConfigError(`${mode} to NATS at ${redactUrl(url)} failed: ${what} (${reason}); ${fix}`, cause === undefined ? undefined : { cause });
}

/** For each TLS problem: what went wrong, and what to change. */
const TLS_ADVICE: Record<TlsProblem, (tls: NonNullable<NatsCredentials["tls"]>) => [string, string]> = {
  "server-has-no-tls": () => ["the server does not offer TLS", "enable tls on the server, or drop nats.tls and the tls:// URL"],
  "untrusted-server-cert": (tls) =>
    tls.caFile
      ? [`the server's certificate is not signed by the CA in nats.tls.caFile (${tls.caFile})`, "set nats.tls.caFile to the CA that signed the server's certificate"]
      : ["the server's certificate is not signed by a CA this machine trusts", "set nats.tls.caFile to the CA that signed it"],
  "server-cert-expired": () => ["the server's certificate has expired or is not valid yet", "renew the server's certificate"],
  // nats.js checks the certificate of a server given by IP address against the name localhost.
  "hostname-mismatch": () => ["the server's certificate does not list the name it was checked against", "use a nats.url host name the certificate lists (nats.js checks a server given by IP address as localhost)"],
  "client-cert-required": () => ["the server requires a client certificate", "set nats.tls.certFile and nats.tls.keyFile"],
  "client-cert-rejected": (tls) => [`the server refused the client certificate in nats.tls.certFile (${tls.certFile})`, "use a certificate signed by a CA in the server's tls.ca_file"],
  "handshake-failed": () => ["the TLS handshake failed", "check nats.tls and the server's tls block"],
};

/** A server URL without embedded credentials, for logs and errors. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/\s]+)@/g, "//***@");
}
