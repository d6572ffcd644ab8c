/**
 * Reused chunk buffers for streaming tensors through the codecs. Fresh memory costs a page fault
 * per 4 KiB on first touch, which on virtual machines is slow enough to dominate streaming
 * gigabytes through short-lived buffers; a few buffers kept here are touched once.
 */
export const SCRATCH_BYTES = 4 << 20;
const KEEP = 8;
const free: Uint8Array[] = [];

export function takeScratch(): Uint8Array {
  return free.pop() ?? new Uint8Array(SCRATCH_BYTES);
}

/** Only once no read or write is still using it. */
export function giveScratch(buffer: Uint8Array): void {
  if (free.length < KEEP) free.push(buffer);
}
