/**
 * Backpressure between a pulled source and the commits. A source that can read faster than
 * bronze commits (a file, the generator) takes credit before it emits each chunk, and the
 * topology gives the credit back when bronze reports the chunk's records committed. So the
 * records between the source and bronze never exceed the limit, whatever the input's size: an
 * RxJS `mergeMap` past its concurrency would otherwise buffer them without bound.
 */
export class CommitCredit {
  private outstanding = 0;
  private readonly waiting: { readonly n: number; readonly resolve: () => void }[] = [];

  /** @param limit Records that may be taken and not yet released, at most. */
  constructor(readonly limit: number) {
    if (!(limit > 0)) throw new RangeError(`commit credit: the limit must be positive, got ${limit}`);
  }

  /** Records taken and not yet released. */
  get inFlight(): number {
    return this.outstanding;
  }

  /**
   * Takes credit for `n` records; resolves once they fit under the limit (at once when nothing is
   * outstanding, so a chunk larger than the limit still moves). Takers are served in order.
   *
   * @example
   * for await (const chunk of chunks) {
   *   await credit.take(chunk.length);
   *   for (const m of chunk) subscriber.next(m);
   * }
   */
  take(n: number): Promise<void> {
    if (this.waiting.length === 0 && this.fits(n)) {
      this.outstanding += n;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push({ n, resolve }));
  }

  /** Gives back credit for `n` records (committed to bronze, or dropped before a batch). */
  release(n: number): void {
    this.outstanding = Math.max(0, this.outstanding - n);
    while (this.waiting.length > 0 && this.fits(this.waiting[0]!.n)) {
      const next = this.waiting.shift()!;
      this.outstanding += next.n;
      next.resolve();
    }
  }

  private fits(n: number): boolean {
    return this.outstanding === 0 || this.outstanding + n <= this.limit;
  }
}
