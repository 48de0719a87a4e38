/**
 * Connecting to NATS: server URLs, credentials and retries. With the JetStream source, the only
 * code that imports the NATS client. Credentials never reach logs or errors.
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "../log.js";
import { ConfigError, SourceError } from "../errors.js";

/** Credentials for servers that require them. */
export interface NatsAuth {
  readonly user?: string;
  readonly pass?: string;
  readonly token?: string;
}

/** Connects to NATS, retrying with backoff and logging each attempt (never the credentials). */
export async function connectWithRetry(url: string, log: Logger, timeoutMs?: number, auth: NatsAuth = {}): Promise<NatsConnection> {
  const started = Date.now();
  let delay = 250;
  for (let attempt = 1; ; attempt++) {
    try {
      const nc = await connect({
        servers: url.split(","),
        name: "tributary",
        maxReconnectAttempts: -1,
        reconnectTimeWait: 1_000,
        timeout: 5_000,
        ...(auth.user !== undefined ? { user: auth.user, pass: auth.pass } : {}),
        ...(auth.token !== undefined ? { token: auth.token } : {}),
      });
      log.info({ event: "connected", server: nc.getServer(), attempt }, "connected to NATS");
      void (async () => {
        for await (const s of nc.status()) {
          if (s.type === "disconnect") log.warn({ event: "disconnected", server: s.server }, "lost the NATS connection");
          else if (s.type === "reconnecting") log.warn({ event: "reconnecting" }, "reconnecting to NATS");
          else if (s.type === "reconnect") log.info({ event: "reconnected", server: s.server }, "reconnected to NATS");
        }
      })().catch(() => undefined);
      return nc;
    } catch (err) {
      const elapsed = Date.now() - started;
      const reason = (err as Error).message;
      // The server answered and turned the credentials down: retrying cannot change that.
      if (err instanceof Error && (err.name === "AuthorizationError" || err.name === "UserAuthenticationExpiredError")) {
        throw new ConfigError(`NATS at ${redactUrl(url)} rejected the credentials (${reason}); check nats.user/nats.pass or nats.token`, { cause: err });
      }
      if (timeoutMs !== undefined && elapsed + delay > timeoutMs) {
        throw new SourceError(`cannot reach NATS at ${redactUrl(url)} after ${attempt} attempts in ${Math.round(elapsed / 1000)} s: ${reason}`, { cause: err });
      }
      log.warn({ event: "connect_retry", url: redactUrl(url), attempt, retryInMs: delay, reason }, "NATS unreachable, retrying");
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5_000);
    }
  }
}

/** A server URL without embedded credentials, for logs and errors. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/\s]+)@/g, "//***@");
}
