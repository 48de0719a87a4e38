/** Waiting for a condition with a deadline: e2e tests never read a value once and hope. */
export async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 60_000, everyMs = 20): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
