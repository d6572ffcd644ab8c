/**
 * What every long operation accepts from its caller (a graph node, the CLI, a test): a way to be
 * cancelled, a way to report progress, and a place for messages the user should see.
 */
export type ProgressFn = (done: number, total: number, label?: string) => void;

export interface OpContext {
  signal?: AbortSignal;
  onProgress?: ProgressFn;
  log?: (message: string) => void;
}

/** Throws the signal's reason (an AbortError) when the operation was cancelled. */
export function checkAborted(ctx: OpContext | undefined): void {
  if (ctx?.signal?.aborted) {
    const reason = ctx.signal.reason;
    throw reason instanceof Error ? reason : Object.assign(new Error('cancelled'), { name: 'AbortError' });
  }
}
