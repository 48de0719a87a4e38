/**
 * The delivery info JetStream puts in a message's reply subject, read without splitting it.
 *
 * The subject is `$JS.ACK.<stream>.<consumer>.<deliveries>.<streamSeq>.<deliverySeq>.<nanos>.<pending>`
 * (9 tokens, what nats-server 2.9 sends) or, with a domain and account hash,
 * `$JS.ACK.<domain>.<hash>.<stream>.<consumer>.<deliveries>.<streamSeq>.<deliverySeq>.<nanos>.<pending>.<random>`
 * (12 tokens). nats.js's `JsMsg.info` splits it into a dozen strings and an object for every
 * message, 4% of the main thread's time and a share of its garbage; the source only needs three
 * numbers, so it reads them from the character codes into one reused object.
 */

/** The three numbers the source reads from a delivery; one instance, overwritten by each parse. */
export interface AckSubjectInfo {
  deliverySequence: number;
  streamSequence: number;
  timestampNanos: number;
}

const scratch: AckSubjectInfo = { deliverySequence: 0, streamSequence: 0, timestampNanos: 0 };

const DOT = 46;
/** Positions of the dots after "$JS.ACK.", reused by every parse. */
const dots = new Int32Array(9);

/** A run of ASCII digits as a number (exact below 2^53), or NaN for an empty or non-digit run. */
function digits(s: string, from: number, to: number): number {
  if (to <= from) return NaN;
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return NaN;
    n = n * 10 + d;
  }
  return n;
}

/**
 * Parses a reply subject. Returns the shared scratch object (valid until the next call), or null
 * when the subject is not a JetStream ack subject of either form, and the caller falls back to
 * nats.js's own parser.
 */
export function parseAckSubject(reply: string | undefined): AckSubjectInfo | null {
  if (reply === undefined || !reply.startsWith("$JS.ACK.")) return null;
  // One pass records where every dot is: 9 tokens have 8 dots, 12 have 11.
  let n = 0;
  for (let i = 8; i < reply.length; i++) {
    if (reply.charCodeAt(i) === DOT) {
      if (n === 9) return null;
      dots[n++] = i;
    }
  }
  // dots[] holds the dots after "$JS.ACK.": 6 of them for 9 tokens, 9 for 12. The last four
  // numbers before <pending> (and <random>) are <streamSeq>.<deliverySeq>.<nanos>.<pending>.
  if (n !== 6 && n !== 9) return null;
  const p = n === 6 ? n - 1 : n - 2; // the dot before <pending>
  const streamSequence = digits(reply, dots[p - 3]! + 1, dots[p - 2]!);
  const deliverySequence = digits(reply, dots[p - 2]! + 1, dots[p - 1]!);
  // Nanoseconds pass 2^53: convert the token as parseInt does, so the value is the same double.
  if (Number.isNaN(streamSequence) || Number.isNaN(deliverySequence) || Number.isNaN(digits(reply, dots[p - 1]! + 1, dots[p]!))) return null;
  scratch.deliverySequence = deliverySequence;
  scratch.streamSequence = streamSequence;
  scratch.timestampNanos = Number(reply.substring(dots[p - 1]! + 1, dots[p]!));
  return scratch;
}
