/**
 * Infrastructure errors, each a named class with a `cause`, as in nats.js `jserrors.ts`.
 * Bad data is never an exception: it is a quarantine value (see `operators/validate.ts`).
 */

/**
 * A configuration key is unknown or its value is wrong. `problems` lists each one (`path: what is
 * wrong`), and the message holds them one per line. The CLI exits with code 2.
 */
export class ConfigError extends Error {
  override name = "ConfigError";
  readonly problems: readonly string[];
  constructor(message: string, options?: ErrorOptions & { problems?: readonly string[] }) {
    super(message, options);
    this.problems = options?.problems ?? [message];
  }
}

/** A data directory cannot be opened, was written by a newer version, or is not tributary's. */
export class StorageError extends Error {
  override name = "StorageError";
}

/**
 * Features were asked for as of an instant whose partial days silver retention has deleted (the
 * message names the horizon): the caller's to change, not a fault of the data dir.
 */
export class SilverHorizonError extends StorageError {
  override name = "SilverHorizonError";
}

/** A SQLite commit failed; nothing of the batch was acknowledged. */
export class CheckpointError extends Error {
  override name = "CheckpointError";
}

/** The broker cannot be reached, or the stream/consumer is missing or was replaced. */
export class SourceError extends Error {
  override name = "SourceError";
}

/**
 * The HTTP server cannot listen where it was told to (the port is in use, the address is not this
 * host's, or the port needs privileges). The CLI exits with code 2: it fails the same way every time
 * until `http.listen` (or `--http`) changes.
 */
export class HttpListenError extends Error {
  override name = "HttpListenError";
}

const STREAM_REMEDIES = {
  newStream: "the jetstream source's newStream option reads it as a new origin from its first message (the layers keep everything read so far)",
  acceptGap: "the jetstream source's acceptGap option continues after them",
} as const;

/**
 * The stream on the server is not the one bronze read, or no longer holds what bronze read
 * (deleted and recreated, restored from an older copy, purged past bronze's position). Reading
 * on would skip or re-count messages, so the run stops; the CLI exits with code 2.
 */
export class StreamMismatchError extends SourceError {
  override name = "StreamMismatchError";
  /**
   * The jetstream source option that would read on (`newStream`: the stream as a new origin from
   * its first message; `acceptGap`: past the removed messages), when one would.
   */
  readonly remedy?: "newStream" | "acceptGap";
  /** What is wrong, without the remedy: the message is this and, if there is one, the remedy in the source's terms. */
  readonly fact: string;
  constructor(fact: string, options?: ErrorOptions & { remedy?: "newStream" | "acceptGap" }) {
    const remedy = options?.remedy;
    super(remedy ? `${fact}; ${STREAM_REMEDIES[remedy]}` : fact, options);
    this.fact = fact;
    if (remedy) this.remedy = remedy;
  }
}

/** Another live process writes this data directory. The CLI exits with code 2. */
export class DataDirLockedError extends Error {
  override name = "DataDirLockedError";
}

/** NATS could not be reached within the connect timeout. The CLI exits with code 3. */
export class NatsUnreachableError extends SourceError {
  override name = "NatsUnreachableError";
}

/**
 * A data directory holds no layer to read yet: nothing has been written to it. A
 * {@link StorageError}; the CLI adds how to fill it.
 */
export class NoDataError extends StorageError {
  override name = "NoDataError";
}
