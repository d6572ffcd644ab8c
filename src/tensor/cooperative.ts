/**
 * Long JavaScript loops (Householder QR, Jacobi SVD) are written as generators that yield at
 * natural break points (after a column, after a sweep row). The same code then runs either to
 * completion synchronously or cooperatively, handing the event loop back every few milliseconds so
 * a server process stays responsive while a merge runs beside it.
 */
export type Steps<T> = Generator<void, T, void>;

/** How long a cooperative run may hold the event loop before yielding. */
const SLICE_MS = 25;

export function runSync<T>(steps: Steps<T>): T {
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

export async function runCooperatively<T>(steps: Steps<T>): Promise<T> {
  let sliceStart = performance.now();
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
    if (performance.now() - sliceStart > SLICE_MS) {
      await yieldToEventLoop();
      sliceStart = performance.now();
    }
  }
}

/** Lets pending I/O callbacks and timers run (setImmediate runs after the poll phase). */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
