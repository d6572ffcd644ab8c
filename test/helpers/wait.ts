/** Waiting in tests for something another process or the event loop brings about. */

/**
 * Calls `probe` every `every` ms until it gives a value other than undefined and returns it; throws
 * naming `what` once `ms` have passed without one.
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, { ms = 20_000, every = 25 }: { ms?: number; every?: number } = {}): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}
